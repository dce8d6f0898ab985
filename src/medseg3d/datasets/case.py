"""One subject (:class:`Case`): channel files in order, an optional label; loading and checking it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import Volume, check_path, mask_like, read_volume
from .channel_order import order_warning
from .names import BRATS_MODALITIES, CT_NAMES, normalise_modalities


@dataclass
class Case:
    """One subject: channel files in order, an optional label file.

    Args:
        case_id: identifier used for output names (``<case_id>.nii.gz``).
        channels: modality name -> file (or DICOM folder), in channel order. A modality that the dataset
            has but this case lacks points to the file where it was expected (which does not exist), so
            that :func:`check_case` and :meth:`Case.load` can say what is missing.
        label: label file, or ``None`` for unlabelled cases.
        meta: layout details (e.g. ``"grade": "HGG"``; ``"channel_index"``: modality -> index in a 4D
            channel file, for MSD datasets that keep all channels in one file; ``"sources"``: modality ->
            how its file was identified; ``"ambiguous"``: one line saying why the files cannot be told
            apart, which :meth:`Case.load` raises and :func:`check_case` reports; ``"label_map"``: label
            file value -> BraTS value, for nnU-Net/MSD conversions that renumbered the BraTS labels;
            ``"note"``: an assumption the layout made, to be shown to the user).
    """

    case_id: str
    channels: dict[str, Path]
    label: Path | None = None
    meta: dict = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The case's channel names, in order."""
        return tuple(self.channels)

    def missing(self) -> list[str]:
        """Modalities whose file does not exist."""
        return [m for m, p in self.channels.items() if not Path(p).exists()]

    def select(self, modalities: tuple[str, ...] | list[str] | None) -> Case:
        """This case with only ``modalities``, in that order."""
        if modalities is None:
            return self
        modalities = normalise_modalities(modalities)
        missing = [m for m in modalities if m not in self.channels or not Path(self.channels[m]).exists()]
        if missing and self._numbered_only(modalities):
            return self._by_position(modalities)
        if missing:
            present = [m for m in self.channels if m not in self.missing()]
            raise InputError(
                f"case {self.case_id}: modality {', '.join(missing)} is missing (found "
                f"{', '.join(present) or 'none'}); add the file or choose --modalities among those found"
            )
        meta = dict(self.meta)
        if "channel_index" in meta:
            meta["channel_index"] = {
                m: meta["channel_index"][m] for m in modalities if m in meta["channel_index"]
            }
        return Case(self.case_id, {m: self.channels[m] for m in modalities}, self.label, meta)

    def _numbered_only(self, modalities) -> bool:
        """Whether this case's channels are known only by number (``ch0``, ``ch1``...: nnU-Net files without
        a dataset.json) and as many as ``modalities``, none of which is a BraTS sequence (those are told
        apart by name or content, never by position alone)."""
        numbered = [f"ch{k}" for k in range(len(modalities))]
        return list(self.channels) == numbered and not set(modalities) & set(BRATS_MODALITIES)

    def _by_position(self, modalities) -> Case:
        """This case with channel k taken as ``modalities[k]``, the nnU-Net convention (the model's channel k
        is the dataset's channel k), said in ``meta["note"]``."""
        meta = dict(self.meta)
        meta["note"] = (
            "no dataset.json names the channels: "
            + ", ".join(f"_{k:04d} taken as {m}" for k, m in enumerate(modalities))
            + " (the model's channel order); add a dataset.json with channel_names to say otherwise"
        )
        channels = {m: self.channels[f"ch{k}"] for k, m in enumerate(modalities)}
        return Case(self.case_id, channels, self.label, meta)

    def read_channels(self):
        """Yield ``(modality, path, Volume)`` per channel, each a 3D volume; a 4D file is read once."""
        index = self.meta.get("channel_index", {})
        opened: dict[Path, Volume] = {}
        for name, path in self.channels.items():
            path = Path(path)
            if path.is_symlink() and not path.exists():
                check_path(path)  # "is a symbolic link loop" / "is a broken symbolic link (to ...)"
            if not path.exists():
                present = [m for m in self.channels if m not in self.missing()]
                raise InputError(
                    f"case {self.case_id}: modality {name} file is missing ({path}); add it or choose "
                    f"--modalities among those found ({', '.join(present) or 'none'})"
                )
            if path not in opened:
                opened[path] = read_volume(path)
            vol = opened[path]
            if vol.array.ndim == 4 and name in index:
                k = int(index[name])
                if k >= vol.array.shape[3]:
                    raise InputError(
                        f"case {self.case_id}: {path} has {vol.array.shape[3]} channels, "
                        f"no channel {k} ({name})"
                    )
                vol = Volume(vol.array[..., k], vol.affine, vol.meta)
            if vol.array.ndim != 3:
                raise InputError(
                    f"case {self.case_id}: channel {name} ({path}) is not a 3D image {vol.array.shape}; "
                    "give one 3D file per channel"
                )
            wrapped = wrapped_share(vol.array)
            if wrapped > _WRAPPED_SHARE:
                raise InputError(
                    f"case {self.case_id}: channel {name} ({path}): {100 * wrapped:.1f}% of neighbouring "
                    f"voxels differ by half the {vol.array.dtype} range or more, values that wrapped around "
                    "when stored in too small a type; export the image again with a wider type (e.g. int16 "
                    "or float32)"
                )
            # CT is on an absolute scale (air -1000 HU is its background): only MR magnitude images are moved
            yield name, path, vol if name.strip().lower() in CT_NAMES else background_at_zero(vol)

    def load(self, with_label: bool = True) -> tuple[np.ndarray, Volume, np.ndarray | None]:
        """Read all channels (and the label). Returns ``(image (C, X, Y, Z) float32, reference Volume,
        label)``.

        Checks that every channel and the label share one grid, and that images are finite and not constant.
        Refuses a case whose channel files could not be told apart (``meta["ambiguous"]``), and with
        ``with_label`` one with several label files (``meta["ambiguous_label"]``). A label renumbered by an
        nnU-Net/MSD conversion is returned in BraTS values (``meta["label_map"]``).
        """
        if self.meta.get("ambiguous"):
            raise InputError(self.meta["ambiguous"])
        if with_label and self.meta.get("ambiguous_label"):
            raise InputError(self.meta["ambiguous_label"])
        ref = ref_name = None
        arrays = []
        for name, path, vol in self.read_channels():
            if ref is None:
                ref, ref_name = vol, name
            data = vol.array.astype(np.float32, copy=False)
            problem = _channel_problem(self.case_id, name, path, vol, data, ref, ref_name)
            if problem:
                raise InputError(problem)
            arrays.append(data)
        if ref is None:
            raise InputError(f"case {self.case_id}: no channel files")
        label = None
        if with_label and self.label is not None:
            lab = read_volume(self.label)
            problem = _label_problem(self.case_id, self.label, lab, ref)
            if problem:
                raise InputError(problem)
            label = apply_label_map(lab.array, self.meta.get("label_map"))
        return np.stack(arrays), ref, label

    def channel_lines(self) -> list[str]:
        """``"t1ce <- post_gd.nii.gz (file name)"``: how each channel's file was identified, in channel
        order."""
        sources = self.meta.get("sources", {})
        return [
            f"{m} <- {shown_name(p)}" + (f" ({sources[m]})" if m in sources else "")
            for m, p in self.channels.items()
        ]


