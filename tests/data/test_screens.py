"""The generated screenshots are flat regions and text strokes; the photo-like image is smooth."""
import numpy as np

from cijepa_lite.data.screens import photo_like, screenshot, write_examples


def colours(img) -> np.ndarray:
    """Each pixel's colour as one integer (np.unique over rows of 2.6 M pixels is slow)."""
    rgb = np.asarray(img, dtype=np.int64)
    return rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]


def edge_fraction(img) -> float:
    """Fraction of horizontal neighbour pairs whose grey level jumps by more than 40."""
    grey = np.asarray(img.convert("L"), dtype=np.int16)
    return float((np.abs(np.diff(grey, axis=1)) > 40).mean())


def test_screens_are_flat_with_text_and_photos_are_smooth(tmp_path):
    phone = screenshot(1080, 2400, seed=1)
    assert phone.size == (1080, 2400)
    values, counts = np.unique(colours(phone), return_counts=True)
    assert counts.max() / counts.sum() > 0.3 and len(values) < 50  # flat colours, a few of them
    photo = photo_like(640, 480)
    assert edge_fraction(phone) > 10 * edge_fraction(photo)  # hard strokes vs soft blobs
    assert len(np.unique(colours(photo))) > 10_000
    names = sorted(p.name for p in write_examples(tmp_path).iterdir())
    assert names == ["photo-640x480.png", "screen-1080x2400.png", "screen-1920x1080.png"]
    assert np.asarray(screenshot(1920, 1080, seed=3)).tobytes() == np.asarray(screenshot(1920, 1080, seed=3)).tobytes()
