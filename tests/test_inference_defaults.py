"""A model file may say how it is meant to be run (sliding window, overlap); the user's flags always win."""

import pytest
from stand_ins import two_blob_case

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
    assert {k: v for k, v in meta1.items() if k != "inference"} == {
        k: v for k, v in meta0.items() if k != "inference"
    }
    assert state0.keys() == state1.keys() and all((state0[k] == state1[k]).all() for k in state0)

    loaded = load_model(target, device="cpu")
    assert loaded.inference_settings(None, None) == (True, 0.25)
    assert loaded.inference_settings(False, None) == (False, 0.25)  # --whole-volume
    assert loaded.inference_settings(None, 0.5) == (True, 0.5)  # --overlap 0.5
    plain = load_model(source, device="cpu")
    assert plain.inference_settings(None, None) == (plain.meta.inference.get("sliding_window", False), 0.5)


@pytest.mark.parametrize(
    "bad", [{"sliding_window": "yes"}, {"overlap": 1.0}, {"windows": 3}, [True], {"mirror": 1}]
)
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


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "20", True])
def test_bad_far_component_distance_in_metadata_is_rejected(bundled_copy, bad):
    source, target = bundled_copy
    with pytest.raises(ModelError, match="inference.max_distance_mm must be a distance in mm >= 0"):
        rewrite_model_metadata(source, {"inference": {"max_distance_mm": bad}}, out=target)
    assert not target.exists()


def test_far_component_distance_default_comes_from_the_model_and_the_user_wins(bundled_copy):
    source, target = bundled_copy
    rewrite_model_metadata(
        source, {"inference": {"sliding_window": True, "max_distance_mm": 20.0}}, out=target
    )
    loaded = load_model(target, device="cpu")
    assert loaded.max_distance(None) == 20.0
    assert loaded.max_distance(0) == 0.0 and loaded.max_distance(35) == 35.0  # --max-distance 0 / 35
    meta = dict(read_model_file(source)[0].get("inference") or {})
    assert load_model(source, device="cpu").max_distance(None) == float(meta.get("max_distance_mm", 0.0))
    parser = build_parser()
    base = ["predict", "brats-v1", "case", "-o", "x.nii.gz"]
    assert parser.parse_args(base).max_distance is None
    assert parser.parse_args(base + ["--max-distance", "0"]).max_distance == 0.0


def test_the_models_far_component_default_runs_and_is_reported(bundled_copy, tmp_path, monkeypatch, capsys):
    import json

    import numpy as np

    import medseg3d.predict as P
    from medseg3d.io import read_volume

    source, target = bundled_copy
    rewrite_model_metadata(source, {"inference": {"max_distance_mm": 20.0}}, out=target)
    folder, probs = two_blob_case(tmp_path)
    monkeypatch.setattr(P.pipeline, "grid_prediction", lambda *a, **k: P.GridPrediction(probs.copy()))
    loaded = load_model(target, device="cpu")

    out = tmp_path / "out" / "seg.nii.gz"
    P.predict(loaded, [folder], out, preprocess="none", report=True)
    labels = read_volume(out).array
    assert (labels[5:15, 5:15, 5:15] == 2).all() and labels[50:53].sum() == 0 and (labels > 0).sum() == 1000
    said = capsys.readouterr().out
    # 27 voxels of 1 mm^3 = 0.027 ml: said as such, not rounded away to "0.0 ml"
    assert (
        "case: removed 0.03 ml of tumour farther than 20 mm "
        "from the largest component (--max-distance 0 keeps it)" in said
    )
    record = json.loads((tmp_path / "out" / "seg.json").read_text())
    assert record["postprocessing"] == {
        "min_component": 0,
        "min_enhancing": 0,
        "min_enhancing_mm3": 0.0,
        "min_lesion_mm3": {},
        "max_distance_mm": 20.0,
        "far_removed_ml": 0.03,
        "small_removed_ml": 0.0,
    }
    assert any("was removed" in w for w in record["warnings"])

    # --max-distance 0: the user's choice wins, both blobs stay, nothing is said to be removed
    kept = tmp_path / "out" / "kept.nii.gz"
    P.predict(loaded, [folder], kept, preprocess="none", report=True, max_distance=0.0)
    assert (read_volume(kept).array > 0).sum() == 1027
    assert "removed" not in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "kept.json").read_text())["postprocessing"]["far_removed_ml"] == 0.0
    assert np.isclose(probs.sum(), 0.9 * 1027, rtol=1e-5)  # the stand-in network's output was not changed

    # the lesion-size rule instead of the far removal: the small blob goes, and that is said and recorded
    small = tmp_path / "out" / "small.nii.gz"
    P.predict(
        loaded, [folder], small, preprocess="none", report=True, max_distance=0.0, min_lesion={"WT": 100.0}
    )
    assert (read_volume(small).array > 0).sum() == 1000
    said = capsys.readouterr().out
    assert "case: removed 0.03 ml of tumour in components under 100 mm^3 (--min-lesion 0 keeps them)" in said
    post = json.loads((tmp_path / "out" / "small.json").read_text())["postprocessing"]
    assert post["small_removed_ml"] == 0.03 and post["far_removed_ml"] == 0.0


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "500", True])
def test_bad_enhancing_threshold_in_metadata_is_rejected(bundled_copy, bad):
    source, target = bundled_copy
    with pytest.raises(ModelError, match="inference.min_enhancing_mm3 must be a volume"):
        rewrite_model_metadata(source, {"inference": {"min_enhancing_mm3": bad}}, out=target)
    assert not target.exists()