# a channel whose background is a constant other than 0: its minimum fills at least this share of the volume
# (a fill: tissue varies from voxel to voxel; a crop close around a tumour keeps ~1% background) while 0 is
# all but absent (below 1% of the voxels)
_BACKGROUND_SHARE = 0.005
_ZERO_SHARE = 0.01


# neighbouring voxels inside the head that differ by half their integer type's range or more: 0.4-0.6% in
# the raw clinical case scaled to uint8 (skull on, 5.5 mm slices), 0 in the BraTS cases, 5-9% in a BraTS case
# whose values wrapped around modulo 256 (fuzz, wrong_dtype: Dice 0.53 against the right result, exit 0)
_WRAPPED_SHARE = 0.02


def wrapped_share(array: np.ndarray) -> float:
    """Share of neighbouring voxel pairs, both non-zero, that differ by half the integer type's range or more.

    Values that overflowed a small integer type (a T1 of 0-700 cast to uint8) wrap around and jump from the
    top of the range to the bottom between neighbours along every contour of 256; a real image of that type
    does so only at a few sharp edges.

    Args:
        array: one 3D channel.

    Returns:
        The share (0 for float images, wider integer types, or a range narrower than half the type's).
    """
    if array.dtype.kind not in "iu" or array.dtype.itemsize > 2 or array.size == 0:
        return 0.0
    info = np.iinfo(array.dtype)
    half = (int(info.max) - int(info.min) + 1) // 2
    if int(array.max()) - int(array.min()) < half:  # no pair can differ by that much: the usual case, free
        return 0.0
    x = array.astype(np.int32)
    pairs = jumps = 0
    for axis in range(3):
        a, b = np.delete(x, -1, axis=axis), np.delete(x, 0, axis=axis)
        both = (a != 0) & (b != 0)
        pairs += int(both.sum())
        jumps += int((both & (np.abs(a - b) >= half)).sum())
    return jumps / pairs if pairs else 0.0


