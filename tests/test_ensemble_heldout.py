"""scripts/ensemble_heldout.py: each model alone and every average, scored on the same held-out cases."""


import nibabel as nib
import numpy as np
import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def ensemble():
    return load_script("ensemble_heldout")


def _save(array, path):
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))


def test_scores_members_and_average(tmp_path, ensemble, capsys):
    # one tiny BraTS-layout case: edema 2 around core 1 around enhancing 4
    case = tmp_path / "heldout" / "Brats18_X_1"
    case.mkdir(parents=True)
    seg = np.zeros((10, 10, 10), dtype=np.uint8)
    seg[2:8, 2:8, 2:8], seg[3:7, 3:7, 3:7], seg[4:6, 4:6, 4:6] = 2, 1, 4
    for m in ("flair", "t1", "t1ce", "t2"):
        _save(np.random.default_rng(0).random((10, 10, 10)).astype(np.float32), case / f"Brats18_X_1_{m}.nii.gz")
    _save(seg, case / "Brats18_X_1_seg.nii.gz")
    regions = np.stack([seg > 0, np.isin(seg, (1, 4)), seg == 4]).astype(np.float32)
    preds = []
    for name, probs in (("sure", 0.9 * regions), ("blind", np.zeros_like(regions))):
        folder = tmp_path / name / "fold0" / "pred"
        folder.mkdir(parents=True)
        _save(np.moveaxis(probs, 0, -1), folder / "Brats18_X_1_probabilities.nii.gz")
        preds.append(str(folder))
    assert ensemble.main([str(tmp_path / "heldout"), *preds]) == 0
    out = capsys.readouterr().out
    # the sure model is exact; the blind one finds nothing; their average (0.45) stays below 0.5
    assert "| sure/fold0 | 1.000 | 1.000 | 1.000 |" in out
    assert "| blind/fold0 | 0.000 | 0.000 | 0.000 |" in out
    assert "| sure/fold0 + blind/fold0 (average) | 0.000 | 0.000 | 0.000 |" in out


def test_needs_two_folders_and_probability_maps(tmp_path, ensemble):
    with pytest.raises(SystemExit, match="at least two"):
        ensemble.main([str(tmp_path), str(tmp_path / "a")])