def test_enhancing_threshold_comes_from_the_model_in_voxels_of_each_grid_and_the_user_wins(bundled_copy):
    from medseg3d.predict import PredictOptions

    source, target = bundled_copy
    rewrite_model_metadata(source, {"inference": {"min_enhancing_mm3": 500.0}}, out=target)
    loaded = load_model(target, device="cpu")
    card = PredictOptions().resolve(loaded)
    assert card.min_enhancing == 0 and card.min_enhancing_mm3 == 500.0
    assert card.postprocessing((1.0, 1.0, 1.0))["min_enhancing"] == 500
    assert card.postprocessing((1.0, 1.0, 2.0))["min_enhancing"] == 250  # 2 mm^3 voxels
    assert card.postprocessing((0.9, 0.9, 5.5))["min_enhancing"] == 113  # ceil(500 / 4.455)
    mine = PredictOptions(min_enhancing=40).resolve(loaded)  # --min-enhancing 40: voxels, the user's
    assert mine.min_enhancing_mm3 == 0.0 and mine.postprocessing((0.9, 0.9, 5.5))["min_enhancing"] == 40
    off = PredictOptions(min_enhancing=0).resolve(loaded)  # --min-enhancing 0: off
    assert off.postprocessing((1.0, 1.0, 1.0))["min_enhancing"] == 0
    parser = build_parser()
    base = ["predict", "brats-v1", "case", "-o", "x.nii.gz"]
    assert parser.parse_args(base).min_enhancing is None
    assert parser.parse_args(base + ["--min-enhancing", "0"]).min_enhancing == 0


@pytest.mark.parametrize("bad", [{"NET": 5.0}, {"WT": -1.0}, {"ET": "100"}, [100.0]])
def test_bad_lesion_thresholds_in_metadata_are_rejected(bundled_copy, bad):
    source, target = bundled_copy
    with pytest.raises(ModelError, match="inference.min_lesion_mm3 must map regions"):
        rewrite_model_metadata(source, {"inference": {"min_lesion_mm3": bad}}, out=target)
    assert not target.exists()


def test_lesion_thresholds_come_from_the_model_in_voxels_of_each_grid_and_the_user_wins(bundled_copy):
    from medseg3d.predict import PredictOptions

    source, target = bundled_copy
    rewrite_model_metadata(source, {"inference": {"min_lesion_mm3": {"WT": 1000.0, "ET": 100.0}}}, out=target)
    loaded = load_model(target, device="cpu")
    card = PredictOptions().resolve(loaded)
    assert card.postprocessing((1.0, 1.0, 1.0))["min_lesion"] == {"WT": 1000, "ET": 100}
    assert card.postprocessing((1.0, 1.0, 2.0))["min_lesion"] == {"WT": 500, "ET": 50}
    assert PredictOptions(min_lesion={}).resolve(loaded).postprocessing((1.0, 1.0, 1.0))["min_lesion"] is None
    mine = PredictOptions(min_lesion={"TC": 200.0}).resolve(loaded)
    assert mine.postprocessing((1.0, 1.0, 1.0))["min_lesion"] == {"TC": 200}
    parser = build_parser()
    base = ["predict", "brats-v1", "case", "-o", "x.nii.gz"]
    assert parser.parse_args(base).min_lesion is None
    assert parser.parse_args(base + ["--min-lesion", "0"]).min_lesion == {}
    assert parser.parse_args(base + ["--min-lesion", "wt=1000,ET=100"]).min_lesion == {
        "WT": 1000.0,
        "ET": 100.0,
    }
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--min-lesion", "NET=5"])


def test_mirroring_default_comes_from_the_model_and_the_user_wins(bundled_copy, monkeypatch):
    from medseg3d.predict import PredictOptions

    source, target = bundled_copy
    rewrite_model_metadata(source, {"inference": {"mirror": True}}, out=target)
    mirrored, plain = load_model(target, device="cpu"), load_model(source, device="cpu")
    assert PredictOptions().resolve(mirrored).mirror is True
    assert PredictOptions(mirror=False).resolve(mirrored).mirror is False  # --no-mirror
    assert PredictOptions().resolve(plain).mirror is bool(plain.meta.inference.get("mirror", False))
    assert PredictOptions(mirror=True).resolve(plain).mirror is True
    assert PredictOptions(uncertainty="auto").resolve(mirrored).uncertainty == 8  # 8 passes: they run anyway
    parser = build_parser()
    base = ["predict", "brats-v1", "case", "-o", "x.nii.gz"]
    assert parser.parse_args(base).mirror is None
    assert parser.parse_args(base + ["--mirror"]).mirror is True
    assert parser.parse_args(base + ["--tta"]).mirror is True
    assert parser.parse_args(base + ["--no-mirror"]).mirror is False
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--mirror", "--no-mirror"])
    from medseg3d.models import describe

    monkeypatch.setattr(describe, "bundled_models", lambda: {"mirrored": target})
    assert "mean of the 8 mirrored passes (--no-mirror for one pass)" in describe.describe_models()
