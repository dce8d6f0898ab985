"""--compile: the training step goes through torch.compile, is recorded, and saves uncompiled weights."""

import json

import numpy as np
import pytest
import torch

from medseg3d.checkpoint import read_model_file
from medseg3d.cli import build_parser
from medseg3d.errors import InputError
from medseg3d.train import TrainConfig, train
from medseg3d.train import loop as train_loop
from medseg3d.train import step as train_step


def _base(small_dataset, tmp_path, **extra):
    return (
        dict(
            dataset=str(small_dataset),
            out=str(tmp_path / "run"),
            cache=str(tmp_path / "cache"),
            progress=False,
            seed=1,
        )
        | extra
    )


@pytest.mark.slow  # slow: keeps the default suite near 5 minutes; run with -m slow
def test_compile_wraps_only_the_training_step(small_dataset, tmp_path, monkeypatch):
    wrapped = []

    def fake_compile(net):
        wrapped.append(net)
        calls = []

        def forward(x):
            calls.append(tuple(x.shape))
            return net(x)

        forward.calls = calls
        forward.train = net.train
        return forward

    monkeypatch.setattr(train_loop, "compile_for_training", fake_compile)  # where the loop looks it up
    summary = train(
        TrainConfig.from_preset(
            "quick", epochs=1, compile=True, patch=(16, 16, 16), **_base(small_dataset, tmp_path)
        )
    )
    assert len(wrapped) == 1 and isinstance(wrapped[0], torch.nn.Module)
    config = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert config["compile"] is True and np.isfinite(summary["best_score"])
    # the weights are saved from the uncompiled module: no "_orig_mod." prefix in the model file
    _, state = read_model_file(tmp_path / "run" / "model.safetensors")
    assert state and not any(k.startswith("_orig_mod") for k in state)


def test_compile_flags_parse():
    p = build_parser()
    assert p.parse_args(["train", "d", "--out", "o", "--compile"]).compile is True
    assert p.parse_args(["train", "d", "--out", "o"]).compile is False


def test_compile_needs_inputs_of_one_size(small_dataset, tmp_path):
    with pytest.raises(InputError, match="--compile needs inputs of one size"):
        train(TrainConfig.from_preset("quick", epochs=1, compile=True, **_base(small_dataset, tmp_path)))
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_compiled_training_runs_and_matches_eager_closely(small_dataset, tmp_path):
    # a real torch.compile (inductor; minutes on a 2-core CPU): one epoch each, same seed, float32
    patch = (16, 16, 16)
    eager = train(
        TrainConfig.from_preset("quick", epochs=1, patch=patch, **_base(small_dataset, tmp_path / "e"))
    )
    compiled = train(
        TrainConfig.from_preset(
            "quick", epochs=1, patch=patch, compile=True, **_base(small_dataset, tmp_path / "c")
        )
    )
    _, w_eager = read_model_file(tmp_path / "e" / "run" / "last.safetensors")
    _, w_comp = read_model_file(tmp_path / "c" / "run" / "last.safetensors")
    assert w_eager.keys() == w_comp.keys()
    for k in w_eager:
        assert torch.allclose(w_eager[k], w_comp[k], atol=1e-3), k
    assert compiled["best_score"] == pytest.approx(eager["best_score"], abs=0.05)


def test_a_failing_compiler_falls_back_to_eager(monkeypatch):
    import torch._dynamo
    from torch._inductor import compile_fx

    calls = []

    def no_compiler(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(compile_fx, "compile_fx", no_compiler)
    torch._dynamo.reset()
    torch.manual_seed(0)
    net = torch.nn.Conv3d(1, 2, 3, padding=1)
    x = torch.randn(1, 1, 8, 8, 8)
    try:
        y = train_step.compile_for_training(net)(x)  # warns, then runs uncompiled
        y.sum().backward()
        assert calls, "the compiler was not asked: the test would not show a fallback"
        assert torch.allclose(y, net(x)) and net.weight.grad is not None
    finally:
        torch._dynamo.reset()
