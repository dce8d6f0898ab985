"""Helpers shared by the experiment tests."""

import csv
import json

import nibabel as nib
import numpy as np


def read_table(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def make_synthetic_hand_dataset(root, n_cases=3, shape=(72, 64, 40), seed=0):
    """A SYNTHETIC phantom in nnU-Net layout (no real anatomy): four 'fingers' along x, each a rod of four
    bone segments labelled 1 metacarpal, 2 proximal, 3 middle, 4 distal, bright in soft tissue plus noise."""
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    x, y, z = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    for i in range(n_cases):
        label = np.zeros(shape, np.uint8)
        image = rng.normal(10, 2, shape)
        image[(abs(y - shape[1] / 2) < shape[1] * 0.4) & (abs(z - shape[2] / 2) < shape[2] * 0.3)] += 30
        bounds = np.cumsum([6 + rng.integers(0, 4), 22, 12, 9, 7])
        for f in range(4):
            cy, cz = 12 + 13 * f + rng.integers(-2, 3), shape[2] / 2 + rng.integers(-3, 4)
            rod = (y - cy) ** 2 + (z - cz) ** 2 <= 9
            for k in range(4):
                label[rod & (x >= bounds[k]) & (x < bounds[k + 1])] = k + 1
        image[label > 0] += 60
        case = f"synthetic_hand_{i:03d}"
        nib.save(
            nib.Nifti1Image(image.astype(np.float32), np.eye(4)),
            str(root / "imagesTr" / f"{case}_0000.nii.gz"),
        )
        nib.save(nib.Nifti1Image(label, np.eye(4)), str(root / "labelsTr" / f"{case}.nii.gz"))
    labels = {"background": 0, "metacarpals": 1, "proximal": 2, "middle": 3, "distal": 4}
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "name": "synthetic hand phantom (not real data)",
                "channel_names": {"0": "MRI"},
                "labels": labels,
                "numTraining": n_cases,
                "file_ending": ".nii.gz",
            }
        ),
        encoding="utf-8",
    )
    return root
