import pytest

from cijepa_lite.data.bench import bench_data, synthetic_photo, synthetic_size


def test_bench_data_reports_per_core_rates_and_their_ratio(capsys):
    result = bench_data(n_images=6, rounds=1, short_side=64)
    rates = result["images_per_cpu_s"]
    assert set(rates) == {"raw parquet, sequential", "raw parquet, random order", "prepared cache, random order"}
    assert all(r > 0 for r in rates.values())
    assert result["ratio"] == pytest.approx(rates["prepared cache, random order"] / rates["raw parquet, sequential"])
    assert "images/s per core" in capsys.readouterr().out


def test_synthetic_photos_are_imagenet_like_in_size_and_jpeg_bytes():
    import io

    import numpy as np

    rng = np.random.default_rng(0)
    sizes = [synthetic_size(rng) for _ in range(200)]
    assert 400 < np.mean([max(s) for s in sizes]) < 700 and np.mean([s[0] > s[1] for s in sizes]) > 0.55
    out = io.BytesIO()
    synthetic_photo(rng, 500, 375).save(out, "JPEG", quality=90)
    assert 60_000 < len(out.getvalue()) < 160_000  # ImageNet's JPEGs average ~110 KB
