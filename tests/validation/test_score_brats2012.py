"""validation/score_brats2012.py: 2018 labels against a 2012 truth map (1 edema, 2 core), known answers."""

import nibabel as nib
import numpy as np
import pytest
from conftest import VALIDATION, load_script


@pytest.fixture(scope="module")
def script():
    return load_script("score_brats2012", VALIDATION)


def test_regions_map_across_conventions(script):
    truth = np.array([0, 1, 1, 2, 2, 0])  # 2012: edema, edema, core, core
    pred = np.array([0, 2, 0, 1, 4, 4])  # 2018: edema, -, NCR, ET, ET (one false positive)
    s = script.score(pred, truth, voxel_ml=0.001)
    assert s["dice_WT"] == pytest.approx(2 * 3 / (4 + 4))  # WT: 3 of 4 found, 1 false positive
    assert s["dice_TC"] == pytest.approx(2 * 2 / (3 + 2))  # core: both found, 1 false positive
    assert s["ml_WT"] == pytest.approx(0.004) and s["ref_ml_TC"] == pytest.approx(0.002)


def test_rejects_2018_truth_and_other_grids(script, tmp_path):
    def save(a, name):
        nib.save(nib.Nifti1Image(a.astype(np.int16), np.eye(4)), str(tmp_path / name))
        return str(tmp_path / name)

    a = np.zeros((4, 4, 4))
    a[1, 1, 1] = 4
    with pytest.raises(SystemExit, match="a 2012 truth map has 0, 1, 2"):
        script.main([save(a, "t2018.nii.gz"), save(a, "p.nii.gz")])
    with pytest.raises(SystemExit, match="not on the truth's grid"):
        script.main([save(np.zeros((4, 4, 4)), "t.nii.gz"), save(np.zeros((4, 4, 5)), "q.nii.gz")])
