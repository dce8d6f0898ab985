"""Preprocessing with exact inverses: foreground mask, crop, pad, z-score, resampling.

Every geometric step is recorded in a :class:`PrepRecord` (a JSON-ready dict), so that
:func:`undo_labels` / :func:`undo_probabilities` put a prediction back on the original grid, voxel for voxel:

1. foreground mask = voxels non-zero in any channel (the brain, for skull-stripped BraTS);
2. crop: the bounding box of the mask and of any labelled voxel (plus ``margin``), or a fixed size centred
   on the foreground's centre of mass and shifted to stay inside the volume (the paper's 160x144x128),
   padded with zeros where the volume is smaller than the crop;
3. per-channel z-score inside the mask (background stays 0);
4. resampling by a factor (``downsample=2``) or to a target spacing: images linear, labels by majority
   (linear interpolation of one-hot maps + argmax, which keeps small structures better than picking one
   voxel of each block).

Resampling uses ``align_corners=False`` geometry: output voxel ``i`` sits at input coordinate
``(i + 0.5) * f - 0.5`` with ``f = in / out``; the record's affine says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import InputError


@dataclass
class PrepConfig:
    """How a case is preprocessed (saved with every cache and model).

    Args:
        crop: ``"bbox"`` (foreground bounding box + margin), ``"fixed"`` (``crop_size`` around the centre of
            mass) or ``"none"``.
        crop_size: size for ``crop="fixed"``, in voxels of the original grid (x, y, z).
        margin: voxels added around the bounding box.
        downsample: integer-or-float factor per axis (1 = none); ignored when ``spacing`` is given.
        spacing: target voxel size in mm (x, y, z), or ``None``.
        normalize: ``"zscore"`` (per case and channel, inside the mask: MRI), ``"window"`` (every case alike:
            clip to ``window[0]..window[1]``, subtract ``window[2]``, divide by ``window[3]``: CT, whose
            values mean the same in every scan) or ``"none"``.
        window: (low, high, mean, std) as :func:`medseg3d.experiments.planning.plan_dataset` chooses it, for
            ``"window"``.
    """

    crop: str = "bbox"
    crop_size: tuple[int, int, int] | None = None
    margin: int = 2
    downsample: float = 1.0
    spacing: tuple[float, float, float] | None = None
    normalize: str = "zscore"
    window: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.crop not in ("bbox", "fixed", "none"):
            raise InputError(f"crop must be 'bbox', 'fixed' or 'none', got {self.crop!r}")
        if self.crop == "fixed" and (self.crop_size is None or len(self.crop_size) != 3):
            raise InputError("crop='fixed' needs a crop size of three numbers, e.g. --crop 160,144,128")
        if self.downsample <= 0:
            raise InputError(f"--downsample must be > 0, got {self.downsample}")
        if self.margin < 0:
            raise InputError(f"the crop margin must be >= 0, got {self.margin}")
        if self.crop_size is not None and (len(self.crop_size) != 3 or min(self.crop_size) < 1):
            raise InputError(f"the crop size must be three positive numbers, got {self.crop_size}")
        if self.spacing is not None and (len(self.spacing) != 3 or min(self.spacing) <= 0):
            raise InputError(f"--spacing must be three positive numbers in mm, got {self.spacing}")
        if self.normalize not in ("zscore", "window", "none"):
            raise InputError(f"normalize must be 'zscore', 'window' or 'none', got {self.normalize!r}")
        if self.normalize == "window":
            if (
                self.window is None
                or len(self.window) != 4
                or self.window[0] >= self.window[1]
                or self.window[3] <= 0
            ):
                raise InputError(
                    "normalize='window' needs window=(low, high, mean, std) with low < high and std > 0"
                )
            self.window = tuple(float(v) for v in self.window)
        if self.crop_size is not None:
            self.crop_size = tuple(int(v) for v in self.crop_size)
        if self.spacing is not None:
            self.spacing = tuple(float(v) for v in self.spacing)

    def to_dict(self) -> dict:
        """The settings as a JSON-ready dict (unset newer fields left out, so older readers accept it)."""
        d = asdict(self)
        d["crop_size"] = list(self.crop_size) if self.crop_size else None
        d["spacing"] = list(self.spacing) if self.spacing else None
        if self.window is None:  # as written before the setting existed: older readers accept the file
            d.pop("window")
        else:
            d["window"] = list(self.window)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PrepConfig:
        """The settings :meth:`to_dict` wrote; InputError for unknown fields (a newer medseg3d's)."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(
                f"preprocessing settings hold unknown fields {unknown}; was this made by a newer medseg3d?"
            )
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


