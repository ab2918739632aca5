"""Run names become one folder under their root, here and in the mirror, or are refused in one line."""
import pytest

from cijepa_lite.config import PRESETS
from cijepa_lite.engine.names import MAX_LEN, check_run_name, run_paths


@pytest.mark.parametrize("name", [*PRESETS, "custom-D1-11-rows2-a0.30-b0.90", "R-A05-B08-s2", "a", "x" * MAX_LEN])
def test_table_ids_and_kit_names_are_accepted(name, tmp_path):
    run, mirror = run_paths(name, tmp_path / "runs", tmp_path / "drive")
    assert run == (tmp_path / "runs" / name).resolve() and mirror == (tmp_path / "drive" / name).resolve()


@pytest.mark.parametrize("name, says", [
    ("", "empty"), ("..", "use only"), (".", "use only"), ("../../escaped", "use only"), ("/abs/path", "use only"),
    ("a/b", "use only"), (".hidden", "use only"), ("-rf", "use only"), ("tab\there", "use only"),
    ("ü", "use only"), ("x" * (MAX_LEN + 1), "at most"), (None, "must be a string"), (3, "must be a string"),
])
def test_unsafe_names_are_refused_in_one_line_naming_them(name, says):
    with pytest.raises(ValueError, match=says) as e:
        check_run_name(name)
    assert "\n" not in str(e.value) and "run name" in str(e.value)


def test_a_mirror_root_that_is_the_run_root_is_refused(tmp_path):
    with pytest.raises(ValueError, match="overlap"):
        run_paths("R-U", tmp_path, tmp_path)


def test_colab_pretrain_run_refuses_an_escaping_name_before_anything_is_written(tmp_path, monkeypatch):
    from cijepa_lite import colab

    monkeypatch.setenv(colab.WORKDIR_ENV, str(tmp_path / "work"))
    monkeypatch.setenv(colab.STORAGE_ENV, str(tmp_path / "drive"))
    for name in ("../../escaped", "..", str(tmp_path / "abs")):
        with pytest.raises(ValueError, match="run name"):
            colab.pretrain_run(PRESETS["R-U"], smoke=True, data_dir=tmp_path / "data", name=name)
        with pytest.raises(ValueError, match="run name"):
            colab.local_run(name, smoke=True, data_dir=tmp_path / "data")
    assert not list((tmp_path / "work").glob("runs/*")) and not (tmp_path / "escaped").exists()
    cfg, run = colab.pretrain_run(PRESETS["R-U"], smoke=True, data_dir=tmp_path / "data", name="mine")
    assert run == (tmp_path / "work" / "runs" / "smoke-mine").resolve()  # smoke mode says so in the name
    assert cfg.mirror_dir == str((tmp_path / "drive" / "cijepa-lite" / "runs" / "smoke-mine").resolve())
