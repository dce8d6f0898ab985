"""Rotation matrices and resampling about the volume centre, the interpolation behind :func:`rotate_scale`.

Spatial axes are numbered 0..D-1 over the spatial dimensions only (the channel axis is not counted). A
rotation by +angle in plane (a, b) turns axis a towards axis b, so 90 degrees equals ``torch.rot90(x, 1, (a,
b))`` on a square plane. In 3D, rotations in a single plane (optionally with scaling) are computed
separably, in-plane bilinear via the vectorised 2D ``grid_sample`` and linear along the third axis, which is
the same trilinear interpolation and about twice as fast as 3D ``grid_sample``; any other linear map falls
back to 3D ``grid_sample``. Sampling matrices map output voxel offsets (from the centre) to input offsets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medseg3d.errors import InputError

__all__ = [
    "PLANES",
    "linear_map",
    "plane_rotation",
    "resample",
    "resample_general",
    "resample_label",
    "resample_separable",
    "rotation_matrix",
    "separable_axis",
]

#: Rotation planes per number of spatial dimensions, in the order ``rotate_scale`` reads per-plane angles.
PLANES: dict[int, tuple[tuple[int, int], ...]] = {2: ((0, 1),), 3: ((0, 1), (0, 2), (1, 2))}

IDENTITY_ATOL = 1e-7  # a sampling matrix this close to the identity moves no voxel by more than ~1e-5
ZERO_ATOL = 1e-9


def rotation_matrix(angles_deg: float | Sequence[float], spatial_dims: int) -> np.ndarray:
    """Rotation matrix for per-plane angles in degrees, planes in the order of :data:`PLANES`.

    The rotations are applied in that order (first plane (0, 1)).

    Args:
        angles_deg: one angle per plane (3 in 3D, 1 in 2D; a scalar is accepted in 2D).
        spatial_dims: 2 or 3.

    Returns:
        The (sd, sd) matrix.

    Raises:
        InputError: the wrong number of angles.
    """
    planes = PLANES[spatial_dims]
    angles = np.atleast_1d(np.asarray(angles_deg, dtype=np.float64))
    if angles.ndim != 1 or angles.size != len(planes):
        raise InputError(
            f"{spatial_dims}D rotation needs {len(planes)} angle(s), one per plane {list(planes)}, "
            f"or a {spatial_dims}x{spatial_dims} matrix; got {np.shape(angles_deg)}"
        )
    rot = np.eye(spatial_dims)
    for (a, b), angle in zip(planes, angles):
        rot = plane_rotation(float(angle), (a, b), spatial_dims) @ rot
    return rot


def plane_rotation(angle_deg: float, plane: tuple[int, int], sd: int) -> np.ndarray:
    """The (sd, sd) rotation by ``angle_deg`` degrees in the plane of two axes (identity elsewhere).

    Args:
        angle_deg: the angle, degrees.
        plane: the two axes (a, b); positive turns a towards b.
        sd: the number of spatial dimensions.
    """
    a, b = plane
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    rot = np.eye(sd)
    rot[a, a], rot[a, b], rot[b, a], rot[b, b] = c, -s, s, c
    return rot


def linear_map(angles_deg: Any, scale: float | Sequence[float], sd: int) -> np.ndarray:
    """Forward map A = diag(scale) @ R taking input voxel offsets (from the centre) to output offsets.

    Args:
        angles_deg: per-plane angles (:func:`rotation_matrix`) or an (sd, sd) rotation matrix.
        scale: one positive zoom or one per axis.
        sd: the number of spatial dimensions.

    Returns:
        The (sd, sd) matrix.

    Raises:
        InputError: a matrix of the wrong shape, bad scales, or a singular map.
    """
    arr = np.asarray(angles_deg.detach().cpu() if isinstance(angles_deg, torch.Tensor) else angles_deg)
    if arr.ndim == 2:
        if arr.shape != (sd, sd):
            raise InputError(f"a {sd}D rotation matrix must be {sd}x{sd}, got {arr.shape}")
        rot = arr.astype(np.float64)
    else:
        rot = rotation_matrix(arr, sd)
    s = np.atleast_1d(np.asarray(scale, dtype=np.float64))
    if s.size == 1:
        s = np.repeat(s, sd)
    if s.ndim != 1 or s.size != sd or not np.all(s > 0):
        raise InputError(f"scale must be one positive number or {sd} (one per axis), got {scale!r}")
    forward = s[:, None] * rot
    if abs(np.linalg.det(forward)) < 1e-12:
        raise InputError("the rotation matrix times the scale is singular; pass an invertible matrix")
    return forward


def resample_label(label: torch.Tensor, sampling: np.ndarray, sd: int, label_order: int) -> torch.Tensor:
    """A label resampled with a sampling matrix about the centre (zeros outside), keeping its dtype.

    Args:
        label: class indices (*spatial) or masks (R, *spatial).
        sampling: the (sd, sd) matrix from output offsets to input offsets.
        sd: the number of spatial dimensions.
        label_order: 0 nearest neighbour; 1 linear (per-class one-hot then argmax, or masks thresholded at
            0.5).

    Raises:
        InputError: label_order 1 with negative class indices.
    """
    is_index_map = label.ndim == sd
    work_dtype = label.dtype if label.dtype in (torch.float32, torch.float64) else torch.float32
    if label_order == 0:
        x = label[None] if is_index_map else label
        out = resample(x.to(work_dtype), sampling, "nearest")
        return (out[0] if is_index_map else out).to(label.dtype)
    if is_index_map:
        if label.numel() and int(label.min()) < 0:
            raise InputError("label_order=1 needs non-negative class indices; use label_order=0")
        n_classes = int(label.max()) + 1 if label.numel() else 1
        onehot = F.one_hot(label.long(), n_classes).movedim(-1, 0).to(torch.float32)
        return resample(onehot, sampling, "bilinear").argmax(0).to(label.dtype)
    out = resample(label.to(work_dtype), sampling, "bilinear") >= 0.5
    return out.to(label.dtype)


def resample(t: torch.Tensor, sampling: np.ndarray, mode: str) -> torch.Tensor:
    """Resample (C, *spatial) with a linear sampling matrix about the centre; zeros outside.

    Args:
        t: the tensor, (C, X, Y) or (C, X, Y, Z).
        sampling: the (sd, sd) matrix taking output voxel offsets to input offsets.
        mode: "nearest" or "bilinear" (trilinear in 3D).
    """
    sd = t.ndim - 1
    if sd == 2:
        grid = grid_2d(sampling, t.shape[1:], t)
        return F.grid_sample(t[None], grid, mode=mode, padding_mode="zeros", align_corners=False)[0]
    axis = separable_axis(sampling)
    if axis is None:
        return resample_general(t, sampling, mode)
    return resample_separable(t, sampling, axis, mode)


def separable_axis(m: np.ndarray) -> int | None:
    """An axis c the matrix does not mix with the others (block-diagonal), preferring the outermost."""
    for c in range(m.shape[0]):
        others = [j for j in range(m.shape[0]) if j != c]
        if np.all(np.abs(m[c, others]) < ZERO_ATOL) and np.all(np.abs(m[others, c]) < ZERO_ATOL):
            return c
    return None


def grid_2d(m: np.ndarray, size: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """grid_sample grid (1, Na, Nb, 2) for sampling matrix m on a plane of the given size.

    Args:
        m: the (2, 2) sampling matrix (output offsets to input offsets).
        size: the plane's (Na, Nb).
        like: the grid takes its dtype and device.
    """
    na, nb = int(size[0]), int(size[1])
    ua = torch.arange(na, dtype=torch.float64) - (na - 1) / 2
    ub = torch.arange(nb, dtype=torch.float64) - (nb - 1) / 2
    # align_corners=False: normalised coordinate = 2 * offset / size
    ya = (2 * m[0, 0] / na) * ua[:, None] + (2 * m[0, 1] / na) * ub[None, :]
    xb = (2 * m[1, 0] / nb) * ua[:, None] + (2 * m[1, 1] / nb) * ub[None, :]
    return torch.stack([xb, ya], dim=-1)[None].to(like)


def resample_general(t: torch.Tensor, m: np.ndarray, mode: str) -> torch.Tensor:
    """Resample (C, X, Y, Z) by one trilinear (or nearest) grid_sample with any 3x3 sampling matrix.

    Args:
        t: the tensor.
        m: the (3, 3) sampling matrix (output offsets to input offsets).
        mode: "nearest" or "bilinear".
    """
    sizes = t.shape[1:]
    grid = torch.empty((1, *sizes, 3), dtype=t.dtype, device=t.device)
    u = [torch.arange(n, dtype=t.dtype, device=t.device) - (n - 1) / 2 for n in sizes]
    for k in range(3):  # grid's last axis runs (Z, Y, X)
        w = [2 * float(m[k, j]) / sizes[k] for j in range(3)]
        xy = w[0] * u[0][:, None, None] + w[1] * u[1][None, :, None]
        torch.add(xy, w[2] * u[2][None, None, :], out=grid[0, ..., 2 - k])
    return F.grid_sample(t[None], grid, mode=mode, padding_mode="zeros", align_corners=False)[0]


def resample_separable(t: torch.Tensor, m: np.ndarray, c: int, mode: str) -> torch.Tensor:
    """Resample in the plane of two axes (2D) and along the third axis c (1D): trilinear, done separably.

    The 2D step reads the input through a strided view and the 1D step writes straight into the final
    layout, so a rotation in any plane costs two passes over the volume and no extra permuting copy.

    Args:
        t: the (C, X, Y, Z) tensor.
        m: the (3, 3) sampling matrix; it must not mix axis c with the others (:func:`separable_axis`).
        c: that axis.
        mode: "nearest" or "bilinear".

    Returns:
        A new tensor, or ``t``'s own data when the map is the identity along c and c is 0.
    """
    a, b = [j for j in range(3) if j != c]
    perm = (0, c + 1, a + 1, b + 1)
    src = t.permute(perm)  # (C, Nc, Na, Nb) view
    ch, nc, na, nb = src.shape
    plane = m[np.ix_([a, b], [a, b])]
    if not np.allclose(plane, np.eye(2), rtol=0, atol=IDENTITY_ATOL):
        grid = grid_2d(plane, (na, nb), t)
        if c == 0 and t.is_contiguous():  # fold (C, X) into grid_sample's channels: output already in place
            src = F.grid_sample(
                t.reshape(1, ch * nc, na, nb), grid, mode=mode, padding_mode="zeros", align_corners=False
            ).view(ch, nc, na, nb)
        else:  # a batch of Nc slices sharing one grid, read from the strided view without copying it
            src = F.grid_sample(
                src.transpose(0, 1),
                grid.expand(nc, -1, -1, -1),
                mode=mode,
                padding_mode="zeros",
                align_corners=False,
            ).transpose(0, 1)
    scale_c = abs(m[c, c] - 1) > ZERO_ATOL
    if not scale_c and c == 0 and src.is_contiguous():
        return src
    out = torch.empty(t.shape, dtype=t.dtype, device=t.device)
    dst = out.permute(perm)
    if scale_c:
        resample_axis1(src, float(m[c, c]), mode, dst)
    else:
        dst.copy_(src)
    return out


def resample_axis1(src: torch.Tensor, m: float, mode: str, dst: torch.Tensor) -> None:
    """1D resampling along dim 1 of (C, N, A, B) into dst: output index k samples input position m*(k-c)+c.

    Args:
        src: the (C, N, A, B) input (a view is fine).
        m: the scale along dim 1 (c is the centre, (N - 1) / 2).
        mode: "nearest" (half rounded to even, as grid_sample) or linear otherwise; zeros outside.
        dst: the output, of ``src``'s shape, written in place.
    """
    n = src.shape[1]
    centre = (n - 1) / 2
    for k in range(n):
        pos = m * (k - centre) + centre
        out = dst[:, k]
        if mode == "nearest":
            j = int(np.rint(pos))  # round half to even, as grid_sample does
            out.copy_(src[:, j]) if 0 <= j < n else out.zero_()
            continue
        i0 = math.floor(pos)
        w1 = pos - i0
        w0 = 1.0 - w1
        in0, in1 = 0 <= i0 < n and w0 > 0, 0 <= i0 + 1 < n and w1 > 0
        if in0 and in1:
            torch.lerp(src[:, i0], src[:, i0 + 1], w1, out=out)
        elif in0 or in1:
            torch.mul(src[:, i0 if in0 else i0 + 1], w0 if in0 else w1, out=out)
        else:
            out.zero_()
