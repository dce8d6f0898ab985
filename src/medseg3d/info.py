"""What is in an image file, a case folder or a dataset (``medseg3d info PATH``).

:func:`describe` returns plain text for the command line to print: for an image, its grid (shape, spacing,
axis codes, origin), data type and intensity range, and the values and voxel counts of a label-like image;
for a case folder, a line per channel and whether they share one grid; for a dataset, the layout, the cases,
their channels, the label values over all cases and every problem found in any case.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .datasets import (
    Case,
    apply_label_map,
    check_case,
    dataset_labels,
    detect_layout,
    find_cases,
    layout_notes,
)
from .errors import InputError
from .io import Volume, check_path, check_values, image_suffix, is_dicom_folder, read_volume
from .labels import (
    BRATS,
    CONVENTION_TEXT,
    SCHEMES,
    LabelStats,
    label_values,
    resolve_convention,
    scheme_from_labels,
)

# an integer image with at most this many distinct values is shown as a label map
MAX_LABEL_VALUES = 32


def describe(path, layout: str | None = None, *, progress: bool = True) -> str:
    """A readable summary of an image file, a case folder, a dataset (folder or CSV) or a training run.

    Args:
        path: image file (``.nii.gz``, ``.mha``...), DICOM series folder, case folder, dataset folder, CSV, or
            a training run's folder (:func:`medseg3d.train.status.describe_run`).
        layout: dataset layout (see :data:`medseg3d.datasets.LAYOUTS`); detected when ``None``.
        progress: show a progress bar on stderr while a dataset's cases are checked.

    Raises:
        InputError: the path is missing, or is neither an image nor a dataset medseg3d can read.

    Example:
        >>> print(describe("../shared/data/brats2018/Brats18_2013_2_1/Brats18_2013_2_1_seg.nii.gz"))
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; check the path")
    if path.is_file() and image_suffix(path):
        return describe_image(path)
    if path.is_file() and path.suffix.lower() != ".csv":
        raise InputError(f"{path}: not an image (.nii.gz, .nii, .mha, .mhd, .nrrd) nor a .csv case list")
    if path.is_dir() and layout is None and is_dicom_folder(path):
        return describe_image(path)
    from .train.status import describe_run, is_run_folder

    if path.is_dir() and layout is None and is_run_folder(path):
        return describe_run(path)
    layout = layout or detect_layout(path)
    cases = find_cases(path, layout=layout)
    if len(cases) == 1 and path.is_dir() and _is_case_folder(cases[0], path):
        return f"case folder ({layout} layout)\n" + describe_case(cases[0])
    return describe_dataset(path, cases, layout, progress=progress)


def _is_case_folder(case: Case, path: Path) -> bool:
    """``path`` is the case's own folder (named after it, or holding its files directly)."""
    if case.case_id == path.name:
        return True
    files = [Path(p) for p in case.channels.values()] + ([Path(case.label)] if case.label else [])
    return all(Path(f).parent.resolve() == path.resolve() for f in files)


def _fmt(values, digits: int = 4) -> str:
    return "(" + ", ".join(f"{v + 0.0:.{digits}g}" for v in values) + ")"  # + 0.0: no "-0"


def _label_counts(array: np.ndarray) -> dict[int, int] | None:
    """Value -> voxel count when ``array`` looks like a label map (few integer values), else ``None``."""
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            return None
        lo, hi = float(array.min()), float(array.max())
        if hi - lo > 65_535 or np.any(array != np.round(array)):
            return None
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iub":
        return None
    values = label_values(array)
    if values.size > MAX_LABEL_VALUES:
        return None
    if values.size and int(values[-1]) - int(values[0]) > 65_535:  # few values far apart: no bincount
        found, counts = np.unique(array, return_counts=True)
        return {int(v): int(n) for v, n in zip(found, counts)}
    lo = int(values[0]) if values.size else 0
    counts = np.bincount(np.subtract(array.ravel(), lo, dtype=np.intp))  # wide: no int8/int16 wrap-around
    return {int(v): int(counts[v - lo]) for v in values}


