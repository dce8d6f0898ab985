"""Ensembles (medseg3d.nets.ensemble, medseg3d.models.ensemble, `medseg3d ensemble`): the mean of the members'
probabilities, the file round trip, and members that must not be combined refused in one line."""

import numpy as np
import pytest
import torch
from stand_ins import Constant as _Constant

from medseg3d.checkpoint import read_model_file, rewrite_model_metadata, save_model
from medseg3d.cli import main
from medseg3d.errors import InputError, ModelError
from medseg3d.inference import predict_probabilities
from medseg3d.models import bundled_models, load_model
from medseg3d.models.ensemble import make_ensemble
from medseg3d.nets import build_network, count_parameters
from medseg3d.nets.ensemble import EnsembleNet


def test_region_ensemble_returns_the_logit_of_the_mean_probability():
    a, b = [2.0, -1.0, 0.0], [-2.0, 3.0, 0.5]
    out = EnsembleNet([_Constant(a), _Constant(b)], "region")(torch.zeros(1, 4, 2, 2, 2))
    expected = (torch.sigmoid(torch.tensor(a)) + torch.sigmoid(torch.tensor(b))) / 2  # 0.5, 0.6250, 0.5622
    assert out.shape == (1, 3, 2, 2, 2)
    torch.testing.assert_close(torch.sigmoid(out[0, :, 0, 0, 0]), expected, atol=1e-6, rtol=0)
    assert abs(out[0, 0, 0, 0, 0].item()) < 1e-5  # sigmoid(2) and sigmoid(-2) average to exactly 0.5


def test_multiclass_ensemble_returns_the_log_of_the_mean_probabilities():
    a, b, c = [1.0, 0.0, -1.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]
    out = EnsembleNet([_Constant(v) for v in (a, b, c)], "multiclass")(torch.zeros(2, 1, 3, 1, 2))
    expected = sum(torch.softmax(torch.tensor(v), 0) for v in (a, b, c)) / 3
    torch.testing.assert_close(torch.softmax(out, 1)[1, :, 2, 0, 1], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.exp(out).sum(1), torch.ones(2, 3, 1, 2), atol=1e-6, rtol=0)


def test_identical_members_give_the_member_back():
    torch.manual_seed(0)
    net = build_network("kayalibay", 4, 3, base_channels=4).eval()
    twin = build_network("kayalibay", 4, 3, base_channels=4).eval()
    twin.load_state_dict(net.state_dict())
    x = torch.randn(1, 4, 16, 16, 16)
    with torch.no_grad():
        single, double = torch.sigmoid(net(x)), torch.sigmoid(EnsembleNet([net, twin], "region")(x))
    torch.testing.assert_close(double, single, atol=2e-6, rtol=0)  # float32 sigmoid/logit round trip


def test_members_must_be_alike():
    with pytest.raises(InputError, match="at least 2 members"):
        EnsembleNet([_Constant([0.0])], "region")
    with pytest.raises(InputError, match="'region' or 'multiclass'"):
        EnsembleNet([_Constant([0.0]), _Constant([1.0])], "softmax")
    other = _Constant([0.0])
    other.size_multiple = 8
    with pytest.raises(InputError, match="input size rule"):
        EnsembleNet([_Constant([0.0]), other], "region")


def _member(tmp_path, name, seed, **changes):
    """A small BraTS-like model file: the bundled model's metadata, a 4-channel-wide kayalibay net."""
    meta, _ = read_model_file(bundled_models()["brats-v1"])
    meta = {k: v for k, v in meta.items() if k not in ("format", "name")}
    meta |= {
        "net_args": {"norm": "instance", "base_channels": 4},
        "train_cases": [f"case{seed}", "shared"],
    } | changes
    torch.manual_seed(seed)
    net = build_network("kayalibay", 4, 3, norm="instance", base_channels=4)
    return save_model(net, meta, tmp_path / name / "model.safetensors"), net.eval()


def test_ensemble_file_round_trip(tmp_path):
    (p0, n0), (p1, n1) = _member(tmp_path, "a", 0), _member(tmp_path, "b", 1)
    out = make_ensemble(
        [p0.parent, p1], tmp_path / "ens.safetensors", name="my-ensemble", sliding_window=False
    )
    loaded = load_model(out)
    assert isinstance(loaded.model, EnsembleNet) and loaded.meta.members == 2
    assert count_parameters(loaded.model) == 2 * count_parameters(n0)
    assert loaded.name == "my-ensemble" and loaded.meta.calibration is None  # members' temperatures dropped
    assert loaded.meta.train_cases == ["case0", "case1", "shared"]
    assert [s["source"] for s in loaded.meta.ensemble["sources"]] == [
        "a/model.safetensors",
        "b/model.safetensors",
    ]
    assert loaded.inference_settings(None, None) == (False, 0.5)
    x = np.random.default_rng(0).normal(size=(4, 20, 18, 17)).astype(np.float32)
    got = predict_probabilities(loaded.model, x, kind="region", precision="fp32")
    want = (
        predict_probabilities(n0, x, kind="region", precision="fp32")
        + predict_probabilities(n1, x, kind="region", precision="fp32")
    ) / 2
    assert got.shape == (3, 20, 18, 17)
    torch.testing.assert_close(got, want, atol=2e-6, rtol=0)


