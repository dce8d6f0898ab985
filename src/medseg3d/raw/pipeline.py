"""Scans as a hospital exports them -> the four BraTS-like channels a model was trained on, and back.

Three ways, chosen per case by :func:`choose_mode` (``--align auto``; ``--preprocess`` is its old name) or
forced:

* ``none``: the channels already share one skull-stripped grid in the model's space (spacing, orientation);
  they are used as they are, which gives exactly the result of a BraTS-preprocessed case.
* ``resample``: one skull-stripped grid, but another spacing or orientation (e.g. 0.9 x 0.9 x 3 mm, or axes
  permuted): reoriented and resampled to the model's spacing over the same field of view; probabilities are
  taken back to the input grid.
* ``full``: anything else (skull on, each sequence on its own grid, thick slices, any orientation):
  1. rigid co-registration of the other sequences to the reference (T1ce), mutual information, identity start;
  2. skull stripping (deepbet) of the finer of T1 and T1ce, on its own grid;
  3. registration of that brain to the bundled template in BraTS (SRI24) space (:data:`TEMPLATE_FIT`);
  4. each channel resampled once, through its composed map, onto the 240 x 240 x 155 BraTS grid, and set to 0
     outside the brain.
  Every map is a 4x4 matrix (:mod:`medseg3d.raw.geometry`), kept so that probabilities computed on the BraTS
  grid go back onto the reference scan's own grid before they are turned into labels.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..io import Volume, mask_like
from . import qc
from .geometry import covering_grid, resample
from .template import BRATS_AFFINE, BRATS_SHAPE, load_template, normalise_brain

MODES = ("auto", "full", "resample", "none")
# The space of models trained on BraTS 2017-2021 files (all on this grid).
BRATS_SPACE = {"spacing": [1.0, 1.0, 1.0], "axcodes": "LPS", "shape": list(BRATS_SHAPE)}
MAX_STRIPPED_ML = 2500.0  # foreground of a skull-stripped scan: brain and tumour, below any head with skull
# How ``full`` maps the brain to the template (medseg3d.raw.register.TEMPLATE_FITS): rigid, as BraTS data keep
# each brain's size; it came nearer BraTS's own alignment than affine for the same Dice (docs/raw.md, "Rigid
# template fit").
TEMPLATE_FIT = "rigid"


def model_space(meta) -> dict | None:
    """The grid a model was trained on: its metadata's ``space``, else BraTS's for four-channel BraTS models.

    ``meta``: the model's :class:`~medseg3d.models.ModelMeta`."""
    if meta.space:
        return meta.space
    if sorted(meta.modalities) == ["flair", "t1", "t1ce", "t2"]:
        return BRATS_SPACE
    return None


def foreground(array: np.ndarray) -> np.ndarray:
    """Voxels clearly above the background: |value| above 1% of the 99th percentile (0 for stripped scans,
    low noise for raw ones; interpolation leaves small non-zero values around other pipelines' brains)."""
    a = np.abs(array.astype(np.float32, copy=False))
    p99 = float(np.percentile(a[::4, ::4, ::2], 99))
    return a > 0.01 * p99 if p99 > 0 else a > 0


def looks_skull_stripped(volume: Volume) -> bool:
    """Foreground under ``MAX_STRIPPED_ML``: a brain (or a crop of one), not a head with skull and neck, which
    fills far more (measured: docs/raw.md, "Figures quoted by the code")."""
    fg = foreground(volume.array)
    return float(fg.sum()) * float(np.prod(volume.spacing)) / 1000.0 <= MAX_STRIPPED_ML