@dataclass
class PrepRecord:
    """Everything needed to undo preprocessing of one case."""

    original_shape: tuple[int, int, int]
    original_affine: list
    box_start: tuple[int, int, int]  # crop start in original voxels (may be negative: padded)
    box_stop: tuple[int, int, int]
    shape: tuple[int, int, int]  # shape after resampling (what the network sees)
    mean: list = field(default_factory=list)
    std: list = field(default_factory=list)
    affine: list = field(default_factory=list)  # voxel-to-world of the preprocessed grid

    @property
    def crop_shape(self) -> tuple[int, int, int]:
        """The crop box's size in voxels (X, Y, Z)."""
        return tuple(b - a for a, b in zip(self.box_start, self.box_stop))

    def to_dict(self) -> dict:
        """The record as a JSON-ready dict."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> PrepRecord:
        """The record :meth:`to_dict` wrote."""
        d = dict(d)
        for k in ("original_shape", "box_start", "box_stop", "shape"):
            d[k] = tuple(int(v) for v in d[k])
        return cls(**d)


def foreground_mask(image: np.ndarray) -> np.ndarray:
    """Voxels that are non-zero in any channel of ``image`` (C, X, Y, Z)."""
    return np.any(image != 0, axis=0)


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(start, stop) of the smallest box holding ``mask``, grown by ``margin`` and clipped to the volume.

    Args:
        mask: a boolean array (any number of axes).
        margin: voxels added on each side.

    Raises:
        InputError: an empty mask (no foreground).
    """
    if not mask.any():
        raise InputError("the image has no non-zero voxel (empty foreground); check the input files")
    start, stop = [], []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        start.append(max(int(hits[0]) - margin, 0))
        stop.append(min(int(hits[-1]) + 1 + margin, mask.shape[axis]))
    return tuple(start), tuple(stop)


