"""One case for prediction: a folder, a list of files or ``--flair``-style overrides -> a :class:`Case`."""

from __future__ import annotations

from pathlib import Path

from ..dicom import looks_like_dicom_series, series_description
from ..errors import InputError
from ..io import IMAGE_SUFFIXES, strip_image_suffix
from .case import Case, shown_name
from .dataset_json import read_dataset_json
from .layouts import (
    NNUNET_FILE,
    ambiguity,
    dicom_entries,
    extra_files,
    file_entries,
    find_cases,
    is_nnunet_images_folder,
    nnunet_channel_name,
)
from .names import (
    BRATS_MODALITIES,
    FLAGS,
    NNUNET_BRATS_ORDER,
    identify_name,
    normalise_modalities,
)

# ------------------------------------------------------------------------------- one case, for prediction


def resolve_case_channels(
    inputs: list[Path],
    modalities: tuple[str, ...],
    overrides: dict[str, Path] | None = None,
) -> tuple[Case, list[str]]:
    """The case a user means by one case folder or a list of channel files, channels in ``modalities`` order.

    Each file's modality comes from its name (:func:`identify_name`), a DICOM series' folder name or
    SeriesDescription, an nnU-Net ``_XXXX`` number read through ``dataset.json`` (nnU-Net's BraTS order when
    there is none, said in a line), or ``overrides``. A list of files with no recognisable names keeps the
    order given (the model's); a list whose names are recognised but given in another order is reordered, with
    a line saying so. DICOM series folders count as files.

    Args:
        inputs: one case folder, or the channel files (or DICOM series folders).
        modalities: the channels the model needs, in its order.
        overrides: ``{"t1ce": path}``, from the ``--t1ce`` flags (None: none).

    Returns:
        ``(case, lines)``: the case, and one line per channel saying how its file was identified (e.g.
        ``"t1ce <- post_gd.nii.gz (file name)"``), after any line about an assumption or a reordering.

    Raises:
        InputError: ambiguity (two files for one modality, a file not recognised, a modality missing, names
            that contradict the order given), in one line that lists what was found and names the flags.
    """
    modalities = normalise_modalities(modalities)
    overrides = {normalise_modalities([m])[0]: Path(p) for m, p in (overrides or {}).items()}
    for m, path in overrides.items():
        if m not in modalities:
            raise InputError(f"--{m} {path}: the model does not use {m} (it needs {', '.join(modalities)})")
        if not path.exists():
            raise InputError(f"--{m} {path}: no such file or folder; check the path")
    inputs = [Path(p) for p in inputs]
    if not inputs and not overrides:
        raise InputError(f"no input given; give a case folder, the channel files, or {FLAGS}")
    for path in inputs:
        if not path.exists():
            raise InputError(f"{path}: no such file or folder; check the input path")
    if len(inputs) == 1 and inputs[0].is_dir() and not looks_like_dicom_series(inputs[0]):
        case, lines = _resolve_folder(inputs[0], modalities, overrides)
    else:
        case, lines = _resolve_files(inputs, modalities, overrides)
    return case, lines + case.channel_lines()


def _override_entries(overrides: dict[str, Path]):
    return [(p, m, f"--{m}", "") for m, p in overrides.items()]


def _refuse(case_id: str, entries, modalities, problem: str) -> InputError:
    found = (
        ", ".join(f"{shown_name(p)} -> {what or 'not recognised'}" for p, what, _, _ in entries)
        or "no image file"
    )
    return InputError(
        f"case {case_id}: {problem} (found {found}); say which file is which with {FLAGS}"
        + ("" if set(modalities) == set(BRATS_MODALITIES) else f" (the model needs {', '.join(modalities)})")
    )


