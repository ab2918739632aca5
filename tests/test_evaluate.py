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


def test_auto_probe_is_the_recipe_for_vit_b_and_logistic_for_small_models():
    from cijepa_lite.config import get_config
    from cijepa_lite.evaluate import choose_probe

    assert choose_probe("auto", get_config("R-A05-B08").embed_dim)[0] == "recipe"
    name, why = choose_probe("auto", get_config("tiny").embed_dim)
    assert name == "logreg" and "does not converge" in why
    assert choose_probe("recipe", 64) == ("recipe", "as asked")
