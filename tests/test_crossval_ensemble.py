"""scripts/crossval_ensemble.py: each fold's models of several cross-validations as one ensemble file, scored on
the fold's held-out cases exactly as `medseg3d predict` runs it."""

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import load_script

from medseg3d.checkpoint import read_model_file, save_model
from medseg3d.models import bundled_models, load_model
from medseg3d.nets import build_network


def _fold(root, seed, split="split.json", done=True):
    """A finished fold 0: a small BraTS-like model, its config and (for the first root) its held-out case."""
    run = root / "fold0"
    run.mkdir(parents=True)
    meta, _ = read_model_file(bundled_models()["brats-v1"])
    meta = {k: v for k, v in meta.items() if k not in ("format", "name", "calibration")}
    meta |= {"net_args": {"norm": "instance", "base_channels": 4}}
    torch.manual_seed(seed)
    save_model(build_network("kayalibay", 4, 3, norm="instance", base_channels=4), meta, run / "last.safetensors")
    (run / "config.json").write_text(json.dumps({"split_file": split}))
    if done:
        (run / "done").touch()
    return run


def _case(folder, name, seed):
    """A small synthetic BraTS case (4 channels and a label map, 1 mm): a bright blob of tumour in a head."""
    rng = np.random.default_rng(seed)
    case = folder / name
    case.mkdir(parents=True)
    labels = np.zeros((40, 44, 36), np.uint8)
    labels[14:24, 16:28, 12:22], labels[17:21, 19:25, 15:19] = 2, 4
    for channel in ("flair", "t1", "t1ce", "t2"):
        image = np.zeros(labels.shape, np.float32)
        image[4:36, 5:40, 3:33] = rng.uniform(50, 100, (32, 35, 30))
        image[labels > 0] += 80
        nib.save(nib.Nifti1Image(image, np.eye(4)), case / f"{name}_{channel}.nii.gz")
    nib.save(nib.Nifti1Image(labels, np.eye(4)), case / f"{name}_seg.nii.gz")


def test_ensemble_of_two_cross_validations_is_scored(tmp_path, capsys):
    script = load_script("crossval_ensemble")
    first, other = _fold(tmp_path / "cv-a", 0), _fold(tmp_path / "cv-b", 1, done=False)
    for seed, name in enumerate(("Case_A", "Case_B")):
        _case(first / "heldout", name, seed)
    assert script.main([str(first.parent), str(other.parent)]) == 1  # cv-b's fold 0 is not finished
    (other / "done").touch()
    assert script.main([str(first.parent), str(other.parent)]) == 0
    ensemble = load_model(first / "ensemble-cv-b.safetensors")
    assert ensemble.meta.members == 2
    with open(first / "pred-ens-cv-b" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["case"] for r in rows) == ["Case_A", "Case_B"]
    assert all(0 <= float(r["dice_WT"]) <= 1 for r in rows)
    assert "--variant ens-cv-b" in capsys.readouterr().out


def test_folds_of_different_splits_are_refused(tmp_path):
    script = load_script("crossval_ensemble")
    _fold(tmp_path / "cv-a", 0)
    _fold(tmp_path / "cv-b", 1, split="other.json")
    with pytest.raises(SystemExit, match="different splits"):
        script.main([str(tmp_path / "cv-a"), str(tmp_path / "cv-b")])
