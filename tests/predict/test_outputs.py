"""What predict writes beside a segmentation: one layout of <stem>.json for every case (schema
medseg3d.case/2)."""

import json

import pytest

from medseg3d.models import load_model

# every case's JSON, whatever was asked: the model, where from and to, the grid, the volumes, the alignment,
# the post-processing, the checks and the seconds (tests/stand_ins.two_blob_case is the case)
BASE_KEYS = {
    "schema",
    "model",
    "inputs",
    "output",
    "output_grid",
    "volumes_ml",
    "mode",
    "reason",
    "reference",
    "steps",
    "transforms",
    "warnings",
    "postprocessing",
    "checks",
    "sequence_identification",
    "seconds",
}
REPORT_KEYS = {
    "title",
    "study",
    "anonymised",
    "lesions",
    "location",
    "diameters",
    "model_card",
    "picture_channel",
    "pictures_through_voxel",
    "report",
}


@pytest.fixture()
def stand_in(tmp_path, monkeypatch):
    from stand_ins import two_blob_case

    import medseg3d.predict as P

    folder, probs = two_blob_case(tmp_path)
    monkeypatch.setattr(P.pipeline, "grid_prediction", lambda *a, **k: P.GridPrediction(probs.copy()))
    return P, folder


def test_the_report_writes_the_one_layout_with_its_measurements_at_the_top(stand_in, tmp_path):
    P, folder = stand_in
    loaded = load_model("brats-v1", device="cpu")
    out = tmp_path / "out" / "seg.nii.gz"
    P.predict(loaded, [folder], out, align="none", report=True, max_distance=20.0, progress=False)
    record = json.loads((tmp_path / "out" / "seg.json").read_text(encoding="utf-8"))
    assert set(record) == BASE_KEYS | REPORT_KEYS
    assert record["schema"] == P.outputs.CASE_SCHEMA == "medseg3d.case/2"
    assert (
        record["mode"] == "none" and record["output_grid"]["space"] == "native" and record["transforms"] == {}
    )
    assert record["volumes_ml"]["regions"]["WT"] == 1.0  # the far blob went: 1000 voxels of 1 mm^3
    assert record["postprocessing"]["far_removed_ml"] == 0.03
    assert any("was removed" in w for w in record["warnings"])  # said in the JSON, not only on the page
    assert record["report"]["html"].endswith("seg.report.html") and record["seconds"]["location"] >= 0
    assert "extra" not in record and "raw_input" not in json.dumps(record)


def test_a_case_used_as_it_is_without_extras_or_checks_gets_no_json(stand_in, tmp_path):
    P, folder = stand_in
    loaded = load_model("brats-v1", device="cpu")
    P.predict(
        loaded, [folder], tmp_path / "out" / "seg.nii.gz", align="none", max_distance=0.0, progress=False
    )
    # named channels whose content reads doubtfully are trusted (no check fires): nothing to record
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["seg.nii.gz"]
