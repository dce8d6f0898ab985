"""Data augmentation for 2D and 3D segmentation samples, on the CPU, with torch.

A sample is ``image`` (C, X, Y, Z) float (z-scored, background 0) and ``label`` either (X, Y, Z) class
indices or (R, X, Y, Z) region masks; 2D samples drop the Z axis. ``label`` may be ``None``.

Two layers, as in TorchIO:

* Deterministic ops (:func:`flip`, :func:`rotate_scale`, :func:`intensity`, :func:`gamma`,
  :func:`gaussian_noise`) take every parameter explicitly, never modify their inputs and return
  ``(image, label)`` or ``image``. They may return an input object itself when there is nothing to do.
* Random transforms (:class:`RandomFlip`, :class:`RandomRotation`, ...) only draw parameters from the
  ``torch.Generator`` they are given (``None``: torch's global one) and call a deterministic op. They return ``(image, label, params)``,
  where ``params`` is a JSON-serialisable dict (empty when nothing was applied) that :func:`apply_params`
  replays exactly and :func:`invert_geometry` turns into the inverse spatial transform.

Composition: :class:`Compose`, :class:`PaperAugment` (Kayalibay et al. 2017) and :func:`build_augment`
("none", "paper", "default", "strong").

Spatial axes are numbered 0..D-1 over the spatial dimensions only (the channel axis is not counted). A rotation
by +angle in plane (a, b) turns axis a towards axis b, so 90 degrees equals ``torch.rot90(x, 1, (a, b))`` on
a square plane. Rotation and scaling are about the volume centre and need one resampling together. In 3D,
rotations in a single plane (optionally with scaling) are computed separably, in-plane bilinear via the
vectorised 2D ``grid_sample`` and linear along the third axis, which is the same trilinear interpolation
and about twice as fast as 3D ``grid_sample``; any other linear map falls back to 3D ``grid_sample``.

Example:
    >>> import torch
    >>> from medseg3d.augment import build_augment
    >>> augment = build_augment("default")
    >>> image, label = torch.randn(4, 32, 40, 32), torch.randint(0, 4, (32, 40, 32))
    >>> g = torch.Generator().manual_seed(0)
    >>> image2, label2, applied = augment(image, label, g)
    >>> image2.shape == image.shape and label2.shape == label.shape
    True
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
    "Compose",
    "PaperAugment",
    "RandomFlip",
    "RandomGamma",
    "RandomIntensity",
    "RandomNoise",
    "RandomRotateScale",
    "RandomRotation",
    "RandomScale",
    "apply_params",
    "build_augment",
    "flip",
    "gamma",
    "gaussian_noise",
    "intensity",
    "invert_geometry",
    "rotate_scale",
    "rotation_matrix",
]

Params = dict[str, Any]

#: Rotation planes per number of spatial dimensions, in the order ``rotate_scale`` reads per-plane angles.
PLANES: dict[int, tuple[tuple[int, int], ...]] = {2: ((0, 1),), 3: ((0, 1), (0, 2), (1, 2))}

_IDENTITY_ATOL = 1e-7  # a sampling matrix this close to the identity moves no voxel by more than ~1e-5
_ZERO_ATOL = 1e-9


# ----------------------------------------------------------------------------------------------------------
# Input checks


def _spatial_dims(image: torch.Tensor, label: torch.Tensor | None = None) -> int:
    """Check a sample and return its number of spatial dimensions (2 or 3)."""
    if not isinstance(image, torch.Tensor):
        raise InputError(
            f"image must be a torch.Tensor, got {type(image).__name__}; convert it with torch.from_numpy"
        )
    if image.ndim not in (3, 4):
        raise InputError(
            f"image must have shape (C, X, Y) or (C, X, Y, Z), got {tuple(image.shape)}; add a channel axis"
        )
    if not image.is_floating_point():
        raise InputError(
            f"image must be a floating-point tensor, got {image.dtype}; convert it with .float()"
        )
    sd = image.ndim - 1
    if label is not None:
        if not isinstance(label, torch.Tensor):
            raise InputError(
                f"label must be a torch.Tensor or None, got {type(label).__name__}; "
                "convert it with torch.from_numpy"
            )
        if label.ndim not in (sd, sd + 1):
            raise InputError(
                f"label must have shape {'(X, Y)' if sd == 2 else '(X, Y, Z)'} or (R, ...) for an image of "
                f"shape {tuple(image.shape)}, got {tuple(label.shape)}"
            )
        if tuple(label.shape[-sd:]) != tuple(image.shape[1:]):
            raise InputError(
                f"image spatial shape {tuple(image.shape[1:])} and label spatial shape "
                f"{tuple(label.shape[-sd:])} differ; crop or resample both the same way"
            )
    return sd


def _axes(axes: int | Sequence[int], sd: int) -> list[int]:
    axes = [axes] if isinstance(axes, (int, np.integer)) else list(axes)
    out = []
    for a in axes:
        if not -sd <= int(a) < sd:
            raise InputError(f"axis {a} is out of range for {sd} spatial dimensions; use 0..{sd - 1}")
        out.append(int(a) % sd)
    return out


def _per_channel(value: float | Sequence[float], n: int, name: str) -> torch.Tensor:
    """A scalar or one value per channel, as a float64 tensor of length n."""
    v = torch.as_tensor(value, dtype=torch.float64).flatten()
    if v.numel() == 1:
        v = v.expand(n)
    if v.numel() != n:
        raise InputError(f"{name} needs 1 or {n} values (one per channel), got {v.numel()}")
    return v


def _foreground(image: torch.Tensor) -> torch.Tensor:
    """Voxels that are non-zero in any channel: the brain, when the background was set to exactly 0."""
    return (image != 0).any(dim=0)


# ----------------------------------------------------------------------------------------------------------
# Deterministic ops


def flip(
    image: torch.Tensor, label: torch.Tensor | None, axes: int | Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mirror image and label along spatial axes.

    Args:
        image: (C, X, Y[, Z]) float tensor.
        label: (X, Y[, Z]) class indices, (R, X, Y[, Z]) region masks, or None.
        axes: spatial axis or axes (0 = X); an empty list returns the inputs.

    Example:
        >>> img, lab = flip(torch.zeros(4, 8, 8, 8), torch.zeros(8, 8, 8, dtype=torch.long), axes=[0, 2])
    """
    sd = _spatial_dims(image, label)
    ax = _axes(axes, sd)
    if not ax:
        return image, label
    image = torch.flip(image, [a + 1 for a in ax])
    if label is not None:
        offset = label.ndim - sd
        label = torch.flip(label, [a + offset for a in ax])
    return image, label