def _image_lines(vol: Volume) -> list[str]:
    a = vol.array
    lines = [
        f"shape {tuple(a.shape)}" + (f" ({a.shape[3]} channels)" if a.ndim == 4 else ""),
        f"spacing {_fmt(vol.spacing)} mm, orientation {''.join(vol.axcodes)}, origin {_fmt(vol.origin)} mm",
    ]
    finite = np.isfinite(a) if a.dtype.kind == "f" else None
    if finite is not None and not finite.all():
        bad = int(a.size - finite.sum())
        values = a[finite]
        rng = f"min {values.min():g}, max {values.max():g}" if values.size else "no finite value"
        lines.append(f"dtype {a.dtype}, {rng}; {bad} NaN/infinite voxels")
        return lines
    lines.append(
        f"dtype {a.dtype}, min {a.min():g}, max {a.max():g}"
        + (" (constant image)" if a.min() == a.max() else "")
    )
    counts = _label_counts(a)
    if counts is not None and a.ndim == 3:
        total = a.size
        parts = [f"{v}: {n} ({100 * n / total:.2f} %)" for v, n in counts.items()]
        lines.append(f"label values {', '.join(parts)}")
    else:
        nz = a != 0
        lines.append(f"non-zero voxels {int(nz.sum())} of {a.size} ({100 * nz.mean():.1f} %)")
    return lines


def image_problems(vol: Volume, where: str) -> list[str]:
    """What other commands refuse in one image's voxels: NaN/Inf, magnitudes over 1e10, a constant image.

    Args:
        vol: the image.
        where: its name in the lines.

    Returns:
        One line per problem ([] when it is fine).
    """
    try:
        check_values(vol.array, where)
    except InputError as exc:
        return [str(exc)]
    a = vol.array
    if a.size and a.min() == a.max():
        return [f"{where}: is constant ({a.min():g}); the file is empty or broken"]
    return []


def describe_image(path) -> str:
    """Grid, data type, intensity range (and label values with counts) of one image file or DICOM folder,
    then its problems: everything :func:`~medseg3d.io.read_volume` or a case check would refuse."""
    path = Path(path)
    vol = read_volume(path, check_voxels=False)
    fmt = vol.meta.get("format", "?")
    problems = image_problems(vol, str(path))
    lines = [f"{path} [{fmt}]"] + ["  " + ln for ln in _image_lines(vol)]
    lines.append("  problems: none" if not problems else f"  problems ({len(problems)}):")
    return "\n".join(lines + ["    - " + p for p in problems])