def _resolve_folder(folder: Path, modalities, overrides) -> tuple[Case, list[str]]:
    entries = file_entries(folder, IMAGE_SUFFIXES) + dicom_entries(folder)
    named = any(what in BRATS_MODALITIES for _, what, _, _ in entries)
    if set(overrides) >= set(modalities):
        case = Case(
            folder.name,
            {m: overrides[m] for m in modalities},
            None,
            {"layout": "files", "sources": {m: f"--{m}" for m in modalities}},
        )
        return case, []
    if not named and entries and not is_nnunet_images_folder(folder):
        raise _refuse(folder.name, entries, modalities, "no file name says its modality")
    if not named:  # nnU-Net images folder, BRATS 2015 patient folder...: as find_cases reads it
        cases = find_cases(folder)
        if len(cases) != 1:
            raise InputError(
                f"{folder}: holds {len(cases)} cases; give one case folder, or -o a folder for all"
            )
        case = cases[0]
        if case.meta.get("ambiguous"):
            raise InputError(case.meta["ambiguous"])
        channels = {m: overrides.get(m, case.channels.get(m)) for m in modalities}
        missing = [m for m, p in channels.items() if p is None or not Path(p).exists()]
        if missing:
            listed = [(p, m, "", "") for m, p in case.channels.items() if Path(p).exists()]
            raise _refuse(case.case_id, listed, modalities, f"no file for {', '.join(missing)}")
        sources = {
            m: f"--{m}" if m in overrides else case.meta.get("sources", {}).get(m, "") for m in modalities
        }
        meta = {k: v for k, v in case.meta.items() if k not in ("sources", "channel_index")}
        if "channel_index" in case.meta:
            meta["channel_index"] = {
                m: case.meta["channel_index"][m]
                for m in modalities
                if m in case.meta["channel_index"] and m not in overrides
            }
        out = Case(
            case.case_id, channels, case.label, meta | {"sources": {k: v for k, v in sources.items() if v}}
        )
        return out, [case.meta["note"]] if case.meta.get("note") else []
    # the user's flags settle their modalities: the folder's files named so, or given so, step aside
    given = {_resolved(p) for p in overrides.values()}
    kept = [e for e in entries if e[1] not in overrides and _resolved(e[0]) not in given]
    prefixes = {prefix for _, what, _, prefix in kept if what in BRATS_MODALITIES and prefix}
    case_id = folder.name
    needed = [m for m in modalities if m not in overrides]
    ambiguous = ambiguity(case_id, kept, needed)
    if ambiguous:
        raise InputError(ambiguous)
    found = {what: (path, how) for path, what, how, _ in kept}
    missing = [m for m in needed if m not in found]
    if missing:
        raise _refuse(
            case_id, kept + _override_entries(overrides), modalities, f"no file for {', '.join(missing)}"
        )
    channels = {m: overrides[m] if m in overrides else found[m][0] for m in modalities}
    sources = {m: f"--{m}" if m in overrides else found[m][1] for m in modalities}
    label = found["label"][0] if "label" in found else None
    case = Case(case_id, channels, label, {"layout": "folder", "sources": sources})
    if case_id.lower() in _GENERIC_FOLDER_NAMES:  # ".../TCGA-FG-6692/raw/flair.nii.gz": the case is above
        case.case_id = prefixes.pop() if len(prefixes) == 1 else folder.resolve().parent.name
    used = {_resolved(p) for p in channels.values()} | ({_resolved(label)} if label else set())
    extras = extra_files([e for e in entries if _resolved(e[0]) not in used and e[1] not in BRATS_MODALITIES])
    lines = [f"ignored {', '.join(extras)} (no channel name: not a channel)"] if extras else []
    return case, lines