def rotation_matrix(angles_deg: float | Sequence[float], spatial_dims: int) -> np.ndarray:
    """Rotation matrix for per-plane angles in degrees, planes in the order of :data:`PLANES`.

    The rotations are applied in that order (first plane (0, 1)). A scalar is accepted in 2D.
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
        rot = _plane_rotation(float(angle), (a, b), spatial_dims) @ rot
    return rot


def _plane_rotation(angle_deg: float, plane: tuple[int, int], sd: int) -> np.ndarray:
    a, b = plane
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    rot = np.eye(sd)
    rot[a, a], rot[a, b], rot[b, a], rot[b, b] = c, -s, s, c
    return rot


def _linear_map(angles_deg: Any, scale: float | Sequence[float], sd: int) -> np.ndarray:
    """Forward map A = diag(scale) @ R taking input voxel offsets (from the centre) to output offsets."""
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


def rotate_scale(
    image: torch.Tensor,
    label: torch.Tensor | None,
    angles_deg: float | Sequence[float] | np.ndarray | torch.Tensor,
    scale: float | Sequence[float] = 1.0,
    order: int = 1,
    label_order: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rotate and scale about the volume centre in one resampling, keeping the shape.

    The forward map is ``x_out = diag(scale) @ R @ x_in`` on voxel offsets from the centre, so ``scale > 1``
    magnifies the content. Outside the input the image is 0 and the label background (0).

    Args:
        image: (C, X, Y[, Z]) float tensor.
        label: (X, Y[, Z]) class indices, (R, X, Y[, Z]) region masks, or None.
        angles_deg: one angle per plane of :data:`PLANES` (a scalar in 2D), or a DxD rotation matrix
            (any invertible linear map is accepted).
        scale: one factor, or one per spatial axis.
        order: image interpolation, 1 (linear) or 0 (nearest).
        label_order: 0 = nearest (never creates new label values); 1 = linear on one-hot class maps then
            argmax (index labels) or linear then threshold 0.5 (region masks): smoother, slower.

    Returns:
        (image, label), same shapes and dtypes as the inputs.

    Example:
        >>> img, lab = rotate_scale(torch.randn(4, 16, 16, 16), torch.zeros(16, 16, 16, dtype=torch.long),
        ...                         angles_deg=[30.0, 0.0, 0.0], scale=1.1)
    """
    sd = _spatial_dims(image, label)
    if order not in (0, 1) or label_order not in (0, 1):
        raise InputError(f"order and label_order must be 0 or 1, got {order} and {label_order}")
    forward = _linear_map(angles_deg, scale, sd)
    sampling = np.linalg.inv(forward)  # output offset -> input offset
    if np.allclose(sampling, np.eye(sd), rtol=0, atol=_IDENTITY_ATOL):
        return image, label
    image = _resample(image, sampling, "bilinear" if order == 1 else "nearest")
    if label is not None:
        label = _resample_label(label, sampling, sd, label_order)
    return image, label