def describe_case(case: Case) -> str:
    """A line per channel (and label), whether all share one grid, and the case's problems."""
    lines = [
        f"case {case.case_id}: {len(case.channels)} channel(s) {', '.join(case.channels)}"
        + ("" if case.label else ", no label file")
    ]
    if case.meta.get("note"):
        lines.append(f"  note: {case.meta['note']}")
    vols: dict[str, Volume] = {}
    sources = case.meta.get("sources", {})
    entries = list(case.channels.items()) + ([("label", case.label)] if case.label else [])
    for name, path in entries:
        lines.append(
            f"  {name}: {path}" + (f" (taken as {name} from its {sources[name]})" if name in sources else "")
        )
        if not Path(path).exists():
            lines.append("    MISSING")
            continue
        try:
            vol = next(case.select([name]).read_channels())[2] if name != "label" else read_volume(path)
        except InputError as exc:
            try:  # voxels other commands refuse (NaN, 1e38...) are still described; check_case lists them
                vol = read_volume(path, check_voxels=False)
            except InputError:
                lines.append(f"    UNREADABLE: {exc}")
                continue
            if vol.array.ndim != 3:
                lines.append(f"    UNREADABLE: {exc}")
                continue
        vols[name] = vol
        lines += ["    " + ln for ln in _image_lines(vol)]
    if len(vols) > 1:
        names = list(vols)
        ref = vols[names[0]]
        differ = [n for n in names[1:] if not ref.same_grid(vols[n])]
        if differ:
            lines.append(f"  grid: {', '.join(differ)} differ(s) from {names[0]} in shape or affine")
        else:
            lines.append(f"  grid: all {len(vols)} files share one grid {ref.shape} and affine")
    if case.meta.get("ignored"):
        lines.append(f"  not a channel, ignored: {', '.join(case.meta['ignored'])}")
    if case.meta.get("label_map"):
        lines.append(f"  label values read as BraTS values: {_label_map_text(case.meta['label_map'])}")
    found = check_case(case)
    problems = found + [p for p in folder_problems(case) if p not in found]
    if "label" in vols and vols["label"].array.ndim == 3 and not any("label" in p for p in found):
        counts = _label_counts(vols["label"].array)
        if counts is None:
            problems.append(
                f"case {case.case_id}: label {case.label} does not look like a label map (many or "
                "non-integer values)"
            )
        elif not _fits(set(counts)):
            odd = sorted(set(counts) - {0, 1, 2, 3, 4})
            problems.append(
                f"case {case.case_id}: label values {odd} are not among [0, 1, 2, 3, 4] and fit no "
                f"label scheme ({', '.join(SCHEMES)})"
            )
        else:
            numbering = _numbering_line(LabelStats().add(vols["label"].array))
            if numbering:
                lines.append(f"  {numbering}")
    lines.append("  problems: none" if not problems else f"  problems ({len(problems)}):")
    lines += ["    - " + p for p in problems]
    return "\n".join(lines)


def _label_map_text(label_map: dict) -> str:
    return ", ".join(f"{k} -> {v}" for k, v in sorted(label_map.items())) + " (nnU-Net's BraTS numbering)"


# at most this many naming patterns (or cases) get their channel files listed one line each
MAX_CASES_LISTED = 20


def _channel_file_lines(cases: list[Case]) -> list[str]:
    """Which file was taken as which channel: one line per naming pattern (the case id written <case>), with
    the cases that follow it, so that a dataset named consistently takes one line and an odd case stands
    out."""
    patterns: dict[str, list[str]] = {}
    for c in cases:
        text = "; ".join(c.channel_lines()).replace(c.case_id, "<case>")
        patterns.setdefault(text, []).append(c.case_id)
    lines = ["  channel files (modality <- file):"]
    for text, ids in list(patterns.items())[:MAX_CASES_LISTED]:
        who = f"{len(ids)} cases" if len(ids) > 1 else f"case {ids[0]}"
        lines.append(f"    {who}: {text}")
    if len(patterns) > MAX_CASES_LISTED:
        lines.append(
            f"    ... {len(patterns) - MAX_CASES_LISTED} more namings (`medseg3d info CASE_FOLDER` shows one)"
        )
    return lines


_BRATS_CHANNELS = ("flair", "t1", "t1ce", "t2")


def folder_problems(case: Case) -> list[str]:
    """What a case's own folder holds that reading would trip over or silently ignore.

    Entries named like images that are not readable files (folders, pipes, link loops, broken links), and
    missing BraTS channels. (Two files for one channel or label are refused where the case is found, by
    :func:`medseg3d.datasets.resolve_case_channels`, and listed by :func:`check_case`.) Only for layouts with
    one folder per case (``brats``, ``brats-mha``).
    """
    if case.meta.get("layout") not in ("brats", "brats-mha"):
        return []
    used = [Path(p) for p in case.channels.values()] + ([Path(case.label)] if case.label else [])
    folders = {p.parent for p in used}
    if len(folders) != 1:
        return []
    folder = folders.pop()
    used_names = {p.name for p in used}
    problems = []
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        return [f"case {case.case_id}: folder {folder} cannot be listed ({exc.strerror})"]
    for entry in entries:
        if entry.name.startswith(".") or not image_suffix(entry.name) or entry.name in used_names:
            continue
        try:
            check_path(entry)
        except InputError as exc:
            problems.append(f"case {case.case_id}: {exc}")
            continue
        if entry.is_dir():
            problems.append(
                f"case {case.case_id}: {entry} is a folder where an image file is expected; "
                "replace it with the file"
            )
    if case.meta.get("layout") == "brats" and case.channels:
        missing = [m for m in _BRATS_CHANNELS if m not in case.channels]
        if missing and len(missing) < len(_BRATS_CHANNELS):
            problems.append(
                f"case {case.case_id}: has {len(case.channels)} of the 4 BraTS channels (no "
                f"{', '.join(missing)}); the bundled model and the BraTS presets need all four"
            )
    return problems