def background_at_zero(vol: Volume) -> Volume:
    """``vol`` with its background moved to 0 where it is another constant (e.g. -30000 after a rescale
    intercept), else ``vol`` itself.

    Everything downstream takes 0 as the background (the brain is the non-zero voxels: cropping, the
    per-channel normalisation, the sequence reading); a FLAIR whose background was -30000 made the whole
    volume "brain" and the tumour came out wrong with exit 0 (fuzz, ``negative_values``). An MR image is
    magnitude data, its darkest tissue just above the background: the fill becomes 0 and the tissue is moved
    so that its lowest value is one step above it (1 for integers), which undoes a constant offset. Merely
    moving the fill to 0 would keep the offset, and the normalisation, which also counts the few voxels where
    this channel is 0 and another is not, would weigh them by it (Dice 0.23 for an offset of 27,000).

    Args:
        vol: one 3D channel.

    Returns:
        The channel (float32) with its minimum at 0 and the rest from one step above 0, where its minimum
        fills at least 0.5% of the volume and 0 less than 1%; otherwise ``vol`` unchanged.
    """
    a = vol.array
    if a.dtype.kind not in "iuf" or a.size == 0:
        return vol
    low = a.min()
    if low == 0 or np.count_nonzero(a == 0) >= _ZERO_SHARE * a.size:
        return vol
    fill = a == low
    if np.count_nonzero(fill) < _BACKGROUND_SHARE * a.size or fill.all():
        return vol
    tissue = a[~fill].astype(np.float64)
    lowest, highest = float(tissue.min()), float(tissue.max())
    step = 1.0 if a.dtype.kind in "iu" else max((highest - lowest) * 1e-3, np.finfo(np.float32).tiny)
    out = (a.astype(np.float64) - lowest + step).astype(np.float32)
    out[fill] = 0
    return vol.with_array(out)


def apply_label_map(label: np.ndarray, label_map: dict | None) -> np.ndarray:
    """``label`` with its values renumbered by ``label_map`` (file value -> value; others unchanged).

    Args:
        label: the label array as read.
        label_map: {file value: value} (keys may be strings, as JSON holds them); None or empty: ``label``
            itself.

    Returns:
        A renumbered copy (or ``label`` itself without a map).
    """
    if not label_map:
        return label
    out = label.copy()
    for src, dst in label_map.items():
        out[label == int(src)] = int(dst)
    return out


def shown_name(path) -> str:
    """A path's name as a message shows it: a folder's with a trailing ``/``."""
    path = Path(path)
    return path.name + ("/" if path.is_dir() else "")


