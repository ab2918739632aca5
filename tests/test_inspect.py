"""inspect: a trained run's per-depth feature maps and numbers on its val images and on generated phone and desktop
screenshots and a photo-like image, each at its own aspect ratio; the trained teacher beside random init."""
import json

import matplotlib
import pytest

from cijepa_lite.cli import main
from cijepa_lite.data.screens import write_examples
from cijepa_lite.inspect import grid_shape, inspect_run

matplotlib.use("Agg")


def test_grid_shape_keeps_the_aspect_ratio_in_whole_patches():
    assert grid_shape((1080, 2400), 64, 4) == (16, 7)  # a phone stays portrait
    assert grid_shape((1920, 1080), 64, 4) == (9, 16)  # a desktop stays landscape
    assert grid_shape((10, 1000), 32, 4) == (8, 1)  # never less than one patch


def test_inspect_writes_maps_curves_and_numbers_per_depth(tiny_run, tmp_path):
    screens = write_examples(tmp_path / "screens")
    out = tmp_path / "fig" / "maps.png"
    result = inspect_run(tiny_run, ["val", screens], out=out, max_side=48, n_images=3)
    assert {p.name for p in out.parent.iterdir()} == {"maps.png", "maps-curves.png", "maps.json"}
    assert all(p.stat().st_size > 10_000 for p in out.parent.glob("*.png"))
    saved = json.loads((tmp_path / "fig" / "maps.json").read_text())
    assert saved == {k: v for k, v in result.items() if k != "files"}
    assert list(saved["sets"]) == ["val", "screens"] and saved["depths"] == list(range(6))
    shots = saved["sets"]["screens"]
    assert shots["images"] == ["photo-640x480.png", "screen-1080x2400.png", "screen-1920x1080.png"]
    assert shots["grids"] == [[9, 12], [12, 5], [7, 12]]  # 48 px long side, 4-px patches, each at its own aspect
    assert saved["sets"]["val"]["grids"] == [[12, 12]] * 3  # the 32-px digits, upscaled to the 48-px long side
    for got in saved["sets"].values():
        for encoder in ("teacher", "random_init"):
            assert set(got[encoder]) == {"continuity", "rankme"}
            assert list(got[encoder]["continuity"]) == [f"d{d}" for d in range(6)]
            assert all(-1 <= v <= 1 for v in got[encoder]["continuity"].values())
            assert all(1 <= v <= 64 for v in got[encoder]["rankme"].values())
    assert saved["sets"]["val"]["teacher"] != saved["sets"]["val"]["random_init"]  # training changed the teacher


def test_inspect_command_line_and_its_bad_input(tiny_run, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["inspect", "--run", str(tiny_run), "--out", str(out), "--depths", "0", "5", "--n-images", "2"]) == 0
    printed = capsys.readouterr().out
    assert "val, teacher: continuity/RankMe per depth: d0 " in printed and str(out) in printed
    assert json.loads(out.with_suffix(".json").read_text())["depths"] == [0, 5]
    assert main(["inspect", "--run", str(tiny_run), "--images", str(tmp_path / "none")]) == 1
    assert "no such folder" in capsys.readouterr().err
    assert main(["inspect", "--run", str(tiny_run), "--depths", "9"]) == 1
    assert "blocks are 0..5" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least the patch size"):
        inspect_run(tiny_run, max_side=2)
