"""Hostile or broken model files (made in tmp_path from the bundled model) are refused with one line before
any inference: NaN weights, metadata that disagrees with itself or with the network, ONNX graphs whose
dimensions disagree with their metadata."""

from __future__ import annotations

import json
import math

import pytest
import torch

from medseg3d.checkpoint import _write_model_file, read_model_file, rewrite_model_metadata
from medseg3d.cli import main
from medseg3d.errors import ModelError
from medseg3d.models import WEIGHTS_DIR, load_model

BUNDLED = WEIGHTS_DIR / "brats-v1.safetensors"


def _labels(**changes) -> dict:
    meta, _ = read_model_file(BUNDLED)
    return meta["labels"] | changes


def test_the_bundled_model_passes(tmp_path):
    loaded = load_model(BUNDLED, device="cpu")
    assert loaded.kind == "region" and loaded.meta.n_outputs == 3


@pytest.mark.parametrize(
    "updates, message",
    [
        ({"kind": "multiclass"}, "declared multiclass, but its labels say it was trained on regions"),
        ({"n_outputs": 4}, "label scheme has 3 outputs but the network 4"),
        ({"patch": [0, 64, 64]}, r"patch \[0, 64, 64\] is not 3 positive whole numbers"),
        ({"patch": [-64, 64, 64]}, r"patch \[-64, 64, 64\] is not 3 positive"),
        (
            {
                "labels": _labels(
                    values=[0, 1, 2, 300], regions={"WT": [1, 2, 300], "TC": [1, 300], "ET": [300]}
                )
            },
            r"label values \[0, 1, 2, 300\] must be distinct and within 0..255",
        ),
        ({"labels": _labels(values=[0, 1, 1, 4])}, "must be distinct"),
        ({"network": "resnet-9000"}, "unknown network 'resnet-9000'"),
        ({"in_channels": 3}, "do not name its 3 input channels"),
        ({"size_multiple": 0}, "size_multiple 0 is not a whole number >= 1"),
        ({"preprocess": {"crop": "bbox", "downsample": -2.0}}, "preprocessing settings are invalid"),
    ],
)
def test_hostile_metadata_is_refused(tmp_path, updates, message):
    hostile = rewrite_model_metadata(BUNDLED, updates, tmp_path / "hostile.safetensors")
    with pytest.raises(ModelError, match=message) as err:
        load_model(hostile, device="cpu")
    assert str(hostile) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_weights_are_refused(tmp_path, value):
    meta, state = read_model_file(BUNDLED)
    name = next(k for k, t in state.items() if t.is_floating_point() and t.ndim == 5)
    state = dict(state) | {name: torch.full_like(state[name], value)}
    hostile = _write_model_file(state, meta, tmp_path / "nan.safetensors")
    with pytest.raises(ModelError, match=f"1 of its {len(state)} weight tensors hold NaN or infinite values"):
        load_model(hostile, device="cpu")


def test_the_command_line_says_one_line_and_writes_nothing(tmp_path, brats_root, capsys):
    hostile = rewrite_model_metadata(BUNDLED, {"patch": [0, 0, 0]}, tmp_path / "zero.safetensors")
    out = tmp_path / "seg.nii.gz"
    code = main(["predict", str(hostile), str(brats_root / "Brats18_2013_2_1"), "-o", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("medseg3d: error: ") and err.count("\n") == 1 and "patch" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [hostile]


# ---------------------------------------------------------------------------------------------------- ONNX


@pytest.fixture(scope="module")
def bundled_onnx(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from medseg3d.export import export_model

    return export_model(BUNDLED, "onnx", tmp_path_factory.mktemp("onnx") / "brats.onnx", verify=False)


def _edited_onnx(source, dest, meta_updates=None, input_dims=None):
    import onnx

    proto = onnx.load(str(source))
    if meta_updates:
        entry = next(p for p in proto.metadata_props if p.key == "medseg3d")
        entry.value = json.dumps(json.loads(entry.value) | meta_updates)
    if input_dims:
        for dim, value in zip(proto.graph.input[0].type.tensor_type.shape.dim, input_dims):
            if value is not None:
                dim.dim_value = value
    onnx.save(proto, str(dest))
    return dest


def test_the_bundled_onnx_export_passes(bundled_onnx):
    from medseg3d.models import load_onnx_model

    assert load_onnx_model(bundled_onnx, device="cpu").meta.in_channels == 4


def test_onnx_channels_disagreeing_with_metadata(bundled_onnx, tmp_path):
    hostile = _edited_onnx(
        bundled_onnx, tmp_path / "c.onnx", {"in_channels": 3, "modalities": ["flair", "t1", "t2"]}
    )
    with pytest.raises(ModelError, match="the ONNX graph has 4 input channels but its metadata says 3"):
        load_model(hostile, device="cpu")


def test_onnx_fixed_sizes_disagreeing_with_metadata(bundled_onnx, tmp_path):
    hostile = _edited_onnx(bundled_onnx, tmp_path / "f.onnx", input_dims=[None, None, 32, 32, 32])
    with pytest.raises(
        ModelError,
        match=r"fixed spatial sizes \[32, 32, 32\] but the metadata asks for windows of "
        r"\[64, 64, 64\]",
    ):
        load_model(hostile, device="cpu")
    # the same fixed sizes are fine where they are the metadata's patch, run in windows
    fitting = _edited_onnx(
        bundled_onnx, tmp_path / "ok.onnx", {"patch": [32, 32, 32]}, [None, None, 32, 32, 32]
    )
    assert load_model(fitting, device="cpu").meta.patch == (32, 32, 32)


def test_onnx_hostile_metadata_and_nan_weights(bundled_onnx, tmp_path):
    import onnx
    from onnx import numpy_helper

    hostile = _edited_onnx(bundled_onnx, tmp_path / "k.onnx", {"kind": "multiclass"})
    with pytest.raises(ModelError, match="declared multiclass"):
        load_model(hostile, device="cpu")
    proto = onnx.load(str(bundled_onnx))
    init = next(i for i in proto.graph.initializer if len(i.dims) == 5)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * float("nan"), init.name))
    onnx.save(proto, str(tmp_path / "nan.onnx"))
    with pytest.raises(ModelError, match="hold NaN or infinite values"):
        load_model(tmp_path / "nan.onnx", device="cpu")
