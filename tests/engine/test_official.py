"""from_ijepa: official I-JEPA checkpoints (DDP-prefixed or plain, full or encoder-only) in; bad ones are one line.
probe and inspect take an official file as --run."""
import json

import matplotlib
import pytest
import torch

from cijepa_lite import from_ijepa
from cijepa_lite.cli import main
from cijepa_lite.config import get_config
from cijepa_lite.data.screens import write_examples
from cijepa_lite.engine.official import SMALL, to_ijepa, write_small_official
from cijepa_lite.method import CIJEPA

matplotlib.use("Agg")

@pytest.fixture(scope="module")
def model():
    return CIJEPA(get_config("ijepa", **SMALL, seed=3))


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def one_line(e) -> str:
    text = str(e.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("prefix", ["module.", ""], ids=["ddp-prefixed", "plain"])
def test_from_ijepa_reads_prefixed_and_plain_keys_and_infers_the_shape(model, prefix):
    back = from_ijepa(to_ijepa(model, prefix))
    cfg = back.cfg
    assert (cfg.embed_dim, cfg.num_heads, cfg.depth, cfg.patch_size, cfg.grid) == (192, 3, 2, 8, 4)
    assert (cfg.pred_dim, cfg.pred_depth, cfg.pred_num_heads) == (48, 1, 3)
    assert (cfg.pos_embed, cfg.final_norm, cfg.loss, cfg.collected_depths) == ("sincos", True, "smooth_l1", (1,))
    assert same_weights(back.student, model.student) and same_weights(back.teacher, model.teacher)
    assert same_weights(back.predictors, model.predictors)
    assert not any(p.requires_grad for p in back.teacher.parameters())
    assert all(p.requires_grad for p in back.student.parameters())
    images = torch.randn(2, 3, 32, 32)
    context, targets = torch.tensor([[0, 1, 2, 4, 5, 6]] * 2), torch.tensor([[[10, 11], [14, 15]]] * 2)
    torch.testing.assert_close(back(images, context, targets, [0])[0], model(images, context, targets, [0])[0],
                               rtol=0, atol=0)


def test_from_ijepa_reads_a_file_weights_only_and_memory_mapped(model, tmp_path):
    path = tmp_path / "jepa-ep1.pth.tar"
    torch.save(to_ijepa(model), path)
    back = from_ijepa(path)
    assert same_weights(back.teacher, model.teacher) and same_weights(back.predictors, model.predictors)
    legacy = tmp_path / "legacy.pth.tar"  # a pre-zipfile save cannot be memory-mapped: it is read whole
    torch.save(to_ijepa(model), legacy, _use_new_zipfile_serialization=False)
    assert same_weights(from_ijepa(legacy).teacher, model.teacher)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint") as e:
        from_ijepa(path)
    one_line(e)


@pytest.mark.parametrize("which", ["target_encoder", "encoder"])
def test_an_encoder_only_file_loads_without_predictors(model, which):
    back = from_ijepa({which: to_ijepa(model)[which]})
    assert len(back.predictors) == 0
    assert same_weights(back.teacher, getattr(model, "teacher" if which == "target_encoder" else "student"))
    assert same_weights(back.student, back.teacher)
    hidden = back.teacher(torch.randn(1, 3, 32, 32))  # probing and inspection need only this
    assert len(hidden) == 2 and hidden[-1].shape == (1, 16, 192)


def test_an_unknown_key_is_one_line_naming_it(model):
    ckpt = to_ijepa(model)
    ckpt["encoder"]["module.blocks.0.attn.rel_pos"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"unknown key 'encoder\.blocks\.0\.attn\.rel_pos'") as e:
        from_ijepa(ckpt)
    one_line(e)
    ckpt = to_ijepa(model)
    ckpt["predictor"]["module.predictor_head.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"unknown key 'predictor\.predictor_head\.weight'"):
        from_ijepa(ckpt)
    with pytest.raises(ValueError, match="no 'encoder' or 'target_encoder' state dict"):
        from_ijepa({"student": {}, "teacher": {}})


def test_a_shape_that_fits_no_upstream_model_is_one_line_naming_it(model):
    ckpt = to_ijepa(model, "")
    odd = {k: v[:100] if k.startswith("patch_embed") else v for k, v in ckpt["target_encoder"].items()}
    with pytest.raises(ValueError, match=r"target_encoder\.patch_embed\.proj\.weight has shape \(100, 3, 8, 8\): "
                                         r"width 100 is no upstream model's.*num_heads") as e:
        from_ijepa({"target_encoder": odd})
    one_line(e)
    ckpt["encoder"]["blocks.1.mlp.fc1.weight"] = torch.zeros(700, 192)
    with pytest.raises(ValueError, match=r"blocks\.1\.mlp\.fc1\.weight has shape \(700, 192\).*wants \(768, 192\)") as e:
        from_ijepa(ckpt)
    one_line(e)


@pytest.fixture(scope="module")
def official_file(tmp_path_factory):
    path = write_small_official(tmp_path_factory.mktemp("official") / "jepa-latest.pth.tar", seed=3)
    assert from_ijepa(path).cfg.embed_dim == 192
    return path


def test_inspect_takes_an_official_checkpoint_file(official_file, tmp_path, capsys):
    screens = write_examples(tmp_path / "screens")
    assert main(["inspect", "--run", str(official_file), "--images", str(screens), "--n-images", "2"]) == 0
    out = official_file.with_name(f"{official_file.name}-inspect.json")
    saved = json.loads(out.read_text())
    assert saved["run_id"] == "ijepa-official" and saved["depths"] == [0, 1]
    assert saved["sets"]["screens"]["teacher"] != saved["sets"]["screens"]["random_init"]


def test_probe_takes_an_official_checkpoint_file(official_file, tmp_path, capsys):
    assert main(["probe", "--run", str(official_file), "--dataset", "digits", "--results", str(tmp_path),
                 "--no-progress", "--workers", "0"]) == 0
    assert "ijepa-official step 0, logreg probe" in capsys.readouterr().out
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*.json")]
    assert record["run_id"] == "ijepa-official" and 10 < record["top1"] <= 100


def test_export_takes_an_official_checkpoint_file_and_timm_reads_it(official_file, tmp_path):
    from cijepa_lite.export import export_encoder, load_encoder, timm_encoder

    out = export_encoder(official_file, tmp_path / "export")
    images = torch.randn(2, 3, 32, 32)
    want = from_ijepa(official_file).teacher(images)[-1]  # (B, N, D), after the final LayerNorm
    torch.testing.assert_close(load_encoder(out)(images)[-1], want, rtol=0, atol=0)
    torch.testing.assert_close(timm_encoder(out).forward_features(images), want, rtol=1e-5, atol=1e-5)