def _resample_label(label: torch.Tensor, sampling: np.ndarray, sd: int, label_order: int) -> torch.Tensor:
    is_index_map = label.ndim == sd
    work_dtype = label.dtype if label.dtype in (torch.float32, torch.float64) else torch.float32
    if label_order == 0:
        x = label[None] if is_index_map else label
        out = _resample(x.to(work_dtype), sampling, "nearest")
        return (out[0] if is_index_map else out).to(label.dtype)
    if is_index_map:
        if label.numel() and int(label.min()) < 0:
            raise InputError("label_order=1 needs non-negative class indices; use label_order=0")
        n_classes = int(label.max()) + 1 if label.numel() else 1
        onehot = F.one_hot(label.long(), n_classes).movedim(-1, 0).to(torch.float32)
        return _resample(onehot, sampling, "bilinear").argmax(0).to(label.dtype)
    out = _resample(label.to(work_dtype), sampling, "bilinear") >= 0.5
    return out.to(label.dtype)


def _resample(t: torch.Tensor, sampling: np.ndarray, mode: str) -> torch.Tensor:
    """Resample (C, *spatial) with a linear sampling matrix about the centre; zeros outside."""
    sd = t.ndim - 1
    if sd == 2:
        grid = _grid_2d(sampling, t.shape[1:], t)
        return F.grid_sample(t[None], grid, mode=mode, padding_mode="zeros", align_corners=False)[0]
    axis = _separable_axis(sampling)
    if axis is None:
        return _resample_general(t, sampling, mode)
    return _resample_separable(t, sampling, axis, mode)


def _separable_axis(m: np.ndarray) -> int | None:
    """An axis c the matrix does not mix with the others (block-diagonal), preferring the outermost."""
    for c in range(m.shape[0]):
        others = [j for j in range(m.shape[0]) if j != c]
        if np.all(np.abs(m[c, others]) < _ZERO_ATOL) and np.all(np.abs(m[others, c]) < _ZERO_ATOL):
            return c
    return None


