"""scripts/pipeline_robustness.py: far tumour volume (known answers), rows per model and cascade, bad case."""

import json

import numpy as np
import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def robustness():
    return load_script("pipeline_robustness")


def test_far_volume_known_answer(robustness):
    labels = np.zeros((40, 40, 40), np.uint8)
    labels[2:12, 2:12, 2:12] = 2  # the largest: 1000 voxels
    labels[14:16, 2:4, 2:4] = 1  # 8 voxels, 3 voxels (6 mm) away: kept
    labels[35:38, 35:38, 35:38] = 4  # 27 voxels, far: removed
    # 2 mm voxels: 8 ml per 1000 voxels; the far component is 27 * 8 / 1000 ml
    assert robustness.far_volume_ml(labels, (2.0, 2.0, 2.0)) == pytest.approx(27 * 8 / 1000)
    assert robustness.far_volume_ml(labels, (2.0, 2.0, 2.0), distance_mm=200) == 0.0


def test_missing_case_is_one_line(tmp_path, robustness):
    with pytest.raises(SystemExit, match="fusion_labels.nii.gz is missing"):
        robustness.main(["brats-v1", "--case", str(tmp_path)])


@pytest.mark.slow
def test_model_and_cascade_rows(tmp_path, robustness, data_root):
    from medseg3d.checkpoint import read_model_file, rewrite_model_metadata
    from medseg3d.models import bundled_models

    case = data_root / "raw_clinical" / "TCGA-FG-6692" / "brainles_sri24"
    if not (case / "fusion_labels.nii.gz").is_file():
        pytest.skip("shared brainles_sri24 case not present")
    source = bundled_models()["brats-v1"]
    meta, _ = read_model_file(source)
    fine = rewrite_model_metadata(source, {"preprocess": meta["preprocess"] | {"downsample": 1.0},
                                           "inference": {"sliding_window": False}}, out=tmp_path / "fine.safetensors")
    out = tmp_path / "rows.json"
    assert robustness.main(["brats-v1", "--refiner", str(fine), "--case", str(case), "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == ["brats-v1", f"brats-v1 refined by {fine}"]
    for r in rows:
        assert 0 <= r["dice_WT"] <= 1 and r["components"] >= 1 and 0 <= r["far_30mm_ml"] <= r["tumour_ml"]
