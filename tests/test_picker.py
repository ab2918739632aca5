import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from cijepa_lite.config import PRESETS, get_config  # noqa: E402
from cijepa_lite.picker import AlphaBetaPicker, matching_run_id, supervision_config, weights_figure  # noqa: E402


@pytest.mark.parametrize("rid", [r for r in PRESETS if r != "tiny"])
def test_every_preset_is_recognised_as_its_table_row(rid):
    assert matching_run_id(PRESETS[rid]) == rid


def test_new_combinations_are_not_a_table_row_and_rows_are_clamped():
    cfg = supervision_config(PRESETS["R-A05-B08"], 1, 2, 0.3, 0.9)
    assert matching_run_id(cfg) is None
    baseline = supervision_config(PRESETS["R-A05-B08"], -1, 2, None, 1.0)
    assert baseline.intermediate_rows == 0 and matching_run_id(baseline) == "L200"
    assert matching_run_id(get_config("tiny")) == "R-A05-B08"  # the tiny model with R-A05-B08 supervision


def test_weights_figure_shows_the_matrix():
    fig = weights_figure(PRESETS["R-A05-B08"])
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (11, 11)
    assert abs(image[0, -1] - 0.5) < 1e-6 and abs(image[-1, -1] - 0.8) < 1e-6 and abs(image[-1, 0] - 0.02) < 1e-6
    assert "R-A05-B08" in fig.axes[0].get_title()


def test_picker_widgets_drive_the_config():
    picker = AlphaBetaPicker(PRESETS["R-A05-B08"])
    assert picker.config().run_id == "R-A05-B08"
    picker.beta.value = 1.0
    assert picker.config().run_id == "R-A05-B10" and picker.config().last_to_last_weight == 1.0
    picker.alpha_unset.value = True
    picker.beta.value = 0.8
    assert picker.config().run_id == "R-B08"
    picker.rows.value = 0
    picker.alpha_unset.value = False
    assert picker.config().run_id is not None and picker.config().intermediate_rows == 0
    picker.depths.value = "d_last only (I-JEPA)"
    assert picker.config().collected_depths == (11,)


def test_the_parameters_cell_is_the_source_of_truth_and_names_the_run():
    from cijepa_lite.picker import form_config, run_name

    assert form_config("R-A05-B08") == get_config("R-A05-B08")  # empty fields: the row itself, in its folder
    custom = form_config("R-A05-B08", alpha="0.30", beta="0.90")
    assert (custom.all_to_last_weight, custom.last_to_last_weight) == (0.3, 0.9)
    assert custom.run_id == "custom-D1-11-rows2-a0.30-b0.90"
    assert form_config("R-A05-B08", beta="1.0").run_id == "R-A05-B10"  # equal to another row: that row's name
    assert form_config("R-A05-B08", alpha="unset", rows="0").run_id == "R-A.-B08"
    assert run_name(form_config("R-U", depths="d0..d_last", alpha="unset", beta="unset")) == \
        "custom-D0-11-rows2-a-unset-b-unset"
    with pytest.raises(ValueError, match="ALPHA = 'half'"):
        form_config("R-A05-B08", alpha="half")
    with pytest.raises(ValueError, match="BETA = 1.5"):
        form_config("R-A05-B08", beta="1.5")


def test_the_picker_shows_the_form_values_and_says_how_to_keep_an_edit():
    from cijepa_lite.picker import form_config

    picker = AlphaBetaPicker(form_config("R-A05-B08", alpha="0.30", beta="0.90"))
    assert picker.config().run_id == "custom-D1-11-rows2-a0.30-b0.90"
    picker.beta.value = 0.8
    assert 'ALPHA = "0.30", BETA = "0.80"' in picker.hint.value
