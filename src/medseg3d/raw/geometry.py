"""Grids and transforms in physical space, for scans that do not share one grid.

Every transform here is a 4x4 matrix in ITK's LPS millimetres that maps a point of one space to the matching
point of another (the direction SimpleITK's resampling needs: from the output grid into the image that is
read). Rigid and affine maps compose by matrix product and invert exactly, so each step of the raw-input
pipeline can be chained, stored as plain JSON and undone.

A :class:`~medseg3d.io.Volume` (RAS affine, array in ``(x, y, z)``) converts to and from a SimpleITK image
without resampling: only the array's axis order and the RAS/LPS sign convention change.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..io import Volume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def volume_to_sitk(volume: Volume, dtype=np.float32):
    """The SimpleITK image of a 3D volume on the same physical grid (no resampling).

    Args:
        volume: a 3D volume, array (X, Y, Z) with its RAS affine.
        dtype: the voxel type of the image.

    Returns:
        The image (LPS origin, spacing and direction, as ITK keeps them).

    Raises:
        InputError: the volume is not 3D.
    """
    import SimpleITK as sitk

    if volume.array.ndim != 3:
        raise InputError(f"expected a 3D image, got shape {volume.array.shape}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(volume.array.astype(dtype, copy=False))))
    lps = LPS_TO_RAS @ volume.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in (lps[:3, :3] / spacing[None, :]).ravel()))
    image.SetOrigin(tuple(float(v) for v in lps[:3, 3]))
    return image


def sitk_affine(image) -> np.ndarray:
    """The RAS voxel-to-world affine of a SimpleITK image."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing())[None, :]
    lps[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ lps


def sitk_to_volume(image, meta: dict | None = None) -> Volume:
    """A Volume from a 3D scalar or vector SimpleITK image (vector components become the last axis).

    Args:
        image: the image; its array becomes (X, Y, Z) or (X, Y, Z, components), its geometry a RAS affine.
        meta: the Volume's metadata (copied; None: empty).
    """
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(image)
    axes = (2, 1, 0, 3) if image.GetNumberOfComponentsPerPixel() > 1 else (2, 1, 0)
    return Volume(np.ascontiguousarray(np.transpose(array, axes)), sitk_affine(image), dict(meta or {}))


def grid_image(shape, affine: np.ndarray):
    """An empty SimpleITK image that only describes a grid (the reference of a resampling).

    Args:
        shape: the grid's (X, Y, Z) size in voxels.
        affine: its 4x4 voxel-to-RAS map (mm).
    """
    return volume_to_sitk(Volume(np.zeros(tuple(int(s) for s in shape), dtype=np.uint8), affine), np.uint8)


def matrix_to_sitk(matrix: np.ndarray):
    """A SimpleITK AffineTransform for a 4x4 LPS point map."""
    import SimpleITK as sitk

    t = sitk.AffineTransform(3)
    t.SetMatrix(tuple(float(v) for v in np.asarray(matrix)[:3, :3].ravel()))
    t.SetTranslation(tuple(float(v) for v in np.asarray(matrix)[:3, 3]))
    return t


def sitk_to_matrix(transform) -> np.ndarray:
    """The 4x4 LPS point map of a SimpleITK matrix-offset transform (Euler, similarity, affine)."""
    import SimpleITK as sitk

    t = transform
    if isinstance(t, sitk.CompositeTransform):
        out = np.eye(4)
        for k in range(t.GetNumberOfTransforms()):  # the last one added is applied first
            out = out @ sitk_to_matrix(t.GetNthTransform(k))
        return out
    dim = t.GetDimension()
    if not hasattr(t, "GetMatrix"):  # e.g. a translation: read the (linear) map off four points
        origin = np.asarray(t.TransformPoint((0.0,) * dim))
        out = np.eye(4)
        for k in range(dim):
            out[:3, k] = np.asarray(t.TransformPoint(tuple(float(v) for v in np.eye(dim)[k]))) - origin
        out[:3, 3] = origin
        return out
    m = np.asarray(t.GetMatrix(), dtype=np.float64).reshape(dim, dim)
    c = np.asarray(t.GetCenter(), dtype=np.float64)
    tr = np.asarray(t.GetTranslation(), dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = m
    out[:3, 3] = tr + c - m @ c
    return out


def resample(
    volume: Volume,
    shape,
    affine: np.ndarray,
    matrix: np.ndarray | None = None,
    *,
    order: int = 1,
    fill: float = 0.0,
    dtype=np.float32,
) -> np.ndarray:
    """Values of ``volume`` on the grid ``(shape, affine)``.

    Args:
        volume: the image to sample (3D).
        shape, affine: the target grid: (X, Y, Z) voxels and its 4x4 voxel-to-RAS map (mm).
        matrix: a 4x4 map from grid points (LPS mm) to ``volume``'s points (None: the identity, when both
            already share physical space).
        order: 0 nearest neighbour, 1 trilinear, 3 B-spline.
        fill: the value of points outside ``volume``.
        dtype: the returned array's type.

    Returns:
        The (X, Y, Z) array on the target grid.
    """
    import SimpleITK as sitk

    interp = {0: sitk.sitkNearestNeighbor, 1: sitk.sitkLinear, 3: sitk.sitkBSpline}[order]
    transform = matrix_to_sitk(np.eye(4) if matrix is None else matrix)
    ref = grid_image(shape, affine)
    out = sitk.Resample(
        volume_to_sitk(volume, np.float32), ref, transform, interp, float(fill), sitk.sitkFloat32
    )
    return np.ascontiguousarray(np.transpose(sitk.GetArrayFromImage(out))).astype(dtype, copy=False)


def voxel_corners(shape, affine: np.ndarray) -> np.ndarray:
    """World (RAS, mm) positions of the eight corner voxel centres, (8, 3).

    Args:
        shape: the grid's (X, Y, Z) size in voxels.
        affine: its 4x4 voxel-to-RAS map.
    """
    idx = np.array(
        [[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)],
        dtype=np.float64,
    )
    return idx @ affine[:3, :3].T + affine[:3, 3]


def covering_grid(
    shape, affine: np.ndarray, axcodes: tuple[str, str, str], spacing
) -> tuple[tuple, np.ndarray]:
    """A grid with the given orientation and spacing that covers the field of view of ``(shape, affine)``.

    When the input's axes are a permutation/flip of ``axcodes`` at the same spacing, the voxel centres of the
    two grids coincide, so resampling between them is exact.

    Args:
        shape, affine: the grid to cover: (X, Y, Z) voxels and its 4x4 voxel-to-RAS map (mm).
        axcodes: the new grid's orientation, e.g. ("L", "P", "S").
        spacing: the new grid's voxel size in mm, (X, Y, Z).

    Returns:
        (shape, 4x4 RAS affine) of the new grid.
    """
    import nibabel as nib

    target = nib.orientations.axcodes2ornt(tuple(axcodes))
    rot = np.zeros((3, 3))
    for col, (axis, sign) in enumerate(target):
        rot[int(axis), col] = sign
    spacing = np.asarray(spacing, dtype=np.float64)
    new = np.eye(4)
    new[:3, :3] = rot * spacing[None, :]
    corners = voxel_corners(shape, affine)
    inv = np.linalg.inv(new[:3, :3])
    idx = corners @ inv.T  # corner positions in the new grid's index units, origin at world 0
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    # put the first input voxel centre on a whole index of the new grid, the grid starting at or below ``lo``
    base = idx[0] - np.ceil(idx[0] - lo - 1e-6)
    new[:3, 3] = new[:3, :3] @ base
    out_shape = tuple(int(v) for v in np.floor(hi - base + 1e-6) + 1)
    return out_shape, new
