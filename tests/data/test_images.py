import numpy as np
import pytest
from imagekit import close, convertible, encode, mean_color, unreadable
from PIL import Image
from torchvision import transforms as T

from cijepa_lite.data.images import BadImage, decode, load_rgb, open_image, resize_short, resized_size


@pytest.mark.parametrize("name", list(convertible()))
def test_convertible_images_decode_to_the_right_rgb(name):
    data, expected = convertible()[name]
    img = decode(data, name)
    assert img.mode == "RGB"
    assert close(mean_color(img), expected, tol=3), (name, mean_color(img), expected)


@pytest.mark.parametrize("name", list(unreadable()))
def test_unreadable_images_raise_bad_image_naming_file_and_reason(name):
    data, word = unreadable()[name]
    with pytest.raises(BadImage) as err:
        decode(data, f"shard.parquet row 7 ({name})")
    assert err.value.where == f"shard.parquet row 7 ({name})"
    assert word in err.value.reason and name in str(err.value)


def test_pil_limit_is_replaced_by_ours_and_restored(monkeypatch):
    # With PIL's limit at 1,000 pixels, a 64x64 image (4,096) is a "bomb" to PIL; our bound accepts it.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(__import__("io").BytesIO(encode(Image.new("RGB", (64, 64)), "PNG")))
    assert decode(encode(Image.new("RGB", (64, 64), (5, 6, 7)), "PNG"), "x").size == (64, 64)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_huge_jpeg_is_decoded_at_reduced_scale_but_never_below_the_target():
    rng = np.random.default_rng(0)
    data = encode(Image.fromarray(rng.integers(0, 255, (1200, 1600, 3), dtype=np.uint8)), "JPEG", quality=80)
    # The cache resizes 1600x1200 to 373x280: libjpeg's 1/4 scale (400x300) still covers it.
    assert load_rgb(open_image(data, "big.JPEG"), "big.JPEG", min_short_side=280).size == (400, 300)
    # ... but not 426x320, so the decoder stops at 1/2 scale.
    assert load_rgb(open_image(data, "big.JPEG"), "big.JPEG", min_short_side=320).size == (800, 600)
    assert decode(data, "big.JPEG").size == (1600, 1200)  # run-time decoding is never reduced


def test_resized_size_matches_torchvision_resize():
    for size in [(500, 375), (375, 500), (333, 500), (1600, 1201), (320, 320)]:
        out = T.Resize(256)(Image.new("RGB", size))
        assert resized_size(size, 256) == out.size


def test_cache_resize_is_exactly_torchvision_resize_256_bicubic():
    # Why probe val on a short-side-256 cache sees the recipe's pixels (up to one JPEG generation).
    rng = np.random.default_rng(1)
    for size in [(500, 375), (333, 500)]:
        img = Image.fromarray(rng.integers(0, 256, size[::-1] + (3,), dtype=np.uint8))
        ours = resize_short(img, 256)
        theirs = T.Resize(256, interpolation=T.InterpolationMode.BICUBIC)(img)
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))
        again = T.Resize(256, interpolation=T.InterpolationMode.BICUBIC)(ours)  # probe val's resize: a no-op
        assert np.array_equal(np.asarray(again), np.asarray(ours))
