import dataclasses

import pytest

from cijepa_lite.config import PRESETS, SUPERVISION, get_config, parse_overrides, with_supervision

TABLE_IDS = ["L200", "L300", "R-U", "R-A05-B05", "R-A08-B08", "R-A05-B08", "R-A05-B08-12", "R-B05", "R-B08",
             "R-A05-B10", "R-A.-B05", "R-A.-B08"]


def test_every_run_id_of_the_table_has_a_preset():
    assert set(TABLE_IDS) | {"tiny"} == set(PRESETS)
    for rid in TABLE_IDS:
        assert PRESETS[rid].run_id == rid


@pytest.mark.parametrize("rid,depths,rows,alpha,beta,epochs", [
    ("L200", (11,), 0, None, 1.0, 200),
    ("L300", (11,), 0, None, 1.0, 300),
    ("R-U", tuple(range(1, 12)), 2, 1 / 11, 1 / 11, 200),
    ("R-A05-B08", tuple(range(1, 12)), 2, 0.5, 0.8, 200),
    ("R-A05-B08-12", tuple(range(0, 12)), 2, 0.5, 0.8, 200),
    ("R-B08", tuple(range(1, 12)), 2, None, 0.8, 200),
    ("R-A05-B10", tuple(range(1, 12)), 2, 0.5, 1.0, 200),
    ("R-A.-B05", tuple(range(1, 12)), 0, None, 0.5, 200),
])
def test_presets_match_the_write_ups_table(rid, depths, rows, alpha, beta, epochs):
    cfg = PRESETS[rid]
    assert cfg.collected_depths == depths
    assert cfg.intermediate_rows == rows
    assert cfg.all_to_last_weight == alpha and cfg.last_to_last_weight == beta
    assert cfg.epochs == epochs


def test_table_runs_differ_only_in_supervision():
    base = dataclasses.asdict(PRESETS["R-A05-B08"])
    allowed = {"run_id", "collect_from", "intermediate_rows", "all_to_last_weight", "last_to_last_weight", "epochs"}
    for rid in TABLE_IDS:
        diff = {k for k, v in dataclasses.asdict(PRESETS[rid]).items() if base[k] != v}
        assert diff <= allowed, (rid, diff)


def test_recipe_values():
    cfg = PRESETS["R-A05-B08"]
    assert (cfg.img_size, cfg.patch_size, cfg.embed_dim, cfg.depth, cfg.num_heads) == (224, 16, 768, 12, 12)
    assert (cfg.pred_dim, cfg.pred_depth, cfg.pred_num_heads) == (384, 6, 12)
    assert cfg.num_targets == 4 and cfg.target_scale == (0.15, 0.2) and cfg.target_aspect == (0.75, 1.5)
    assert cfg.context_scale == (0.85, 1.0) and cfg.min_keep == 10 and cfg.mask_mode == "upstream"
    assert cfg.weight_decay == 0.05 and cfg.batch_size == 256 and cfg.warmup_fraction == 0.025
    assert cfg.peak_lr == pytest.approx(1e-3 * 256 / 2048)
    assert (cfg.ema_start, cfg.ema_end) == (0.996, 1.0)


def test_get_config_rejects_unknown_keys_and_ids():
    with pytest.raises(KeyError, match="unknown config key 'alhpa'"):
        get_config("tiny", alhpa=0.5)
    with pytest.raises(KeyError, match="did you mean all_to_last_weight"):
        get_config("tiny", all_to_last_weigth=0.5)
    with pytest.raises(KeyError, match="unknown run id"):
        get_config("R-A05-B09")


def test_overrides_are_parsed_to_field_types():
    over = parse_overrides(["all_to_last_weight=1/11", "last_to_last_weight=none", "epochs=3",
                            "target_scale=0.1,0.3", "compile=true", "mask_mode=corrected"])
    cfg = get_config("tiny", **over)
    assert cfg.all_to_last_weight == pytest.approx(1 / 11) and cfg.last_to_last_weight is None
    assert cfg.epochs == 3 and cfg.target_scale == (0.1, 0.3) and cfg.compile is True
    assert cfg.mask_mode == "corrected"
    with pytest.raises(ValueError, match="epochs='three'"):
        parse_overrides(["epochs=three"])
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["epochs"])


@pytest.mark.parametrize("key,value", [("mask_mode", "random"), ("all_to_last_weight", 1.5), ("collect_from", 12),
                                       ("intermediate_rows", 11), ("num_heads", 5), ("img_size", 30)])
def test_invalid_values_raise_naming_the_key(key, value):
    with pytest.raises(ValueError, match=key):
        get_config("L200" if key != "img_size" else "tiny", **{key: value})


def test_config_is_frozen_and_with_supervision_copies_only_supervision():
    cfg = get_config("tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3
    base = with_supervision(cfg, "L200")
    assert base.collected_depths == (cfg.depth - 1,) and base.intermediate_rows == 0
    assert base.last_to_last_weight == 1.0 and base.embed_dim == cfg.embed_dim and base.epochs == cfg.epochs
    assert set(SUPERVISION) == set(TABLE_IDS)


def test_upstream_switches_default_to_the_kit_and_the_ijepa_preset_sets_them_all():
    kit, up = get_config("L200"), get_config("ijepa")
    assert (kit.pos_embed, kit.final_norm, kit.loss, kit.final_weight_decay, kit.ipe_scale) == \
        ("rope", False, "mse", None, None)
    assert (up.pos_embed, up.final_norm, up.loss, up.weight_decay, up.final_weight_decay, up.ipe_scale) == \
        ("sincos", True, "smooth_l1", 0.04, 0.4, 1.0)
    assert up.peak_lr == 1e-3 and up.warmup_start_factor * up.peak_lr == pytest.approx(2e-4)  # upstream lr, start_lr
    assert (up.epochs, up.batch_size, up.warmup_fraction * up.epochs) == (300, 2048, pytest.approx(40))
    assert up.collected_depths == (11,) and up.intermediate_rows == 0 and up.run_id == "ijepa"
    with pytest.raises(ValueError, match=r"config loss='l1': must be one of \('mse', 'smooth_l1'\)"):
        get_config("ijepa", loss="l1")
    assert parse_overrides(["ipe_scale=none", "pos_embed=sincos"]) == {"ipe_scale": None, "pos_embed": "sincos"}
