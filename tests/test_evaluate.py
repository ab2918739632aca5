"""evaluate_run: a run directory in, a result record out; bad run directories are clear errors."""
import pytest

from cijepa_lite.evaluate import evaluate_run


def test_a_run_without_checkpoints_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_run(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no checkpoint in .*pretrain first"):
        evaluate_run(tmp_path)
    with pytest.raises(ValueError, match="unknown probe 'lbfgs'"):
        evaluate_run(tmp_path, probe="lbfgs")
