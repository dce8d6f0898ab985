"""Tiny SYNTHETIC datasets (no anatomy) for the plan / crossval / bundle tests."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np


def make_tiny_dataset(
    root, n_cases=4, shape=(16, 16, 16), spacing=(1.0, 1.0, 1.0), modality="MRI", seed=0, offset=0.0
):
    """``n_cases`` cases in nnU-Net layout: noise with two bright touching boxes labelled 1 and 2 (names
    'front' and 'back'), each case's boxes moved by a voxel or two; intensities ``offset`` + 100 inside."""
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    affine = np.diag([*spacing, 1.0])
    for i in range(n_cases):
        label = np.zeros(shape, np.uint8)
        a = [s // 4 + int(rng.integers(-1, 2)) for s in shape]
        mid = shape[0] // 2
        label[a[0] : mid, a[1] : a[1] + shape[1] // 2, a[2] : a[2] + shape[2] // 2] = 1
        label[mid : mid + shape[0] // 4, a[1] : a[1] + shape[1] // 2, a[2] : a[2] + shape[2] // 2] = 2
        image = offset + rng.normal(20, 5, shape) + 80 * (label > 0) + 20 * (label == 2)
        case = f"tiny_{i:03d}"
        nib.save(
            nib.Nifti1Image(image.astype(np.float32), affine), str(root / "imagesTr" / f"{case}_0000.nii.gz")
        )
        nib.save(nib.Nifti1Image(label, affine), str(root / "labelsTr" / f"{case}.nii.gz"))
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "name": "tiny synthetic boxes (not real data)",
                "channel_names": {"0": modality},
                "labels": {"background": 0, "front": 1, "back": 2},
                "numTraining": n_cases,
                "file_ending": ".nii.gz",
            }
        ),
        encoding="utf-8",
    )
    return root
