"""A model file may say how it is meant to be run (sliding window, overlap); the user's flags always win."""

import pytest

from medseg3d.checkpoint import read_model_file, rewrite_model_metadata
from medseg3d.cli import build_parser
from medseg3d.errors import ModelError
from medseg3d.models import bundled_models, load_model


@pytest.fixture()
def bundled_copy(tmp_path):
    return bundled_models()["brats-v1"], tmp_path / "windowed.safetensors"


def test_rewrite_keeps_weights_and_adds_defaults(bundled_copy):
    source, target = bundled_copy
    rewrite_model_metadata(source, {"inference": {"sliding_window": True, "overlap": 0.25}}, out=target)
    meta0, state0 = read_model_file(source)
    meta1, state1 = read_model_file(target)
    assert meta1["inference"] == {"sliding_window": True, "overlap": 0.25}
    assert {k: v for k, v in meta1.items() if k != "inference"} == {k: v for k, v in meta0.items() if k != "inference"}
    assert state0.keys() == state1.keys() and all((state0[k] == state1[k]).all() for k in state0)

    loaded = load_model(target, device="cpu")
    assert loaded.inference_settings(None, None) == (True, 0.25)
    assert loaded.inference_settings(False, None) == (False, 0.25)  # --whole-volume
    assert loaded.inference_settings(None, 0.5) == (True, 0.5)  # --overlap 0.5
    plain = load_model(source, device="cpu")
    assert plain.inference_settings(None, None) == (plain.meta.inference.get("sliding_window", False), 0.5)


@pytest.mark.parametrize("bad", [{"sliding_window": "yes"}, {"overlap": 1.0}, {"windows": 3}, [True]])
def test_bad_inference_metadata_is_rejected(bundled_copy, bad):
    source, target = bundled_copy
    with pytest.raises(ModelError, match="inference"):
        rewrite_model_metadata(source, {"inference": bad}, out=target)
    assert not target.exists()  # nothing half-written


def test_cli_flags():
    parser = build_parser()
    base = ["predict", "brats-v1", "case", "-o", "x.nii.gz"]
    assert parser.parse_args(base).sliding_window is None
    assert parser.parse_args(base + ["--sliding-window"]).sliding_window is True
    assert parser.parse_args(base + ["--whole-volume"]).sliding_window is False
    assert parser.parse_args(base).overlap is None
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--whole-volume", "--sliding-window"])


def test_models_listing_says_how_it_runs(capsys):
    from medseg3d.cli import main

    assert main(["models"]) == 0
    assert "inference" in capsys.readouterr().out