def choose_mode(volumes: dict[str, Volume], space: dict | None) -> tuple[str, str]:
    """(mode, reason): which alignment a case needs, in one line a person can read.

    Args:
        volumes: the case's channels as read.
        space: the model's grid (``spacing`` in mm, ``axcodes``), or None when the model does not say.

    Returns:
        "full" (channels on different grids, or not skull-stripped), "none" (already on one skull-stripped
        grid in the model's space, or the space unknown) or "resample" (skull-stripped on another spacing or
        orientation), with the reason.
    """
    vols = list(volumes.values())
    first = vols[0]
    one_grid = all(first.same_grid(v) for v in vols[1:])
    stripped = all(looks_skull_stripped(v) for v in vols)
    if not one_grid:
        return "full", "the channels lie on different grids"
    if not stripped:
        return "full", "the scans are not skull-stripped"
    if space is None:
        return "none", "the model does not say which grid it was trained on"
    spacing_ok = np.allclose(first.spacing, space["spacing"], atol=0.02)
    axes_ok = "".join(first.axcodes) == space["axcodes"]
    if spacing_ok and axes_ok:
        return "none", "the channels already share one skull-stripped grid in the model's space"
    what = []
    if not spacing_ok:
        what.append("spacing " + "x".join(f"{s:g}" for s in first.spacing) + " mm")
    if not axes_ok:
        what.append("orientation " + "".join(first.axcodes))
    return "resample", f"skull-stripped but {' and '.join(what)}; model: " + "x".join(
        f"{s:g}" for s in space["spacing"]
    ) + f" mm {space['axcodes']}"


@dataclass
class Aligned:
    """A case on the model's grid, with what is needed to take results back to the reference scan."""

    mode: str
    reason: str
    # modality -> (X, Y, Z) on the model grid: float32, or as read with mode none
    channels: dict[str, np.ndarray]
    shape: tuple[int, int, int]
    affine: np.ndarray  # RAS affine of the model grid
    reference: str  # the channel whose grid outputs are written on
    native: Volume  # the reference channel as read
    grid_from_native: np.ndarray | None = None  # LPS map: native reference points -> model-grid points
    brain: np.ndarray | None = None  # on the model grid
    native_brain: np.ndarray | None = None  # on the reference's grid
    steps: list = field(default_factory=list)  # {"step", "seconds", ...}
    transforms: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    details: dict = field(default_factory=dict)

    _image: tuple | None = field(default=None, repr=False, compare=False)

    def image(self, modalities) -> np.ndarray:
        """The channels in ``modalities``' order as one read-only float32 (C, X, Y, Z) array, converted once
        (a BraTS case is 143 MB of float32, and converting it is not free; measured: docs/raw.md, "Figures
        quoted by the code")."""
        key = tuple(modalities)
        if self._image is None or self._image[0] != key:
            out = np.empty((len(key), *self.channels[key[0]].shape), dtype=np.float32)
            for i, m in enumerate(key):
                out[i] = self.channels[m]
            out.flags.writeable = False  # shared by every caller: nobody may change it in place
            self._image = (key, out)
        return self._image[1]

    def to_native(self, probs: np.ndarray, fill) -> np.ndarray:
        """Probabilities (C, X, Y, Z) on the model grid -> (C, ...) on the reference scan's grid.

        Args:
            probs: the probabilities on the model grid.
            fill: per channel, the value outside the model grid (1 for a background class, else 0).

        Returns:
            float32 probabilities on the native grid (``probs`` itself in mode "none").
        """
        if self.mode == "none":
            return probs
        out = np.empty((probs.shape[0],) + self.native.shape, dtype=np.float32)
        for c in range(probs.shape[0]):
            out[c] = resample(
                Volume(probs[c], self.affine),
                self.native.shape,
                self.native.affine,
                self.grid_from_native,
                order=1,
                fill=float(fill[c]),
            )
        return out

    def summary(self) -> dict:
        """What the alignment did, JSON-ready: mode, reason, reference, steps, transforms, warnings and
        details."""
        return {
            "mode": self.mode,
            "reason": self.reason,
            "reference": self.reference,
            "steps": self.steps,
            "transforms": self.transforms,
            "warnings": self.warnings,
            **self.details,
        }


def _check_channel(name: str, volume: Volume) -> None:
    a = volume.array
    if a.ndim != 3:
        raise InputError(f"channel {name}: expected a 3D image, got shape {a.shape}")
    if min(a.shape) < 2:
        raise InputError(f"channel {name}: a single slice ({a.shape}) is not a 3D scan")
    if not np.isfinite(a).all():
        raise InputError(f"channel {name}: holds NaN or infinite values; check the file")
    if a.min() == a.max():
        raise InputError(f"channel {name}: is empty or constant (all voxels {a.flat[0]}); check the file")
    few = mask_like(a)
    if few:
        raise InputError(
            f"channel {name}: holds {few}: a mask or label map, not an MR scan; give the {name} image itself"
        )