def _fits(values: set[int]) -> list[str]:
    return [name for name, s in SCHEMES.items() if values <= set(s.values) | set(s.merge)]


def _declared_values(root: Path, layout: str) -> set[int] | None:
    """Label values declared by an nnU-Net/MSD dataset.json, or ``None``."""
    if layout != "nnunet":
        return None
    labels = dataset_labels(root)
    if not labels:
        return None
    try:
        return set(scheme_from_labels(labels).values)
    except InputError:
        return None


def describe_dataset(root, cases: list[Case], layout: str, progress: bool = True) -> str:
    """Layout, cases, channels, label values over all cases and every problem of every case.

    Args:
        root: the dataset folder.
        cases: its cases (:func:`medseg3d.datasets.find_cases`).
        layout: the layout found.
        progress: show a progress bar while every case is checked.

    Returns:
        The description, lines of text.
    """
    from tqdm import tqdm

    root = Path(root)
    ids = [c.case_id for c in cases]
    shown = ", ".join(ids if len(ids) <= 30 else ids[:10] + [f"... ({len(ids) - 20} more) ..."] + ids[-10:])
    lines = [f"dataset {root}", f"  layout: {layout}", f"  cases: {len(cases)} ({shown})"]
    channels = list(dict.fromkeys(m for c in cases for m in c.channels))
    lines.append(f"  channels: {', '.join(channels)}")
    grades: dict[str, int] = {}
    for c in cases:
        if "grade" in c.meta:
            grades[c.meta["grade"]] = grades.get(c.meta["grade"], 0) + 1
    if grades:
        lines.append("  groups: " + ", ".join(f"{g} {n}" for g, n in sorted(grades.items())))
    lines += [f"  note: {n}" for n in layout_notes(cases)]
    lines += _channel_file_lines(cases)
    labelled = [c for c in cases if c.label is not None]
    lines.append(f"  labelled cases: {len(labelled)} of {len(cases)}")
    label_maps = list(
        dict.fromkeys(_label_map_text(c.meta["label_map"]) for c in cases if c.meta.get("label_map"))
    )
    lines += [f"  label values read as BraTS values: {t}" for t in label_maps]

    problems: list[str] = []
    if labelled and len(labelled) < len(cases):
        problems += [
            f"case {c.case_id}: no label file (other cases have one)" for c in cases if c.label is None
        ]
    totals: dict[int, int] = {}
    in_cases: dict[int, int] = {}
    grids: list[tuple[tuple[int, ...], tuple[float, ...], str]] = []
    case_values: dict[str, set[int]] = {}
    pooled = LabelStats()
    for case in tqdm(cases, desc="check", unit="case", file=sys.stderr, disable=not progress):
        found = check_case(case)
        problems += found + [p for p in folder_problems(case) if p not in found]
        if case.label is None or not Path(case.label).exists():
            continue
        try:
            lab = read_volume(case.label)
        except InputError:
            continue  # reported by check_case
        grids.append((tuple(lab.shape), tuple(lab.spacing), "".join(lab.axcodes)))
        counts = _label_counts(apply_label_map(lab.array, case.meta.get("label_map")))
        if counts is None:
            problems.append(
                f"case {case.case_id}: "
                f"label {case.label} does not look like a label map (many or non-integer values)"
            )
            continue
        case_values[case.case_id] = set(counts)
        pooled.add(lab.array)
        for v, n in counts.items():
            totals[v] = totals.get(v, 0) + n
            in_cases[v] = in_cases.get(v, 0) + 1
    if grids:
        lines.append("  label grids: " + grid_summary(grids))
    if totals:
        voxels = sum(totals.values())
        parts = [
            f"{v}: {n} voxels ({100 * n / voxels:.2f} %) in {in_cases[v]} case(s)"
            for v, n in sorted(totals.items())
        ]
        lines.append("  label values: " + "; ".join(parts))
        declared = _declared_values(root, layout)
        fits = _fits(set(totals))
        lines.append(
            "  label schemes that fit: " + (", ".join(fits) if fits else "none of " + ", ".join(SCHEMES))
        )
        # values no scheme explains: the dataset.json labels, else the BraTS family's 0..4
        allowed = declared if declared is not None else (None if fits else {0, 1, 2, 3, 4})
        if allowed is not None:
            for cid, values in case_values.items():
                odd = sorted(values - allowed)
                if odd:
                    problems.append(f"case {cid}: label values {odd} are not among {sorted(allowed)}")
    if totals and _declared_values(root, layout) is None:
        numbering = _numbering_line(pooled)
        if numbering:
            lines.append(f"  {numbering}")
    lines.append("  problems: none" if not problems else f"  problems ({len(problems)}):")
    lines += ["    - " + p for p in problems]
    return "\n".join(lines)


