"""The in-memory volume and the file names that hold one.

:class:`Volume` is the one in-memory type whatever the file format: ``array`` indexed ``[i, j, k]``
(``[i, j, k, c]`` for multi-channel files) and ``affine`` from voxel indices to world millimetres, RAS+.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

NIFTI_SUFFIXES = (".nii.gz", ".nii")
ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
IMAGE_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES
# ITK (and DICOM) world coordinates are LPS; NIfTI's and ours are RAS: negate x and y.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class Volume:
    """A volume: voxel array in (x, y, z[, c]) order plus its voxel-to-world (RAS+, mm) affine.

    Args:
        array: the voxels, indexed ``[i, j, k]`` or ``[i, j, k, c]``.
        affine: 4x4 voxel-to-world matrix (RAS+, millimetres).
        meta: format details used when writing back (``"format"``, ``"nifti_header"``).

    Example:
        >>> vol = read_volume("case_flair.nii.gz")
        >>> vol.shape, vol.spacing, vol.axcodes
        ((240, 240, 155), (1.0, 1.0, 1.0), ('L', 'P', 'S'))
    """

    array: np.ndarray
    affine: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise InputError(f"affine must be 4x4, got {self.affine.shape}")
        if self.array.ndim not in (3, 4):
            raise InputError(
                f"a volume must be 3D (x, y, z) or 4D (x, y, z, c), got shape {self.array.shape}"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        """The spatial shape (X, Y, Z), without a channel axis."""
        return tuple(int(s) for s in self.array.shape[:3])

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k (norms of the affine's columns)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def origin(self) -> tuple[float, float, float]:
        """World (RAS) position of voxel (0, 0, 0)."""
        return tuple(float(v) for v in self.affine[:3, 3])

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix of unit axis directions (columns), RAS."""
        return self.affine[:3, :3] / np.asarray(self.spacing)[None, :]

    @property
    def axcodes(self) -> tuple[str, str, str]:
        """The orientation of the voxel axes, e.g. ("L", "P", "S") (nibabel's aff2axcodes of the affine)."""
        import nibabel as nib

        return tuple(nib.aff2axcodes(self.affine))

    def with_array(self, array: np.ndarray) -> Volume:
        """The same grid and metadata with other voxels (e.g. a label map for this image)."""
        if tuple(array.shape[:3]) != self.shape:
            raise InputError(f"array shape {array.shape[:3]} does not match the volume grid {self.shape}")
        return Volume(array, self.affine.copy(), dict(self.meta))

    def same_grid(self, other: Volume, atol: float = 1e-3) -> bool:
        """True when both volumes have the same shape and (to ``atol`` mm) the same affine.

        Args:
            other: the other volume.
            atol: the tolerance on every affine entry, mm.
        """
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=atol)


def image_suffix(path: str | os.PathLike) -> str:
    """The recognised image suffix of ``path`` (``".nii.gz"``, ``".mha"``...), or ``""``."""
    name = str(path).lower()
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return ""


def strip_image_suffix(name: str) -> str:
    """``name`` without its recognised image suffix (``case.nii.gz`` -> ``case``)."""
    suffix = image_suffix(name)
    return name[: -len(suffix)] if suffix else name


def output_stem(target: str | os.PathLike) -> Path:
    """``target`` without its image suffix: the stem its companion files are named from (``out/t.nii.gz`` ->
    ``out/t``, then ``out/t.json``, ``out/t_uncertainty.nii.gz``...)."""
    target = Path(target)
    return target.with_name(strip_image_suffix(target.name))


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an existing file with an image suffix medseg3d reads."""
    return Path(path).is_file() and image_suffix(path) != ""