@contextlib.contextmanager
def _timed(steps: list, step: str, **details):
    """Append ``{"step", "seconds", **details}`` to ``steps`` once the block has run without error."""
    t = time.perf_counter()
    yield
    steps.append({"step": step, "seconds": round(time.perf_counter() - t, 2), **details})


def align(
    volumes: dict[str, Volume],
    space: dict | None,
    mode: str = "auto",
    reference: str = "t1ce",
    progress=None,
    template_fit: str | None = None,
) -> Aligned:
    """Bring one case's channels onto the model's grid (see the module docstring).

    Args:
        volumes: modality -> Volume as read (any grid each).
        space: the model's grid (:func:`model_space`), or None.
        mode: ``auto`` / ``full`` / ``resample`` / ``none``.
        reference: the channel whose grid outputs are written on (T1ce, or the first channel if absent). When
            nothing is resampled (``none``) it is the first channel, whose header outputs kept before.
        progress: a callable taking one line, told as each step starts.
        template_fit: ``rigid`` or ``affine`` map to the template in ``full`` (default :data:`TEMPLATE_FIT`).
    """
    if mode not in MODES:
        raise InputError(f"--align must be one of {', '.join(MODES)}, got {mode!r}")
    from .register import TEMPLATE_FITS

    if template_fit is not None and template_fit not in TEMPLATE_FITS:
        raise InputError(f"--template-fit must be one of {', '.join(TEMPLATE_FITS)}, got {template_fit!r}")
    for name, vol in volumes.items():
        _check_channel(name, vol)
    reference = reference if reference in volumes else next(iter(volumes))
    if mode == "auto":
        mode, reason = choose_mode(volumes, space)
    else:
        reason = f"--align {mode}"
    say = progress or (lambda line: None)
    first = volumes[reference]
    if mode == "none":
        if not all(first.same_grid(v) for v in volumes.values()):
            raise InputError("--align none: the channels lie on different grids; use --align full")
        reference = next(iter(volumes))
        first = volumes[reference]
        return Aligned(
            "none",
            reason,
            {m: v.array for m, v in volumes.items()},
            first.shape,
            first.affine,
            reference,
            first,
        )
    if mode == "resample":
        if not all(first.same_grid(v) for v in volumes.values()):
            raise InputError("--align resample: the channels lie on different grids; use --align full")
        if space is None:
            raise InputError("--align resample: the model does not say which grid it was trained on")
        steps: list = []
        shape, affine = covering_grid(first.shape, first.affine, tuple(space["axcodes"]), space["spacing"])
        with _timed(steps, "resample", grid=list(shape)):
            channels = {m: resample(v, shape, affine, order=1) for m, v in volumes.items()}
        return Aligned("resample", reason, channels, shape, affine, reference, first, np.eye(4), steps=steps)
    if space is not None and tuple(space.get("shape", ())) != BRATS_SHAPE:
        raise InputError(
            "--align full aligns scans to the BraTS (SRI24) grid; this model was trained on another"
        )
    return _full(volumes, reference, reason, say, template_fit or TEMPLATE_FIT)


def _strip_channel(volumes: dict[str, Volume]) -> str:
    """The finer of T1 and T1ce (deepbet is made for T1-weighted scans); T1 on a tie."""
    candidates = [m for m in ("t1", "t1ce") if m in volumes] or list(volumes)
    return min(candidates, key=lambda m: (round(float(np.prod(volumes[m].spacing)), 3), m != "t1"))


