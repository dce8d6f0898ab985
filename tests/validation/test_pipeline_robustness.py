"""validation/pipeline_robustness.py: far tumour volume (known answers), rows per model and cascade, bad
case."""

import json

import numpy as np
import pytest
from conftest import VALIDATION, load_script


@pytest.fixture(scope="module")
def robustness():
    return load_script("pipeline_robustness", VALIDATION)


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
    fine = rewrite_model_metadata(
        source,
        {"preprocess": meta["preprocess"] | {"downsample": 1.0}, "inference": {"sliding_window": False}},
        out=tmp_path / "fine.safetensors",
    )
    out = tmp_path / "rows.json"
    assert robustness.main(["brats-v1", "--refiner", str(fine), "--case", str(case), "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == ["brats-v1", f"brats-v1 refined by {fine}"]
    for r in rows:
        assert 0 <= r["dice_WT"] <= 1 and r["components"] >= 1 and 0 <= r["far_30mm_ml"] <= r["tumour_ml"]


def test_table_of_kept_rows_and_bad_files(tmp_path, robustness, capsys):
    rows = [
        {
            "model": "runs/cv27-v1/fold2/last.safetensors",
            "dice_WT": 0.87481,
            "dice_TC": 0.7113,
            "dice_ET": 0.7757,
            "components": 13,
            "far_30mm_ml": 0.51,
            "tumour_ml": 25.98,
        },
        {
            "model": "runs/cv27-v1/fold2/ensemble.safetensors",
            "dice_WT": 0.9,
            "dice_TC": 0.8,
            "dice_ET": 0.85,
            "components": 2,
            "far_30mm_ml": 0.0,
            "tumour_ml": 24.0,
            "sliding_window": True,
            "restored": True,
        },
    ]
    (tmp_path / "a.json").write_text(json.dumps(rows[:1]))
    (tmp_path / "b.json").write_text(json.dumps(rows[1:]))
    assert robustness.main(["--table", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model | Dice WT") and len(lines) == 4
    assert lines[2] == "| runs/cv27-v1/fold2/last.safetensors | 0.875 | 0.711 | 0.776 | 26.0 | 13 | 0.51 |"
    assert (
        lines[3] == "| runs/cv27-v1/fold2/ensemble.safetensors (windows) (restored) "
        "| 0.900 | 0.800 | 0.850 | 24.0 | 2 | 0.00 |"
    )
    (tmp_path / "bad.json").write_text('{"model": 1}')
    with pytest.raises(SystemExit, match="bad.json: not the rows of pipeline_robustness.py --json"):
        robustness.main(["--table", str(tmp_path / "bad.json")])
    with pytest.raises(SystemExit):  # neither models nor --table: argparse's one line
        robustness.main([])