def _resolved(path) -> Path:
    """``path`` with its links followed; a link loop as it stands (``Path.resolve`` raises on one: the case's
    reading says what is wrong with it)."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError):
        return Path(path).absolute()


_GENERIC_FOLDER_NAMES = {"raw", "images", "input", "inputs", "nifti", "nii", "dicom", "scans", "anat", "mri"}


def _nnunet_file_modalities(files: list[Path]) -> tuple[dict[int, str], str] | None:
    """For files named ``<case>_XXXX`` of one case: channel number -> modality and how it was known."""
    matches = [NNUNET_FILE.match(strip_image_suffix(f.name)) if f.is_file() else None for f in files]
    if not all(matches) or len({m.group("case") for m in matches}) != 1:
        return None
    numbers = [int(m.group("ch")) for m in matches]
    if len(set(numbers)) != len(numbers):
        return None
    folder = files[0].parent
    for info_root in (folder, folder.parent):
        if (info_root / "dataset.json").is_file():
            names = read_dataset_json(info_root).get("channel_names") or read_dataset_json(info_root).get(
                "modality"
            )
            if isinstance(names, dict) and all(str(k) in names for k in numbers):
                return (
                    {k: nnunet_channel_name(names[str(k)], k) for k in numbers},
                    f"nnU-Net channel number, {info_root / 'dataset.json'}",
                )
    if set(numbers) == {0, 1, 2, 3}:
        return dict(enumerate(NNUNET_BRATS_ORDER)), "nnU-Net channel number, nnU-Net's BraTS order"
    return None


def _resolve_files(files: list[Path], modalities, overrides) -> tuple[Case, list[str]]:
    remaining = [m for m in modalities if m not in overrides]
    first = files[0] if files else next(iter(overrides.values()))
    case_id = strip_image_suffix(first.name)
    lines: list[str] = []
    entries = []
    nnunet = _nnunet_file_modalities(files) if files else None
    if nnunet is not None:
        by_number, how = nnunet
        case_id = NNUNET_FILE.match(strip_image_suffix(files[0].name)).group("case")
        for f in files:
            k = int(NNUNET_FILE.match(strip_image_suffix(f.name)).group("ch"))
            entries.append((f, by_number[k], f"_{k:04d}: {how}", case_id))
        if "BraTS order" in how:
            lines.append(
                f"no dataset.json beside {files[0].parent}: channels taken in nnU-Net's BraTS order "
                "(_0000 t1, _0001 t1ce, _0002 t2, _0003 flair)"
            )
    else:
        for f in files:
            if f.is_dir():
                what, prefix = identify_name(f.name, descriptive=True)
                how = "folder name"
                if what is None:
                    description = series_description(f)
                    if description:
                        what, how = (
                            identify_name(description, descriptive=True)[0],
                            f"series description '{description}'",
                        )
            else:
                what, prefix = identify_name(f.name)
                how = "file name"
            entries.append((f, what, how, prefix))
    if len(files) != len(remaining):
        raise _refuse(
            case_id,
            entries + _override_entries(overrides),
            modalities,
            f"the model needs {len(modalities)} channel files ({', '.join(modalities)}), got "
            f"{len(files) + len(overrides)}",
        )
    whats = [what for _, what, _, _ in entries]
    if all(w is None for w in whats):  # no name says anything: the order given is the model's (as always)
        channels = dict(zip(remaining, files))
        sources = {m: f"position {k + 1}, no modality in the name" for k, m in enumerate(remaining)}
    elif sorted(map(str, whats)) == sorted(remaining):
        channels = {w: f for f, w, _, _ in entries}
        sources = {w: how for _, w, how, _ in entries}
        if whats != remaining:
            lines.append(
                f"channels given in the order {', '.join(whats)}; reordered to the model's "
                f"{', '.join(modalities)} by their names"
            )
        prefixes = {prefix for _, _, _, prefix in entries}
        if nnunet is None and len(prefixes) == 1 and next(iter(prefixes)):
            case_id = prefixes.pop()
    elif all(w is None or w == m for w, m in zip(whats, remaining)):  # some named, each where it belongs
        channels = dict(zip(remaining, files))
        sources = {
            m: how if w == m else f"position {k + 1}, no modality in the name"
            for k, (m, (_, w, how, _)) in enumerate(zip(remaining, entries))
        }
    else:
        raise _refuse(
            case_id,
            entries + _override_entries(overrides),
            modalities,
            "the file names do not give each channel exactly once",
        )
    channels |= {m: overrides[m] for m in overrides}
    sources |= {m: f"--{m}" for m in overrides}
    case = Case(
        case_id,
        {m: Path(channels[m]) for m in modalities},
        None,
        {"layout": "files", "sources": {m: sources[m] for m in modalities}},
    )
    return case, lines