def _full(volumes: dict[str, Volume], reference: str, reason: str, say, template_fit: str) -> Aligned:
    from . import register, skullstrip

    steps: list = []
    warnings: list = []
    ref = volumes[reference]
    rigid = {reference: np.eye(4)}  # reference points -> channel points
    transforms: dict = {reference: {"kind": "identity"}}
    say(
        f"co-registering {', '.join(m for m in volumes if m != reference)} to {reference} (rigid, "
        "mutual information)"
    )
    with _timed(steps, "co-register"):
        for m, vol in volumes.items():
            if m == reference:
                continue
            fit = register.rigid(ref, vol, what=f"co-registration of {m} to {reference}")
            rigid[m] = fit.matrix
            transforms[m] = fit.to_dict()
    strip = _strip_channel(volumes)
    say(f"skull stripping {strip} (deepbet)")
    with _timed(steps, "skull strip", channel=strip):
        mask = skullstrip.brain_mask(volumes[strip])
    brain_ml = float(mask.sum()) * float(np.prod(volumes[strip].spacing)) / 1000.0
    template = load_template()
    say(f"registering the brain to the BraTS template ({template_fit}, mutual information)")
    with _timed(steps, "atlas registration"):
        brain_image = Volume(
            normalise_brain(volumes[strip].array.astype(np.float32), mask), volumes[strip].affine
        )
        tmpl_mod = strip if strip in template.images else "t1"
        fit = register.to_template(
            template.volume(tmpl_mod), template.brain_mask(), brain_image, mask, kind=template_fit
        )
    atlas_to_strip = fit.matrix
    atlas_to_ref = np.linalg.inv(rigid[strip]) @ atlas_to_strip
    transforms["atlas"] = dict(
        fit.to_dict(), channel=strip, note="template (BraTS grid) points -> channel points"
    )
    say("resampling the channels onto the BraTS grid")
    with _timed(steps, "resample"):
        brain = (
            resample(
                Volume(mask.astype(np.float32), volumes[strip].affine),
                BRATS_SHAPE,
                BRATS_AFFINE,
                atlas_to_strip,
                order=1,
            )
            >= 0.5
        )
        channels, uncovered = {}, {}
        for m, vol in volumes.items():
            to_channel = rigid[m] @ atlas_to_ref
            data = resample(vol, BRATS_SHAPE, BRATS_AFFINE, to_channel, order=1)
            uncovered[m] = _uncovered(brain, to_channel, vol)
            channels[m] = np.where(brain, data, 0.0).astype(np.float32)
        native_brain = (
            resample(
                Volume(mask.astype(np.float32), volumes[strip].affine),
                ref.shape,
                ref.affine,
                rigid[strip],
                order=1,
            )
            >= 0.5
        )
    with _timed(steps, "quality checks"):
        details = _quality(channels, brain, template, brain_ml, uncovered, warnings, strip)
    details["brain_ml"] = round(brain_ml, 1)
    details["skull_stripped_channel"] = strip
    return Aligned(
        "full",
        reason,
        channels,
        BRATS_SHAPE,
        BRATS_AFFINE,
        reference,
        ref,
        np.linalg.inv(atlas_to_ref),
        brain,
        native_brain,
        steps,
        transforms,
        warnings,
        details,
    )


def _uncovered(brain: np.ndarray, grid_to_channel: np.ndarray, vol: Volume) -> float:
    """Fraction of brain voxels (BraTS grid) that map outside the channel's voxels."""
    from .geometry import LPS_TO_RAS

    idx = np.argwhere(brain)[::7].astype(np.float64)  # a systematic sample is plenty for a percentage
    if idx.size == 0:
        return 0.0
    world = idx @ BRATS_AFFINE[:3, :3].T + BRATS_AFFINE[:3, 3]
    lps = world * np.array([-1.0, -1.0, 1.0])
    moved = lps @ grid_to_channel[:3, :3].T + grid_to_channel[:3, 3]
    vox = np.linalg.solve(LPS_TO_RAS @ vol.affine, np.c_[moved, np.ones(len(moved))].T).T[:, :3]
    outside = np.any((vox < -0.5) | (vox > np.asarray(vol.shape) - 0.5), axis=1)
    return round(float(outside.mean()), 4)


def _quality(
    channels: dict, brain: np.ndarray, template, brain_ml: float, uncovered: dict, warnings: list, strip: str
) -> dict:
    """Fit to the template (brain overlap, correlation) and modality plausibility, plus the simple checks."""
    fit = qc.template_fit(channels, brain, template)
    for line in (
        [
            qc.check_brain_volume(brain_ml),
            qc.check_template_fit(fit["brain_overlap"], fit["correlation"][strip][strip], strip),
        ]
        + qc.check_modalities(fit["correlation"])
        + qc.check_coverage(uncovered)
    ):
        if line:
            warnings.append(line)
    return {
        "template_fit": {
            "brain_overlap": fit["brain_overlap"],
            "correlation": {m: fit["correlation"][m][m] for m in channels},
        },
        "modality_correlation": fit["correlation"],
        "brain_uncovered": uncovered,
    }


# The names of the first release, kept for one more (medseg3d.raw.pipeline.prepare / Prepared).
prepare = align
Prepared = Aligned