def _channel_problem(case_id, name, path, vol, data, ref, ref_name) -> str | None:
    if vol is not ref and not ref.same_grid(vol):
        return (
            f"case {case_id}: channel {name} has grid {vol.shape} / spacing {_fmt(vol.spacing)} / origin "
            f"{_fmt(vol.origin)} that differs from {ref_name} {ref.shape} / {_fmt(ref.spacing)} / "
            f"{_fmt(ref.origin)}; resample all channels onto one grid"
        )
    if not np.all(np.isfinite(data)):
        return f"case {case_id}: channel {name} ({path}) holds NaN or infinite values; fix the file"
    if data.size and data.min() == data.max():
        return (
            f"case {case_id}: channel {name} ({path}) is constant ({data.min():g}); "
            "the file is empty or broken"
        )
    few = mask_like(vol.array)
    if few:
        return (
            f"case {case_id}: channel {name} ({path}) holds {few}: a mask or label map, "
            "not an MR scan; give the image"
        )
    return None


def _label_problem(case_id, path, lab, ref) -> str | None:
    if not ref.same_grid(lab):
        return (
            f"case {case_id}: label grid {lab.shape} / spacing {_fmt(lab.spacing)} / origin "
            f"{_fmt(lab.origin)} differs from the images' {ref.shape} / {_fmt(ref.spacing)} / "
            f"{_fmt(ref.origin)}; the label must be on the image grid"
        )
    if lab.array.ndim != 3:
        return f"case {case_id}: label {path} is not a 3D image {lab.array.shape}"
    if lab.array.dtype.kind == "f" and (
        not np.all(np.isfinite(lab.array)) or np.any(lab.array != np.round(lab.array))
    ):
        return f"case {case_id}: label {path} holds non-integer or NaN values; a label map must hold integers"
    return None


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def check_case(case: Case) -> list[str]:
    """Every problem of one case as readable lines: files that cannot be told apart, missing or unreadable
    files, grids that differ, NaN or constant images, channels whose intensities fit another order
    (:func:`channel_order_warning`), a label off the image grid or with non-integer values."""
    problems = []
    problems += [case.meta[k] for k in ("ambiguous", "ambiguous_label") if case.meta.get(k)]
    if not case.channels:
        problems.append(f"case {case.case_id}: no image file (only a label); add the channel files")
    ref = ref_name = None
    subsampled: dict[str, np.ndarray] = {}  # for the channel order check
    for name in case.channels:
        try:
            sub = case.select([name]) if Path(case.channels[name]).exists() else None
        except InputError:
            sub = None
        if sub is None:
            problems.append(f"case {case.case_id}: modality {name} file is missing ({case.channels[name]})")
            continue
        try:
            _, path, vol = next(sub.read_channels())
        except InputError as exc:
            problems.append(
                str(exc) if str(exc).startswith(f"case {case.case_id}") else f"case {case.case_id}: {exc}"
            )
            continue
        if ref is None:
            ref, ref_name = vol, name
        problem = _channel_problem(
            case.case_id, name, path, vol, vol.array.astype(np.float32, copy=False), ref, ref_name
        )
        if problem:
            problems.append(problem)
        else:
            subsampled[name] = (vol.array[::2, ::2, ::2], tuple(2 * s for s in vol.spacing))
    if len(subsampled) == len(case.channels) and not case.meta.get("ambiguous"):
        warning = order_warning(
            [a for a, _ in subsampled.values()], tuple(subsampled), [s for _, s in subsampled.values()]
        )
        if warning:
            problems.append(f"case {case.case_id}: {warning}")
    if case.label is not None:
        if not Path(case.label).exists():
            problems.append(f"case {case.case_id}: label file is missing ({case.label})")
        else:
            try:
                lab = read_volume(case.label)
            except InputError as exc:
                problems.append(f"case {case.case_id}: {exc}")
            else:
                if ref is not None:
                    problem = _label_problem(case.case_id, case.label, lab, ref)
                    if problem:
                        problems.append(problem)
    return problems
