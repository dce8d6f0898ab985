"""Every registered network survives a TorchScript round trip and an ONNX export (opset 17) with the same
output (onnxruntime, max abs diff < 1e-4)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch

from medseg3d.nets import build_network, network_names

from .helpers import SMALL_CASES, calibrate_batch_norm, n_classes_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated in torch 2.x

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

# Registry defaults at full width for the networks that SMALL_CASES narrows (tested when slow tests run).
FULL_WIDTH_CASES = {
    "unet3d": ({}, (1, 4, 32, 32, 32)),
    "unet2d": ({}, (1, 1, 188, 188)),
    "twopath": ({}, (1, 4, 40, 40)),
    "inputcascade": ({}, (1, 4, 72, 72)),
}


def _built(name: str, overrides: dict, shape: tuple[int, ...]) -> tuple[torch.nn.Module, torch.Tensor]:
    model = build_network(name, shape[1], n_classes_for(name), **overrides)
    x = torch.randn(*shape)
    return calibrate_batch_norm(model, x), x


def _torchscript_round_trip(model: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        expected = model(x)
    scripted = torch.jit.script(model)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    with torch.no_grad():
        actual = loaded(x)
    assert actual.shape == expected.shape
    assert torch.allclose(actual, expected, atol=1e-5, rtol=1e-5)


def _onnx_matches(model: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        expected = model(x).numpy()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation
        torch.onnx.export(
            model,
            (x,),
            buffer,
            opset_version=17,
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
        )
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == 17
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    actual = session.run(["logits"], {"image": x.numpy()})[0]
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() < 1e-4


@pytest.mark.parametrize("name", network_names())
def test_torchscript_round_trip(name):
    overrides, shape = SMALL_CASES[name]
    _torchscript_round_trip(*_built(name, overrides, shape))


@pytest.mark.parametrize("name", network_names())
def test_onnx_export_matches_onnxruntime(name):
    overrides, shape = SMALL_CASES[name]
    _onnx_matches(*_built(name, overrides, shape))


def test_torchscript_keeps_the_input_size_check():
    model = build_network("kayalibay", 4, 5).eval()
    scripted = torch.jit.script(model)
    with pytest.raises(Exception, match="InputError"):
        scripted(torch.zeros(1, 4, 16, 16, 12))


def test_deep_supervision_scripts_in_both_modes():
    model = build_network("unet3d", 4, 5, channels=(4, 8, 16), deep_supervision=True)
    scripted = torch.jit.script(model)
    x = torch.randn(1, 4, 16, 16, 16)
    assert isinstance(scripted.train()(x), list)
    assert isinstance(scripted.eval()(x), torch.Tensor)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FULL_WIDTH_CASES))
def test_full_width_exports(name):
    overrides, shape = FULL_WIDTH_CASES[name]
    model, x = _built(name, overrides, shape)
    _torchscript_round_trip(model, x)
    _onnx_matches(model, x)


@pytest.mark.parametrize(
    ("name", "other_shape"),
    [
        ("kayalibay", (2, 4, 24, 32, 16)),
        ("unet2d", (1, 4, 204, 220)),
        ("inputcascade", (1, 4, 80, 66)),
    ],
)
def test_onnx_export_with_dynamic_sizes(name, other_shape):
    overrides, shape = SMALL_CASES[name]
    model, x = _built(name, overrides, shape)
    axes = {0: "batch", **{axis: f"size{axis}" for axis in range(2, len(shape))}}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            buffer,
            opset_version=17,
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": axes, "logits": axes},
        )
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    other = torch.randn(*other_shape)
    with torch.no_grad():
        expected = model(other).numpy()
    actual = session.run(["logits"], {"image": other.numpy()})[0]
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() < 1e-4