GRIDS_LISTED = 3  # distinct grids listed one by one; more are summarised (a 260-case dataset has hundreds)


def grid_summary(grids: list[tuple[tuple[int, ...], tuple[float, ...], str]]) -> str:
    """One line for the grids of a dataset's cases (shape, spacing, orientation codes), each case one entry:
    the grids and their counts when there are at most :data:`GRIDS_LISTED`, else how many distinct ones,
    the range of each axis' size and spacing, the orientations and the most common grids."""

    def text(g):
        return f"{g[0]} at {_fmt(g[1])} mm {g[2]}"

    counts: dict = {}
    for g in grids:
        key = (g[0], tuple(round(float(v), 4) for v in g[1]), g[2])
        counts[key] = counts.get(key, 0) + 1
    common = sorted(counts.items(), key=lambda x: (-x[1], str(x[0])))
    if len(common) <= GRIDS_LISTED:
        return "; ".join(f"{n} case(s) {text(g)}" for g, n in common)
    shapes = np.array([g[0] for g in grids])
    spacing = np.array([g[1] for g in grids], dtype=np.float64)
    size = " x ".join(f"{lo}-{hi}" if lo != hi else f"{lo}" for lo, hi in zip(shapes.min(0), shapes.max(0)))
    mm = " x ".join(
        f"{lo:g}-{hi:g}" if lo != hi else f"{lo:g}" for lo, hi in zip(spacing.min(0), spacing.max(0))
    )
    codes = sorted({g[2] for g in grids})
    top = ", ".join(f"{text(g)} ({n} case(s))" for g, n in common[:GRIDS_LISTED])
    return (
        f"{len(common)} distinct grids over {len(grids)} cases: sizes {size} voxels, spacing {mm} mm, "
        f"orientation {', '.join(codes)}; most common {top}"
    )


def _numbering_line(stats: LabelStats) -> str | None:
    """A line naming a BraTS-family label numbering other than BraTS 2017+ (what train and evaluate assume
    unless told), and the ``--labels`` that reads it; ``None`` for BraTS 2017+ and other labels."""
    try:
        scheme, note = resolve_convention(BRATS, stats, "labels")
    except InputError as exc:
        return f"label numbering: unclear ({str(exc).split(': ', 1)[1]})"
    if note is None:
        return None
    return (
        f"label numbering: {CONVENTION_TEXT[scheme.name]}, from the values and shapes; "
        f"use --labels {scheme.name}"
    )