def centred_box(mask: np.ndarray, size) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A box of ``size`` centred on the mask's centre of mass, shifted to stay inside the volume.

    Where the volume is smaller than ``size`` along an axis, the box is centred on the volume and reaches
    outside it (negative start): that part is zero-padded by :func:`crop_or_pad`.

    Args:
        mask: the boolean foreground, (X, Y, Z).
        size: the box size in voxels, (X, Y, Z).

    Returns:
        (start, stop) per axis.

    Raises:
        InputError: an empty mask.
    """
    if not mask.any():
        raise InputError("the image has no non-zero voxel (empty foreground); check the input files")
    com = np.array([np.mean(idx) for idx in np.nonzero(mask)]) if mask.sum() < 2_000_000 else _com_fast(mask)
    start, stop = [], []
    for axis, (c, s, n) in enumerate(zip(com, size, mask.shape)):
        if s >= n:
            a = -((s - n) // 2)
        else:
            # the box [a, a + s) is centred on voxel (a + (s - 1) / 2); round half up, not to even
            a = int(np.floor(c - (s - 1) / 2 + 0.5))
            a = min(max(a, 0), n - s)
        start.append(a)
        stop.append(a + s)
    return tuple(start), tuple(stop)


def _com_fast(mask: np.ndarray) -> np.ndarray:
    total = mask.sum()
    out = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        profile = mask.sum(axis=other)
        out.append(float((profile * np.arange(len(profile))).sum() / total))
    return np.array(out)


def crop_or_pad(array: np.ndarray, start, stop, fill=0) -> np.ndarray:
    """``array[..., start:stop]`` over the last three axes, padded where the box leaves the volume.

    Args:
        array: (..., X, Y, Z).
        start, stop: the box per spatial axis; may reach outside the volume.
        fill: the value of the padding.

    Returns:
        A view when the box lies inside, else a new array.
    """
    spatial = array.shape[-3:]
    out_shape = array.shape[:-3] + tuple(b - a for a, b in zip(start, stop))
    src = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(start, stop, spatial))
    dst = tuple(slice(max(a, 0) - a, max(a, 0) - a + (s.stop - s.start)) for a, s in zip(start, src))
    if all(a >= 0 for a in start) and all(b <= n for b, n in zip(stop, spatial)):
        return array[(...,) + src]
    out = np.full(out_shape, fill, dtype=array.dtype)
    out[(...,) + dst] = array[(...,) + src]
    return out


def paste(array: np.ndarray, start, stop, shape, fill=0) -> np.ndarray:
    """Inverse of :func:`crop_or_pad`: put a cropped ``array`` back into a volume of ``shape``.

    Args:
        array: the crop, (..., x, y, z).
        start, stop: the box it was cut with.
        shape: the full volume's spatial shape (X, Y, Z).
        fill: the value outside the box.
    """
    out = np.full(array.shape[:-3] + tuple(shape), fill, dtype=array.dtype)
    dst = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(start, stop, shape))
    src = tuple(slice(d.start - a, d.start - a + (d.stop - d.start)) for a, d in zip(start, dst))
    out[(...,) + dst] = array[(...,) + src]
    return out


def zscore(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, list, list]:
    """Per-channel z-score inside ``mask``; background set to 0.

    Args:
        image: (C, X, Y, Z).
        mask: the boolean brain mask, (X, Y, Z).

    Returns:
        (float32 image, means, stds), one mean and std per channel.

    Raises:
        InputError: a channel constant inside the mask.
    """
    out = np.zeros(image.shape, dtype=np.float32)
    means, stds = [], []
    for c in range(image.shape[0]):
        values = image[c][mask]
        mean = float(values.mean()) if values.size else 0.0
        std = float(values.std()) if values.size else 0.0
        if std < 1e-6:
            raise InputError(f"channel {c} is constant inside the brain mask; the image is empty or broken")
        out[c][mask] = (values - mean) / std
        means.append(mean)
        stds.append(std)
    return out, means, stds


def target_shape(shape, spacing, config: PrepConfig) -> tuple[int, int, int]:
    """Grid size after resampling a region of ``shape`` voxels at ``spacing`` mm.

    Args:
        shape: the region's size in voxels, (X, Y, Z).
        spacing: its voxel size in mm.
        config: the preprocessing settings (its target spacing, else its down-sampling factor).

    Returns:
        The new size, at least 1 voxel per axis.
    """
    if config.spacing is not None:
        factors = [t / s for s, t in zip(spacing, config.spacing)]
    else:
        factors = [config.downsample] * 3
    return tuple(max(round(n / f), 1) for n, f in zip(shape, factors))


def resize_image(image: np.ndarray, shape) -> np.ndarray:
    """Linear resampling of (C, X, Y, Z) to ``shape`` (align_corners=False geometry).

    Args:
        image: (C, X, Y, Z); returned as it is when it has ``shape`` already.
        shape: the new (X, Y, Z).

    Returns:
        float32 (C, *shape).
    """
    if tuple(image.shape[-3:]) == tuple(shape):
        return image
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    return F.interpolate(t, size=tuple(shape), mode="trilinear", align_corners=False)[0].numpy()


def resize_labels(classes: np.ndarray, shape, n_classes: int | None = None) -> np.ndarray:
    """Label-map resampling by majority: linear interpolation of one-hot maps, then argmax.

    Args:
        classes: class indices (X, Y, Z).
        shape: the new (X, Y, Z).
        n_classes: the number of classes (None: the largest index + 1).
    """
    if tuple(classes.shape) == tuple(shape):
        return classes
    n = int(n_classes or classes.max() + 1)
    onehot = np.stack([(classes == k) for k in range(n)]).astype(np.float32)
    return resize_image(onehot, shape).argmax(0).astype(classes.dtype)


def preprocess(
    image: np.ndarray,
    affine: np.ndarray,
    config: PrepConfig,
    classes: np.ndarray | None = None,
    n_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, PrepRecord]:
    """Apply ``config`` to one case.

    Args:
        image: (C, X, Y, Z) raw intensities.
        affine: the case's voxel-to-world matrix.
        config: what to do.
        classes: optional class-index label map (X, Y, Z), transformed alongside (majority resampling).
        n_classes: number of classes for label resampling.

    Returns:
        (image float32 (C, x, y, z), classes uint8 or None, record)
    """
    if image.ndim != 4:
        raise InputError(f"expected an image of shape (channels, x, y, z), got {image.shape}")
    if classes is not None and classes.shape != image.shape[1:]:
        raise InputError(f"label shape {classes.shape} differs from the image's {image.shape[1:]}")
    original_shape = tuple(int(v) for v in image.shape[1:])
    mask = foreground_mask(image)
    if config.crop == "bbox":
        # the box holds the labels too: a label voxel where every channel is 0 must not be cut away
        start, stop = bounding_box(mask if classes is None else mask | (classes != 0), config.margin)
    elif config.crop == "fixed":
        start, stop = centred_box(mask, config.crop_size)
    else:
        start, stop = (0, 0, 0), tuple(image.shape[1:])
    image = crop_or_pad(image, start, stop)
    mask = crop_or_pad(mask, start, stop, fill=False)
    means, stds = [], []
    if config.normalize == "zscore":
        image, means, stds = zscore(image, mask)
    elif config.normalize == "window":
        low, high, mean, std = config.window
        image = ((np.clip(image, low, high) - mean) / std).astype(np.float32)
    else:
        image = image.astype(np.float32)
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    shape = target_shape(image.shape[1:], spacing, config)
    image = resize_image(image, shape)
    if classes is not None:
        classes = crop_or_pad(classes, start, stop)
        classes = resize_labels(classes, shape, n_classes)
    crop_shape = np.array([b - a for a, b in zip(start, stop)], dtype=np.float64)
    f = crop_shape / np.array(shape)
    local = np.eye(4)
    local[:3, :3] = np.diag(f)
    local[:3, 3] = np.array(start) + (f - 1) / 2
    record = PrepRecord(
        original_shape=original_shape,
        original_affine=np.asarray(affine).tolist(),
        box_start=tuple(int(v) for v in start),
        box_stop=tuple(int(v) for v in stop),
        shape=tuple(int(v) for v in shape),
        mean=means,
        std=stds,
        affine=(np.asarray(affine) @ local).tolist(),
    )
    return np.ascontiguousarray(image, dtype=np.float32), classes, record


def undo_probabilities(probs: np.ndarray, record: PrepRecord, fill_background: bool = True) -> np.ndarray:
    """Probabilities (K, x, y, z) on the preprocessed grid -> (K, X, Y, Z) on the original grid.

    Up-sampling is linear (the paper's low-resolution mode).

    Args:
        probs: the probabilities on the preprocessed grid.
        record: how the case was preprocessed (crop box, shapes).
        fill_background: outside the crop box the first channel (background) is 1 and the others 0; region
            (sigmoid) outputs have no background channel: pass False so that every region is 0 outside.

    Returns:
        float32 (K, X, Y, Z).
    """
    probs = resize_image(probs, record.crop_shape)
    out = paste(probs.astype(np.float32), record.box_start, record.box_stop, record.original_shape)
    if fill_background:
        outside = np.ones(record.original_shape, dtype=bool)
        inside = tuple(
            slice(max(a, 0), min(b, n))
            for a, b, n in zip(record.box_start, record.box_stop, record.original_shape)
        )
        outside[inside] = False
        out[0][outside] = 1.0
    return out


def undo_labels(classes: np.ndarray, record: PrepRecord, n_classes: int | None = None) -> np.ndarray:
    """A class-index map on the preprocessed grid -> the original grid (majority up-sampling, paste back).

    Args:
        classes: class indices on the preprocessed grid.
        record: how the case was preprocessed.
        n_classes: the number of classes (None: the largest index + 1).
    """
    classes = resize_labels(classes, record.crop_shape, n_classes)
    return paste(classes, record.box_start, record.box_stop, record.original_shape)
