"""Small synthetic BraTS-style cases for training tests (seconds, not minutes)."""

from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (30, 28, 26)


def synthetic_case(root: Path, name: str, seed: int) -> Path:
    """A small labelled BraTS-style case: a brain block with an edema block and an enhancing core."""
    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for m in ("flair", "t1", "t1ce", "t2"):
        a = np.zeros(SHAPE, np.int16)
        a[4:26, 3:25, 2:24] = rng.integers(100, 400, (22, 22, 22))
        a[10:18, 10:18, 10:18] += 300
        nib.save(nib.Nifti1Image(a, np.eye(4)), str(folder / f"{name}_{m}.nii.gz"))
    lab = np.zeros(SHAPE, np.uint8)
    lab[9:19, 9:19, 9:19] = 2
    lab[12:16, 12:16, 12:16] = 4
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(folder / f"{name}_seg.nii.gz"))
    return folder