def _grid_2d(m: np.ndarray, size: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """grid_sample grid (1, Na, Nb, 2) for sampling matrix m on a plane of the given size."""
    na, nb = int(size[0]), int(size[1])
    ua = torch.arange(na, dtype=torch.float64) - (na - 1) / 2
    ub = torch.arange(nb, dtype=torch.float64) - (nb - 1) / 2
    # align_corners=False: normalised coordinate = 2 * offset / size
    ya = (2 * m[0, 0] / na) * ua[:, None] + (2 * m[0, 1] / na) * ub[None, :]
    xb = (2 * m[1, 0] / nb) * ua[:, None] + (2 * m[1, 1] / nb) * ub[None, :]
    return torch.stack([xb, ya], dim=-1)[None].to(like)


def _resample_general(t: torch.Tensor, m: np.ndarray, mode: str) -> torch.Tensor:
    sizes = t.shape[1:]
    grid = torch.empty((1, *sizes, 3), dtype=t.dtype, device=t.device)
    u = [torch.arange(n, dtype=t.dtype, device=t.device) - (n - 1) / 2 for n in sizes]
    for k in range(3):  # grid's last axis runs (Z, Y, X)
        w = [2 * float(m[k, j]) / sizes[k] for j in range(3)]
        xy = w[0] * u[0][:, None, None] + w[1] * u[1][None, :, None]
        torch.add(xy, w[2] * u[2][None, None, :], out=grid[0, ..., 2 - k])
    return F.grid_sample(t[None], grid, mode=mode, padding_mode="zeros", align_corners=False)[0]


def _resample_separable(t: torch.Tensor, m: np.ndarray, c: int, mode: str) -> torch.Tensor:
    """Resample in the plane of two axes (2D) and along the third axis c (1D): trilinear, done separably.

    The 2D step reads the input through a strided view and the 1D step writes straight into the final
    layout, so a rotation in any plane costs two passes over the volume and no extra permuting copy.
    """
    a, b = [j for j in range(3) if j != c]
    perm = (0, c + 1, a + 1, b + 1)
    src = t.permute(perm)  # (C, Nc, Na, Nb) view
    ch, nc, na, nb = src.shape
    plane = m[np.ix_([a, b], [a, b])]
    if not np.allclose(plane, np.eye(2), rtol=0, atol=_IDENTITY_ATOL):
        grid = _grid_2d(plane, (na, nb), t)
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
    scale_c = abs(m[c, c] - 1) > _ZERO_ATOL
    if not scale_c and c == 0 and src.is_contiguous():
        return src
    out = torch.empty(t.shape, dtype=t.dtype, device=t.device)
    dst = out.permute(perm)
    if scale_c:
        _resample_axis1(src, float(m[c, c]), mode, dst)
    else:
        dst.copy_(src)
    return out


def _resample_axis1(src: torch.Tensor, m: float, mode: str, dst: torch.Tensor) -> None:
    """1D resampling along dim 1 of (C, N, A, B) into dst: output index k samples input position m*(k-c)+c."""
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


def intensity(
    image: torch.Tensor,
    scale: float | Sequence[float] = 1.0,
    shift: float | Sequence[float] = 0.0,
    keep_background: bool = True,
) -> torch.Tensor:
    """``image * scale + shift`` per channel.

    Args:
        image: (C, X, Y[, Z]) float tensor.
        scale: one factor, or one per channel.
        shift: one offset, or one per channel (in z-score units for normalised images).
        keep_background: add the shift only where some channel is non-zero, so the background stays 0.
    """
    sd = _spatial_dims(image)
    n = image.shape[0]
    s = _per_channel(scale, n, "scale").to(image.dtype).view(n, *[1] * sd)
    t = _per_channel(shift, n, "shift").to(image.dtype).view(n, *[1] * sd)
    if not torch.any(t != 0):
        return image * s
    if keep_background:
        return torch.addcmul(image * s, t, _foreground(image).to(image.dtype))
    return image * s + t


def gamma(
    image: torch.Tensor, gamma: float | Sequence[float], mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Gamma correction per channel on intensities rescaled to [0, 1] inside the mask.

    Each channel's values inside ``mask`` are mapped to [0, 1] by their min and max, raised to ``gamma`` and
    mapped back, so the min and max are kept; outside the mask the output is 0.

    Args:
        image: (C, X, Y[, Z]) float tensor.
        gamma: one exponent > 0, or one per channel; 1 leaves the channel unchanged.
        mask: (X, Y[, Z]) bool foreground; default: voxels non-zero in any channel.
    """
    _spatial_dims(image)
    g = _per_channel(gamma, image.shape[0], "gamma")
    if not torch.all(g > 0):
        raise InputError(f"gamma must be positive, got {g.tolist()}")
    if torch.all(g == 1):
        return image
    if mask is None:
        mask = _foreground(image)
    elif tuple(mask.shape) != tuple(image.shape[1:]):
        raise InputError(
            f"gamma mask shape {tuple(mask.shape)} differs from image spatial shape {tuple(image.shape[1:])}"
        )
    mask = mask.bool()
    if not bool(mask.any()):
        return image
    out = image.clone()
    inf = torch.tensor(float("inf"), dtype=image.dtype)
    for ch in range(image.shape[0]):
        gc = float(g[ch])
        if gc == 1.0:
            continue
        x = image[ch]
        lo = torch.where(mask, x, inf).amin()
        hi = torch.where(mask, x, -inf).amax()
        span = float(hi - lo)
        if span <= 0:
            continue
        y = ((x - lo) / span).clamp_(0, 1).pow_(gc).mul_(span).add_(lo)
        out[ch] = torch.where(mask, y, torch.zeros((), dtype=image.dtype))
    return out


def gaussian_noise(
    image: torch.Tensor,
    std: float | Sequence[float],
    generator: torch.Generator | None = None,
    keep_background: bool = True,
) -> torch.Tensor:
    """Add zero-mean Gaussian noise with standard deviation ``std`` (one value or one per channel).

    The noise is drawn from ``generator``; with ``keep_background`` it is added only where some channel is
    non-zero, so the background stays 0.
    """
    sd = _spatial_dims(image)
    n = image.shape[0]
    s = _per_channel(std, n, "std")
    if not torch.all(s >= 0):
        raise InputError(f"noise std must be >= 0, got {s.tolist()}")
    noise = torch.randn(image.shape, generator=generator, dtype=image.dtype)
    noise.mul_(s.to(image.dtype).view(n, *[1] * sd))
    if keep_background:
        noise.mul_(_foreground(image).to(image.dtype))
    return image + noise


# ----------------------------------------------------------------------------------------------------------
# Replaying and inverting logged parameters


def apply_params(
    image: torch.Tensor, label: torch.Tensor | None, params: Params | Sequence[Params]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply logged parameters (one dict or a list, as returned by the transforms) deterministically."""
    for p in [params] if isinstance(params, dict) else params:
        op = p.get("op")
        if op is None:
            continue
        if op == "flip":
            image, label = flip(image, label, p["axes"])
        elif op == "rotate_scale":
            image, label = rotate_scale(
                image,
                label,
                np.asarray(p["matrix"]),
                p["scale"],
                order=p.get("order", 1),
                label_order=p.get("label_order", 0),
            )
        elif op == "intensity":
            image = intensity(image, p["scale"], p["shift"])
        elif op == "gamma":
            image = gamma(image, p["gamma"])
        elif op == "noise":
            image = gaussian_noise(image, p["std"], torch.Generator().manual_seed(int(p["seed"])))
        else:
            raise InputError(
                f"unknown augmentation op {op!r}; expected flip, rotate_scale, intensity, gamma or noise"
            )
    return image, label


def invert_geometry(params: Sequence[Params]) -> list[Params]:
    """Parameters undoing the spatial part of logged augmentation (e.g. to map a prediction back).

    Intensity ops are dropped. Apply the result with :func:`apply_params`. Content rotated out of the
    volume is lost, so the inverse is exact only where the forward transform kept it.
    """
    out: list[Params] = []
    for p in reversed(list(params)):
        if p.get("op") == "flip":
            out.append(dict(p))
        elif p.get("op") == "rotate_scale":
            forward = np.asarray(p["scale"], dtype=np.float64).reshape(-1, 1) * np.asarray(p["matrix"])
            inverse = {"op": "rotate_scale", "matrix": np.linalg.inv(forward).tolist(), "scale": 1.0}
            out.append({**inverse, "order": p.get("order", 1), "label_order": p.get("label_order", 0)})
    return out


# ----------------------------------------------------------------------------------------------------------
# Random transforms: draw parameters, then call a deterministic op


def _rand(g: torch.Generator | None) -> float:
    return float(torch.rand((), generator=g, dtype=torch.float64))


def _uniform(g: torch.Generator | None, lo: float, hi: float) -> float:
    return lo + (hi - lo) * _rand(g)


def _randint(g: torch.Generator | None, n: int) -> int:
    return int(torch.randint(n, (), generator=g))


def _range(r: Sequence[float], name: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in r)
    if lo > hi:
        raise InputError(f"{name} must be (low, high) with low <= high, got {tuple(r)}")
    return lo, hi


class RandomFlip:
    """Flip along each of ``axes`` (default: all spatial axes) independently with probability ``p``.

    Example:
        >>> img, lab, params = RandomFlip(p=0.5)(torch.randn(1, 8, 8, 8), None, torch.Generator())
    """

    def __init__(self, p: float = 0.5, axes: Sequence[int] | None = None):
        self.p = float(p)
        self.axes = None if axes is None else list(axes)

    def __call__(self, image, label, generator: torch.Generator | None = None):
        sd = _spatial_dims(image, label)
        axes = _axes(range(sd) if self.axes is None else self.axes, sd)
        chosen = [a for a in axes if _rand(generator) < self.p]
        if not chosen:
            return image, label, {}
        image, label = flip(image, label, chosen)
        return image, label, {"op": "flip", "axes": chosen}


class RandomRotateScale:
    """Random rotation and scaling applied together with one resampling.

    Args:
        max_angle: angles are drawn from U(-max_angle, max_angle) degrees; 180 or more means a uniform
            angle in 0-360.
        p_rotation: probability of rotating.
        scale_range: (low, high) of the scale factor (> 1 magnifies).
        p_scale: probability of scaling.
        plane: "random" rotates in one plane drawn uniformly (fast separable path in 3D); "all" draws one
            angle per plane and composes them (3D ``grid_sample``, about twice as slow).
        isotropic: one scale factor for all axes, else one per axis.
        order, label_order: as in :func:`rotate_scale`.
    """

    def __init__(
        self,
        max_angle: float = 180.0,
        p_rotation: float = 1.0,
        scale_range: Sequence[float] = (1.0, 1.0),
        p_scale: float = 0.0,
        plane: str = "random",
        isotropic: bool = True,
        order: int = 1,
        label_order: int = 0,
    ):
        if plane not in ("random", "all"):
            raise InputError(f"plane must be 'random' or 'all', got {plane!r}")
        self.max_angle = float(max_angle)
        self.p_rotation = float(p_rotation)
        self.scale_range = _range(scale_range, "scale_range")
        if self.scale_range[0] <= 0:
            raise InputError(f"scale_range must be positive, got {tuple(scale_range)}")
        self.p_scale = float(p_scale)
        self.plane = plane
        self.isotropic = bool(isotropic)
        self.order = order
        self.label_order = label_order

    def _angle(self, g) -> float:
        if self.max_angle >= 180:
            return _uniform(g, 0.0, 360.0)
        return _uniform(g, -self.max_angle, self.max_angle)

    def __call__(self, image, label, generator: torch.Generator | None = None):
        sd = _spatial_dims(image, label)
        planes: list[list[int]] = []
        angles: list[float] = []
        rot = np.eye(sd)
        if self.p_rotation > 0 and _rand(generator) < self.p_rotation:
            candidates = PLANES[sd]
            if self.plane == "random":
                candidates = (candidates[_randint(generator, len(candidates))],)
            for plane in candidates:
                angle = self._angle(generator)
                rot = _plane_rotation(angle, plane, sd) @ rot
                planes.append(list(plane))
                angles.append(angle)
        scale = [1.0] * sd
        if self.p_scale > 0 and _rand(generator) < self.p_scale:
            n = 1 if self.isotropic else sd
            drawn = [_uniform(generator, *self.scale_range) for _ in range(n)]
            scale = drawn * sd if self.isotropic else drawn
        if not planes and scale == [1.0] * sd:
            return image, label, {}
        image, label = rotate_scale(image, label, rot, scale, order=self.order, label_order=self.label_order)
        params = {
            "op": "rotate_scale",
            "planes": planes,
            "angles_deg": angles,
            "scale": scale,
            "matrix": rot.tolist(),
            "order": self.order,
            "label_order": self.label_order,
        }
        return image, label, params


class RandomRotation(RandomRotateScale):
    """Rotation by a random angle (``max_angle`` >= 180: uniform in 0-360) with probability ``p``.

    Example:
        >>> img, lab, params = RandomRotation(max_angle=30, p=1.0)(torch.randn(1, 8, 8, 8), None,
        ...                                                         torch.Generator().manual_seed(0))
    """

    def __init__(
        self,
        max_angle: float = 180.0,
        p: float = 1.0,
        plane: str = "random",
        order: int = 1,
        label_order: int = 0,
    ):
        super().__init__(
            max_angle=max_angle, p_rotation=p, p_scale=0.0, plane=plane, order=order, label_order=label_order
        )


class RandomScale(RandomRotateScale):
    """Scaling by a factor drawn from ``scale_range`` (> 1 magnifies) with probability ``p``."""

    def __init__(
        self,
        scale_range: Sequence[float] = (0.85, 1.15),
        p: float = 1.0,
        isotropic: bool = True,
        order: int = 1,
        label_order: int = 0,
    ):
        super().__init__(
            p_rotation=0.0,
            scale_range=scale_range,
            p_scale=p,
            isotropic=isotropic,
            order=order,
            label_order=label_order,
        )


class RandomIntensity:
    """Per-channel ``image * scale + shift`` with scale and shift drawn uniformly, with probability ``p``.

    ``per_channel=False`` draws one scale and shift for all channels. The background stays 0.
    """

    def __init__(
        self,
        scale_range: Sequence[float] = (0.9, 1.1),
        shift_range: Sequence[float] = (-0.1, 0.1),
        p: float = 1.0,
        per_channel: bool = True,
    ):
        self.scale_range = _range(scale_range, "scale_range")
        self.shift_range = _range(shift_range, "shift_range")
        self.p = float(p)
        self.per_channel = bool(per_channel)

    def __call__(self, image, label, generator: torch.Generator | None = None):
        _spatial_dims(image, label)
        if _rand(generator) >= self.p:
            return image, label, {}
        n = image.shape[0] if self.per_channel else 1
        scale = [_uniform(generator, *self.scale_range) for _ in range(n)]
        shift = [_uniform(generator, *self.shift_range) for _ in range(n)]
        return intensity(image, scale, shift), label, {"op": "intensity", "scale": scale, "shift": shift}


class RandomGamma:
    """Gamma correction (see :func:`gamma`) with gamma drawn from ``gamma_range``, with probability ``p``.

    As in nnU-Net, half of the draws fall below 1 and half above (when the range straddles 1), so
    brightening and darkening are equally likely even for an asymmetric range like (0.7, 1.5).
    """

    def __init__(self, gamma_range: Sequence[float] = (0.7, 1.5), p: float = 1.0, per_channel: bool = True):
        self.gamma_range = _range(gamma_range, "gamma_range")
        if self.gamma_range[0] <= 0:
            raise InputError(f"gamma_range must be positive, got {tuple(gamma_range)}")
        self.p = float(p)
        self.per_channel = bool(per_channel)

    def _draw(self, g) -> float:
        lo, hi = self.gamma_range
        if lo < 1 < hi and _rand(g) < 0.5:
            return _uniform(g, lo, 1.0)
        return _uniform(g, max(lo, 1.0), hi) if lo < 1 < hi else _uniform(g, lo, hi)

    def __call__(self, image, label, generator: torch.Generator | None = None):
        _spatial_dims(image, label)
        if _rand(generator) >= self.p:
            return image, label, {}
        n = image.shape[0] if self.per_channel else 1
        values = [self._draw(generator) for _ in range(n)]
        return gamma(image, values), label, {"op": "gamma", "gamma": values}


class RandomNoise:
    """Gaussian noise with a standard deviation drawn from ``std_range``, with probability ``p``.

    The noise itself comes from a generator seeded with a number drawn here, so the logged ``seed`` replays
    it exactly.
    """

    def __init__(self, std_range: Sequence[float] = (0.0, 0.1), p: float = 1.0):
        self.std_range = _range(std_range, "std_range")
        if self.std_range[0] < 0:
            raise InputError(f"std_range must be >= 0, got {tuple(std_range)}")
        self.p = float(p)

    def __call__(self, image, label, generator: torch.Generator | None = None):
        _spatial_dims(image, label)
        if _rand(generator) >= self.p:
            return image, label, {}
        std = _uniform(generator, *self.std_range)
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        noisy = gaussian_noise(image, std, torch.Generator().manual_seed(seed))
        return noisy, label, {"op": "noise", "std": std, "seed": seed}


# ----------------------------------------------------------------------------------------------------------
# Composition


class Compose:
    """Apply transforms in order; returns ``(image, label, applied)`` with the list of applied params.

    Example:
        >>> augment = Compose([RandomFlip(p=0.5), RandomGamma((0.7, 1.5), p=0.3)])
        >>> img, lab, applied = augment(torch.randn(4, 8, 8, 8), None, torch.Generator().manual_seed(1))
    """

    def __init__(self, transforms: Sequence[Any]):
        self.transforms = list(transforms)

    def __call__(self, image, label, generator: torch.Generator | None = None):
        _spatial_dims(image, label)
        applied: list[Params] = []
        for transform in self.transforms:
            image, label, params = transform(image, label, generator)
            if isinstance(params, list):
                applied.extend(params)
            elif params:
                applied.append(params)
        return image, label, applied

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class PaperAugment:
    """The scheme of Kayalibay et al. (2017): ``n_ops`` draws from {identity, flip, rotation}.

    Each draw is identity, a flip along one random axis, or a rotation by an angle uniform in 0-360 degrees
    in a random plane, each with probability 1/3 -- so "up to two operations" with the default ``n_ops=2``.
    Two rotations in a row are merged into one resampling.

    Example:
        >>> img, lab, applied = PaperAugment()(torch.randn(4, 8, 8, 8), None, torch.Generator().manual_seed(0))
    """

    def __init__(self, n_ops: int = 2, order: int = 1, label_order: int = 0):
        self.n_ops = int(n_ops)
        self.order = order
        self.label_order = label_order

    def __call__(self, image, label, generator: torch.Generator | None = None):
        sd = _spatial_dims(image, label)
        steps: list[Params] = []
        for _ in range(self.n_ops):
            kind = _randint(generator, 3)
            if kind == 1:
                steps.append({"op": "flip", "axes": [_randint(generator, sd)]})
            elif kind == 2:
                plane = PLANES[sd][_randint(generator, len(PLANES[sd]))]
                angle = _uniform(generator, 0.0, 360.0)
                rot = _plane_rotation(angle, plane, sd)
                if steps and steps[-1]["op"] == "rotate_scale":
                    last = steps[-1]
                    last["planes"].append(list(plane))
                    last["angles_deg"].append(angle)
                    last["matrix"] = (rot @ np.asarray(last["matrix"])).tolist()
                else:
                    steps.append(
                        {
                            "op": "rotate_scale",
                            "planes": [list(plane)],
                            "angles_deg": [angle],
                            "scale": [1.0] * sd,
                            "matrix": rot.tolist(),
                            "order": self.order,
                            "label_order": self.label_order,
                        }
                    )
        image, label = apply_params(image, label, steps)
        return image, label, steps


_NAMES = ("none", "paper", "default", "strong")


def build_augment(name: str) -> Compose | PaperAugment:
    """Named augmentation pipelines.

    * ``"none"``: nothing.
    * ``"paper"``: :class:`PaperAugment`, the scheme of Kayalibay et al. (2017).
    * ``"default"``: nnU-Net-like mix: flips on every axis (p=0.5 each); rotation up to +-30 degrees in a
      random plane (p=0.3) and scaling 0.85-1.15 (p=0.3) in one resampling; intensity scale 0.9-1.1 and
      shift +-0.1 per channel (p=0.3); gamma 0.7-1.5 (p=0.3).
    * ``"strong"``: as default with any angle, scaling 0.7-1.4, wider intensity and gamma ranges, higher
      probabilities, and Gaussian noise.
    """
    key = str(name).lower()
    if key == "none":
        return Compose([])
    if key == "paper":
        return PaperAugment()
    if key == "default":
        return Compose(
            [
                RandomFlip(p=0.5),
                RandomRotateScale(max_angle=30.0, p_rotation=0.3, scale_range=(0.85, 1.15), p_scale=0.3),
                RandomIntensity(scale_range=(0.9, 1.1), shift_range=(-0.1, 0.1), p=0.3),
                RandomGamma(gamma_range=(0.7, 1.5), p=0.3),
            ]
        )
    if key == "strong":
        return Compose(
            [
                RandomFlip(p=0.5),
                RandomRotateScale(max_angle=180.0, p_rotation=0.5, scale_range=(0.7, 1.4), p_scale=0.5),
                RandomIntensity(scale_range=(0.75, 1.25), shift_range=(-0.2, 0.2), p=0.5),
                RandomGamma(gamma_range=(0.6, 1.7), p=0.5),
                RandomNoise(std_range=(0.0, 0.1), p=0.2),
            ]
        )
    raise InputError(f"unknown augmentation {name!r}; choose one of {', '.join(_NAMES)}")
