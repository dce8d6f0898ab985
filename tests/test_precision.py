"""Mixed precision: what each setting resolves to, that it trains and infers, and that it is recorded."""

import json

import numpy as np
import pytest
import torch

from medseg3d import precision
from medseg3d.checkpoint import read_model_file, rewrite_model_metadata
from medseg3d.cli import build_parser, main
from medseg3d.errors import InputError, ModelError
from medseg3d.inference import predict_probabilities
from medseg3d.models import bundled_models, load_model
from medseg3d.nets import build_network
from medseg3d.train import TrainConfig, train


@pytest.mark.parametrize("native", [True, False])
def test_settings_resolve_per_device(monkeypatch, native):
    monkeypatch.setattr(precision, "native_bf16", lambda: native)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert precision.autocast_dtype("fp32", cpu) is None and precision.autocast_dtype("fp32", cuda) is None
    assert precision.autocast_dtype("auto", cpu) is None  # CPU training stays float32 unless asked
    assert precision.autocast_dtype("auto", cuda) == torch.float16
    assert precision.autocast_dtype("mixed", cuda) == torch.float16
    # a CPU without native bfloat16 would emulate it slowly: mixed falls back to float32 there
    assert precision.autocast_dtype("mixed", cpu) == (torch.bfloat16 if native else None)
    assert precision.describe("mixed", cpu) == ("bfloat16" if native else "float32")
    assert precision.describe("fp32", "cuda") == "float32"


def test_unknown_setting_is_one_clear_error():
    with pytest.raises(InputError, match="unknown precision 'half'; choose one of auto, fp32, mixed"):
        precision.autocast_dtype("half", "cpu")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "data", "--out", "x", "--precision", "half"])
    assert build_parser().parse_args(["predict", "brats-v1", "c", "-o", "x.nii.gz"]).precision == "auto"


def test_mixed_inference_is_close_to_float32_and_returns_float32(monkeypatch):
    torch.manual_seed(0)
    model = build_network("kayalibay", 4, 3, norm="instance").eval()
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 32)).astype(np.float32)
    monkeypatch.setattr(precision, "native_bf16", lambda: True)  # exercise bfloat16 even on a CPU without it
    p32 = predict_probabilities(model, x, kind="region", precision="fp32")
    p16 = predict_probabilities(model, x, kind="region", precision="mixed")
    assert p32.dtype == p16.dtype == torch.float32 and p16.shape == (3, 32, 32, 32)
    diff = (p32 - p16).abs()
    # bfloat16 keeps 8 bits of mantissa: probabilities move by about 1e-2 at most, and do move
    assert 0 < diff.max() < 0.05 and diff.mean() < 5e-3


def test_training_in_mixed_precision_is_recorded_and_kept_on_resume(small_dataset, tmp_path):
    base = dict(
        dataset=str(small_dataset),
        out=str(tmp_path / "run"),
        cache=str(tmp_path / "cache"),
        progress=False,
        seed=1,
        precision="mixed",
    )
    summary = train(TrainConfig.from_preset("quick", epochs=1, **base))
    config = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert config["precision"] == "mixed"
    assert config["compute_dtype"] == ("bfloat16" if precision.native_bf16() else "float32")
    assert np.isfinite(summary["best_score"])
    meta, state = read_model_file(tmp_path / "run" / "model.safetensors")
    assert meta["inference"] == {"precision": "mixed"}  # it asks to be run as it was validated
    # weights stay float32
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    with pytest.raises(InputError, match=r"--resume with other settings \(precision\)"):
        train(TrainConfig.from_preset("quick", epochs=2, resume=True, **(base | {"precision": "fp32"})))
    with pytest.raises(InputError, match="unknown precision"):
        train(
            TrainConfig.from_preset(
                "quick", epochs=1, **(base | {"out": str(tmp_path / "b"), "precision": "half"})
            )
        )
    assert not (tmp_path / "b").exists()


def test_model_file_can_carry_its_precision(tmp_path):
    source, target = bundled_models()["brats-v1"], tmp_path / "m.safetensors"
    meta, _ = read_model_file(source)
    inference = dict(meta.get("inference") or {})
    rewrite_model_metadata(source, {"inference": inference | {"precision": "mixed"}}, out=target)
    assert load_model(target, device="cpu").compute_precision() == "mixed"
    assert load_model(target, device="cpu", precision="fp32").compute_precision() == "fp32"  # the user wins
    with pytest.raises(ModelError, match="inference.precision must be one of auto, fp32, mixed"):
        rewrite_model_metadata(
            source, {"inference": inference | {"precision": "half"}}, out=tmp_path / "bad.safetensors"
        )
    assert not (tmp_path / "bad.safetensors").exists()
    with pytest.raises(InputError, match="unknown precision"):
        load_model(source, device="cpu", precision="half")


def test_cli_bad_precision_for_predict_is_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "brats-v1", "case", "-o", "x.nii.gz", "--precision", "half"])
    assert "invalid choice" in capsys.readouterr().err


def test_trained_models_say_how_to_run(tmp_path):
    from medseg3d.train import inference_defaults

    def cfg(**kw):
        return TrainConfig.from_preset("quick", dataset="d", out=str(tmp_path), **kw)

    assert inference_defaults(cfg()) is None  # whole crops, float32: one pass, as before
    assert inference_defaults(cfg(patch=(32, 32, 32))) == {"sliding_window": True, "overlap": 0.5}
    assert inference_defaults(cfg(precision="mixed")) == {"precision": "mixed"}
    assert inference_defaults(TrainConfig.from_preset("brats", dataset="d", out="o", precision="mixed")) == {
        "sliding_window": True,
        "overlap": 0.5,
        "precision": "mixed",
    }


def test_cli_passes_precision_to_training(monkeypatch):
    import medseg3d.train as train_module

    seen = {}

    def fake_train(cfg, **_):  # train() also takes settings_merged and the on_step/on_end callbacks
        seen["precision"] = cfg.precision
        return {
            "epochs": 0,
            "iterations": 0,
            "seconds": 0.0,
            "best_score": 0.0,
            "best_epoch": None,
            "model": "m",
        }

    monkeypatch.setattr(train_module, "train", fake_train)
    assert main(["train", "data", "--out", "o", "--preset", "quick", "--precision", "mixed"]) == 0
    assert seen["precision"] == "mixed"
    assert main(["train", "data", "--out", "o", "--preset", "quick"]) == 0
    assert seen["precision"] == "auto"