def test_members_that_differ_are_refused(tmp_path):
    p0, _ = _member(tmp_path, "a", 0)
    p1, _ = _member(tmp_path, "b", 1, modalities=["t1", "flair", "t1ce", "t2"])
    with pytest.raises(ModelError, match="its modalities .* differs from"):
        make_ensemble([p0, p1], tmp_path / "e.safetensors")
    p2, _ = _member(tmp_path, "c", 2, patch=[32, 32, 32])
    with pytest.raises(ModelError, match="its patch"):
        make_ensemble([p0, p2], tmp_path / "e.safetensors")
    with pytest.raises(ModelError, match="given twice"):
        make_ensemble([p0, p0.parent], tmp_path / "e.safetensors")
    with pytest.raises(ModelError, match="at least 2"):
        make_ensemble([p0], tmp_path / "e.safetensors")
    assert not (tmp_path / "e.safetensors").exists()
    p3, _ = _member(tmp_path, "d", 3)
    ens = make_ensemble([p0, p3], tmp_path / "e.safetensors")
    with pytest.raises(ModelError, match="ensemble already"):
        make_ensemble([ens, p0], tmp_path / "f.safetensors")


@pytest.mark.parametrize("members", [1, 17, "two", True])
def test_broken_ensemble_metadata_is_refused_on_load(tmp_path, members):
    p0, _ = _member(tmp_path, "a", 0)
    p1, _ = _member(tmp_path, "b", 1)
    ens = make_ensemble([p0, p1], tmp_path / "e.safetensors")
    rewrite_model_metadata(ens, {"ensemble": {"members": members}})
    with pytest.raises(ModelError, match="members"):
        load_model(ens)


def test_wrong_member_count_in_metadata_is_refused(tmp_path):
    p0, _ = _member(tmp_path, "a", 0)
    p1, _ = _member(tmp_path, "b", 1)
    ens = make_ensemble([p0, p1], tmp_path / "e.safetensors")
    rewrite_model_metadata(ens, {"ensemble": {"members": 3}})
    with pytest.raises(ModelError, match="weights do not fit"):
        load_model(ens)


def test_cli_ensemble(tmp_path, capsys):
    p0, _ = _member(tmp_path, "a", 0)
    p1, _ = _member(tmp_path, "b", 1)
    out = tmp_path / "e.safetensors"
    assert main(["ensemble", str(p0), str(p1), "-o", str(out), "--whole-volume"]) == 0
    assert "2 members" in capsys.readouterr().out and load_model(out).meta.members == 2
    assert main(["ensemble", str(p0), str(p1), "-o", str(out)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["ensemble", str(p0), str(p1), "-o", str(tmp_path / "e.pt")]) == 2
    err = capsys.readouterr().err
    assert "name the ensemble file .safetensors" in err and len(err.strip().splitlines()) == 1
    assert main(["ensemble", str(p0), str(tmp_path / "missing"), "-o", str(tmp_path / "g.safetensors")]) == 2
    assert "no such model" in capsys.readouterr().err and not (tmp_path / "g.safetensors").exists()


# tests/test_export.py keeps ONNX in the default suite
@pytest.mark.parametrize(
    "fmt", [pytest.param("torchscript", marks=pytest.mark.slow), pytest.param("onnx", marks=pytest.mark.slow)]
)
def test_ensemble_exports_and_runs_the_same(tmp_path, fmt):
    from medseg3d.export import export_model
    from medseg3d.models import load_torchscript_model

    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    (p0, _), (p1, _) = _member(tmp_path, "a", 0), _member(tmp_path, "b", 1)
    ens = make_ensemble([p0, p1], tmp_path / "e.safetensors", sliding_window=False)
    x = np.random.default_rng(0).normal(size=(4, 24, 24, 24)).astype(np.float32)
    want = predict_probabilities(load_model(ens).model, x, kind="region", precision="fp32")
    out = export_model(str(ens), fmt, str(tmp_path / ("e.onnx" if fmt == "onnx" else "e.pt")))
    exported = load_model(out) if fmt == "onnx" else load_torchscript_model(out)
    assert exported.meta.members == 2
    # it runs as one graph: no members to run one by one, so --uncertainty measures mirrored passes
    from medseg3d.predict import resolve_passes

    assert exported.runnable_members == 1 and load_model(ens).runnable_members == 2
    assert resolve_passes(exported, "auto") == 2 and resolve_passes(load_model(ens), "auto") == "members"
    got = predict_probabilities(exported.model, x, kind="region", precision="fp32")
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)  # ONNX Runtime's float32 kernels differ slightly
