"""The digits placed on a canvas: deterministic from its seed, val drawn from source digits training never shows."""
import numpy as np
import pytest

from cijepa_lite.data import Digits, open_source
from cijepa_lite.data.canvas import NAME, DigitsCanvas


def test_the_canvas_is_the_same_for_the_same_seed_and_differs_for_another():
    a, b = DigitsCanvas("val", 32), DigitsCanvas("val", 32)
    other = DigitsCanvas("val", 32, seed=1)
    assert len(a) == len(Digits("val")) and a.labels == b.labels == other.labels == Digits("val").labels
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for (x, _), (y, _) in zip(a, b))
    assert not all(np.array_equal(np.asarray(x), np.asarray(y)) for (x, _), (y, _) in zip(a, other))


def test_each_training_digit_appears_copies_times_at_different_places_and_the_ink_stays_on_the_canvas():
    canvas = DigitsCanvas("train", 32, digit_px=(12, 12), copies=2)
    n = len(Digits("train"))
    assert len(canvas) == 2 * n and canvas.labels[:n] == canvas.labels[n:] == Digits("train").labels
    first, second = np.asarray(canvas[0][0]), np.asarray(canvas[n][0])  # (32, 32, 3) each: one digit, two places
    assert first.shape == (32, 32, 3) and not np.array_equal(first, second)
    assert np.sort(first.ravel())[-50:].tolist() == np.sort(second.ravel())[-50:].tolist()  # the same ink
    rows = np.nonzero(first.max(axis=(1, 2)))[0]
    assert rows.max() - rows.min() < 12  # a 12 px digit (its blank margin rows excluded)


def test_val_images_come_from_source_digits_no_training_image_shows():
    def inked(split):  # each image's ink, cropped to its bounding box, as bytes
        out = set()
        for image, _ in DigitsCanvas(split, 32, digit_px=(16, 16), copies=1):
            a = np.asarray(image)[..., 0]
            r, c = np.nonzero(a)
            out.add(a[r.min():r.max() + 1, c.min():c.max() + 1].tobytes())
        return out

    train, val = inked("train"), inked("val")
    assert len(val) > 300 and len(train & val) <= 3  # a few source digits are pixel-identical in scikit-learn's set


def test_open_source_knows_the_canvas_and_checks_its_digit_size():
    assert isinstance(open_source(NAME, "val", 32), DigitsCanvas)
    with pytest.raises(ValueError, match=r"digit_px=\(12, 40\): need 1 <= lo <= hi <= canvas size 32"):
        DigitsCanvas("val", 32, digit_px=(12, 40))
