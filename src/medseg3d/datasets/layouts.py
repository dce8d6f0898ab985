"""Finding the cases of a dataset folder in each layout (brats, brats-mha, nnunet, csv)."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from ..dicom import looks_like_dicom_series, series_description
from ..errors import InputError
from ..io import IMAGE_SUFFIXES, image_suffix, strip_image_suffix
from .case import Case, shown_name
from .dataset_json import brats_label_map, read_dataset_json
from .names import (
    BRATS_MODALITIES,
    FLAGS,
    MODALITY_ALIASES,
    NAME_MODALITY,
    NNUNET_BRATS_ORDER,
    identify_name,
    normalise_modalities,
)

LAYOUTS = ("brats", "brats-mha", "nnunet", "csv")


def _visible_files(folder: Path):
    """Files of ``folder`` without hidden ones (macOS ``._x.nii.gz`` forks ship inside MSD archives)."""
    return (f for f in folder.iterdir() if not f.name.startswith(".") and f.is_file())


_CASE_FILE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr")  # MetaImage case files: the brats-mha layout


def _listing(folder: Path) -> tuple[list[Path], list[Path]]:
    """(visible files, visible sub-folders) of ``folder``, sorted, from one directory scan (no stat per entry
    but for links: ``find_cases`` runs this on every case folder, often)."""
    files, dirs = [], []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                try:
                    is_dir = entry.is_dir()
                except OSError:  # a symbolic link loop
                    is_dir = False
                if is_dir and not image_suffix(entry.name):
                    dirs.append(Path(entry.path))
                else:
                    # a link that leads nowhere (a loop, a dangling target), a pipe or device, a folder named
                    # like an image file: listed, so that the case it belongs to is refused with what is wrong
                    # with it rather than dropped without a word
                    files.append(Path(entry.path))
    except OSError:
        return [], []
    return sorted(files), sorted(dirs)


def file_entries(folder: Path, suffixes, files=None) -> list[tuple[Path, str | None, str, str]]:
    """``(file, what, how, prefix)`` for the image files of ``folder`` with one of ``suffixes``.

    Args:
        folder: the case folder.
        suffixes: the image suffixes to take (e.g. ".nii.gz").
        files: the folder's files if already listed (None: list them).

    Returns:
        One entry per file: what its name says (:func:`identify_name`; None unrecognised), "file name", and
        the name without that part.
    """
    entries = []
    for f in _listing(folder)[0] if files is None else files:
        if image_suffix(f) in suffixes:
            what, prefix = identify_name(f.name)
            entries.append((f, what, "file name", prefix))
    return entries


def dicom_entries(folder: Path, subfolders=None) -> list[tuple[Path, str | None, str, str]]:
    """``(series folder, what, how, prefix)`` for the DICOM series sub-folders of ``folder``.

    Args:
        folder: the case folder.
        subfolders: its sub-folders if already listed (None: list them).

    Returns:
        One entry per series: what its folder name (else its SeriesDescription) says, how that was read, and
        the name without that part.
    """
    entries = []
    for sub in _subfolders(folder) if subfolders is None else subfolders:
        if not looks_like_dicom_series(sub):
            continue
        what, prefix = identify_name(sub.name, descriptive=True)
        how = "folder name"
        if what is None:
            description = series_description(sub)
            if description:
                what = identify_name(description, descriptive=True)[0]
                how = f"series description '{description}'"
        entries.append((sub, what, how, prefix))
    return entries


def ambiguity(case_id: str, entries, needed=None) -> str | None:
    """One line saying why the files of a case cannot be told apart, or ``None`` when they can.

    Two files named for one ``needed`` modality are ambiguous; files whose names say nothing are ambiguous
    only while a ``needed`` modality has no file (one of them may be it). Beside a file for each, they are
    extras a real folder carries (``CASE_foo``, ``CASE_seg2``, a mask, old labels): see
    :func:`extra_files`.

    Args:
        case_id: the case, for the line.
        entries: :func:`file_entries` / :func:`dicom_entries` of its folder.
        needed: the modalities the caller needs (None: every modality counts).
    """
    counts: dict = {}
    for _, what, _, _ in entries:
        counts[what] = counts.get(what, 0) + 1
    twice = [
        w
        for w, n in counts.items()
        if w not in (None, "ignore") and n > 1 and (needed is None or w in needed)
    ]
    complete = needed is not None and all(m in counts for m in needed)
    unknown = 0 if complete else counts.get(None, 0)
    if not twice and not unknown:
        return None
    found = ", ".join(
        f"{shown_name(p)} -> {what or 'not recognised'}"
        for p, what, _, _ in sorted(entries, key=lambda e: e[0].name)
        if what != "ignore"
    )
    why = "; ".join(
        [f"{n} files for {w}" for w, n in counts.items() if w in twice]
        + ([f"{unknown} file(s) not recognised"] if unknown else [])
    )
    return (
        f"case {case_id}: cannot tell which file is which channel ({why}; found {found}); remove the extra "
        f"files or say which is which with {FLAGS}"
    )


def extra_files(entries) -> list[str]:
    """The names of the files that are no channel and no label (a mask, ``CASE_foo``): ignored."""
    return [shown_name(p) for p, what, _, _ in entries if what in (None, "ignore")]


def _case_from_entries(case_id: str, entries, layout: str) -> Case | None:
    """A case from identified files, or ``None`` when no file names a modality (not a case folder)."""
    if not any(what in BRATS_MODALITIES for _, what, _, _ in entries):
        return None
    entries = sorted(entries, key=lambda e: e[0].name)
    first: dict[str, tuple[Path, str]] = {}
    for path, what, how, _ in entries:
        first.setdefault(what, (path, how))
    channels = {m: first[m][0] for m in BRATS_MODALITIES if m in first}
    meta = {"layout": layout, "sources": {m: first[m][1] for m in channels}}
    ambiguous = ambiguity(case_id, entries, BRATS_MODALITIES)
    if ambiguous:
        meta["ambiguous"] = ambiguous
    labels = [e for e in entries if e[1] == "label"]
    if len(labels) > 1:  # matters to training and evaluation, not to prediction
        meta["ambiguous_label"] = (
            f"case {case_id}: {len(labels)} label files ({', '.join(shown_name(e[0]) for e in labels)}); "
            "keep one, or list the cases in a .csv with a 'label' column"
        )
    ignored = extra_files(entries) if not ambiguous else []
    if ignored:
        meta["ignored"] = ignored
    label = first["label"][0] if "label" in first else None
    return Case(case_id, channels, label, meta)


def _brats_case(folder: Path) -> Case | None:
    """The case in ``folder``: channel files named by modality (any image format but MetaImage, which is the
    brats-mha layout's), or one DICOM series sub-folder per modality; ``None`` if none is named."""
    files, dirs = _listing(folder)
    entries = file_entries(folder, _CASE_FILE_SUFFIXES, files)
    if dirs and not any(what in BRATS_MODALITIES for _, what, _, _ in entries):
        entries += dicom_entries(folder, dirs)  # channels as files, or as series folders: not both
    return _case_from_entries(folder.name, entries, "brats")


def _fill_missing(cases: list[Case], expected_path) -> list[Case]:
    """Give every case the modalities any case has (BraTS order), pointing missing ones at ``expected_path``.

    Files named by BraTS sequence stand for a BraTS dataset: one that names some of the four gets all four, so
    that a sequence no case has (a one-case dataset without its FLAIR file) is missing, not a smaller dataset.
    """
    present = {m for c in cases for m in c.channels}
    if present & set(BRATS_MODALITIES):
        present |= set(BRATS_MODALITIES)
    order = [m for m in BRATS_MODALITIES if m in present] + sorted(present - set(BRATS_MODALITIES))
    for c in cases:
        c.channels = {m: c.channels[m] if m in c.channels else expected_path(c, m) for m in order}
    return cases


def _brats_expected(case: Case, modality: str) -> Path:
    first = Path(next(iter(case.channels.values()), case.label))
    return first.parent / f"{case.case_id}_{modality}{image_suffix(first) or '.nii.gz'}"


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _find_brats(root: Path) -> list[Case]:
    single = _brats_case(root)
    if single is not None:
        return [single]
    cases = []
    for sub in _subfolders(root):
        case = _brats_case(sub)
        if case is not None:
            cases.append(case)
        else:  # BraTS 2017/2018 training archives nest HGG/ and LGG/
            for subsub in _subfolders(sub):
                case = _brats_case(subsub)
                if case is not None:
                    case.meta["grade"] = sub.name
                    cases.append(case)
    return _fill_missing(cases, _brats_expected)


_VSD = re.compile(r"VSD\.Brain(?:_\d+more)?\.XX\.O\.(MR_[A-Za-z0-9]+|OT)\.(\d+)", re.IGNORECASE)


def _mha_expected(case: Case, modality: str) -> Path:
    first = Path(next(iter(case.channels.values()), case.label))
    if _VSD.search(first.name):
        patient = first.parent.parent if _VSD.search(first.parent.name) else first.parent
        mr = {"flair": "Flair", "t1": "T1", "t1ce": "T1c", "t2": "T2"}.get(modality, modality)
        return patient / f"VSD.Brain.XX.O.MR_{mr}.*" / f"VSD.Brain.XX.O.MR_{mr}.*.mha"
    mod = {"t1ce": "T1C"}.get(modality, modality.upper())
    return first.parent / f"{case.case_id}_{mod}{image_suffix(first)}"


def _find_brats_mha(root: Path) -> list[Case]:
    groups: dict[str, dict] = {}
    flat: dict[Path, list] = {}  # folder -> (file, what, how, prefix) of its files named <case>_<modality>
    for f in sorted(root.rglob("*")):
        if f.name.startswith(".") or not f.is_file() or image_suffix(f) not in (".mha", ".mhd"):
            continue
        stem = strip_image_suffix(f.name)
        m = _VSD.search(stem)
        if not m:
            what, prefix = identify_name(f.name)
            flat.setdefault(f.parent, []).append((f, what, "file name", prefix))
            continue
        # 2015: <grade>/<patient>/VSD...<kind>.<id>/VSD...<id>.mha ; the patient folder names the case
        patient_dir = f.parent.parent if _VSD.search(f.parent.name) else f.parent
        case_id = patient_dir.name
        kind = m.group(1).lower()
        key = "label" if kind == "ot" else NAME_MODALITY.get(kind[3:].replace("_", ""), kind[3:])
        meta = {"grade": patient_dir.parent.name} if patient_dir != root else {}
        entry = groups.setdefault(
            case_id, {"channels": {}, "label": None, "meta": {"layout": "brats-mha", **meta}}
        )
        if key == "label":
            entry["label"] = f
        else:
            entry["channels"][key] = f
    cases = []
    for case_id, g in sorted(groups.items()):
        ordered = {m: g["channels"][m] for m in BRATS_MODALITIES if m in g["channels"]}
        ordered.update({m: p for m, p in g["channels"].items() if m not in ordered})
        # a label with no image beside it stays a case: every channel is then reported missing
        cases.append(Case(case_id, ordered, g["label"], g["meta"]))
    for folder, entries in sorted(flat.items()):
        cases += _flat_mha_cases(folder, entries)
    cases.sort(key=lambda c: c.case_id)
    return _fill_missing(cases, _mha_expected)


def _flat_mha_cases(folder: Path, entries) -> list[Case]:
    """The cases of one folder of ``<case>_<modality>.mha`` files: one case, or one per case prefix when the
    folder holds several complete-looking cases side by side (BRATS 2012's flat naming)."""
    by_prefix: dict[str, list] = {}
    for e in entries:
        if e[1] is not None:
            by_prefix.setdefault(e[3], []).append(e)
    if len(by_prefix) > 1 and all(len(group) >= 2 for group in by_prefix.values()):
        found = [
            _case_from_entries(prefix, group, "brats-mha") for prefix, group in sorted(by_prefix.items())
        ]
        return [c for c in found if c is not None]
    prefixes = [p for p in by_prefix if p]
    case_id = prefixes[0] if len(by_prefix) == 1 and prefixes else folder.name
    case = _case_from_entries(case_id, entries, "brats-mha")
    if case is None and any(e[1] == "label" for e in entries):  # a label alone: every channel is missing
        case = Case(case_id, {}, next(e[0] for e in entries if e[1] == "label"), {"layout": "brats-mha"})
    return [case] if case is not None else []


NNUNET_FILE = re.compile(r"^(?P<case>.+)_(?P<ch>\d{4})$")


def is_nnunet_images_folder(folder: Path) -> bool:
    """``folder`` holds image files and every one is named ``<case>_XXXX`` (an nnU-Net imagesTr/imagesTs)."""
    seen = False
    for f in _visible_files(folder):
        if image_suffix(f):
            if not NNUNET_FILE.match(strip_image_suffix(f.name)):
                return False
            seen = True
    return seen


def nnunet_channel_name(name: str, k: int) -> str:
    """The modality name of an nnU-Net ``channel_names`` entry: a BraTS modality when the name says one, else
    the
    name (lower case, aliases resolved), or ``ch<k>`` when it is empty.

    Args:
        name: the entry's value in dataset.json.
        k: the channel's number.
    """
    what, _ = identify_name(str(name).strip(), descriptive=True)
    if what in BRATS_MODALITIES:
        return what
    name = str(name).strip().lower()
    return MODALITY_ALIASES.get(name, name) if name else f"ch{k}"


def _find_nnunet(root: Path, split: str = "Tr") -> list[Case]:
    if (root / "dataset.json").is_file():
        info_root, img_dir, lab_dir = root, root / f"images{split}", root / f"labels{split}"
    else:  # an images folder given on its own: its dataset.json, if any, is in the dataset folder above
        info_root = root.parent if (root.parent / "dataset.json").is_file() else None
        img_dir = root
        lab_dir = (
            root.parent / ("labels" + root.name[len("images") :]) if root.name.startswith("images") else None
        )
    info = read_dataset_json(info_root) if info_root is not None else {}
    names = info.get("channel_names") or info.get("modality") or {}
    if not isinstance(names, dict):
        raise InputError(f"{info_root / 'dataset.json'}: 'channel_names' must map channel numbers to names")
    channel_names: list[str] = []
    for k in range(len(names)):
        name = nnunet_channel_name(names.get(str(k), f"ch{k}"), k)
        channel_names.append(name if name not in channel_names else f"{name}_{k}")
    how = {name: f"dataset.json channel {k} '{names.get(str(k))}'" for k, name in enumerate(channel_names)}
    found: dict[str, dict[int, Path]] = {}
    for f in sorted(_visible_files(img_dir)) if img_dir.is_dir() else []:
        if image_suffix(f) == "":
            continue
        m = NNUNET_FILE.match(strip_image_suffix(f.name))
        if m:
            found.setdefault(m.group("case"), {})[int(m.group("ch"))] = f
        else:  # MSD: one 4D file per case
            found.setdefault(strip_image_suffix(f.name), {})[-1] = f
    note = None
    if info_root is None and found and all(set(chans) == {0, 1, 2, 3} for chans in found.values()):
        channel_names = list(NNUNET_BRATS_ORDER)
        how = {
            name: f"_{k:04d}: nnU-Net's BraTS order, no dataset.json" for k, name in enumerate(channel_names)
        }
        note = (
            f"{root}: no dataset.json here or in the folder above; channels taken in nnU-Net's BraTS order "
            "(_0000 t1, _0001 t1ce, _0002 t2, _0003 flair); if not, "
            f"give a dataset.json or the files with {FLAGS}"
        )
    label_map = brats_label_map(info.get("labels"))
    cases = []
    for case_id, chans in sorted(found.items()):
        meta = {"layout": "nnunet"}
        if -1 in chans:
            names4d = channel_names or ["all"]
            channels = {name: chans[-1] for name in names4d}
            if channel_names:
                meta["channel_index"] = {name: k for k, name in enumerate(channel_names)}
        else:
            count = len(channel_names) or (max(chans) + 1)
            channels = {}
            for k in range(count):
                name = channel_names[k] if k < len(channel_names) else f"ch{k}"
                if k in chans:
                    channels[name] = chans[k]
                else:
                    channels[name] = img_dir / f"{case_id}_{k:04d}.nii.gz"  # reported missing by check_case
        # the model's channel order does not depend on the file numbers: BraTS modalities in BraTS order
        channels = {m: channels[m] for m in BRATS_MODALITIES if m in channels} | channels
        meta["sources"] = {m: how[m] for m in channels if m in how}
        if note:
            meta["note"] = note
        if label_map:
            meta["label_map"] = label_map
        label = None
        for suffix in IMAGE_SUFFIXES if lab_dir is not None else ():
            candidate = lab_dir / f"{case_id}{suffix}"
            if candidate.is_file():
                label = candidate
                break
        cases.append(Case(case_id, channels, label, meta))
    return cases


def _find_csv(path: Path) -> list[Case]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: spreadsheets write a BOM
            reader = csv.reader(fh)
            header = next(reader, None)
            rows = [r for r in reader if any(cell.strip() for cell in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the CSV ({exc}); save it as UTF-8 text") from exc
    if not header:
        raise InputError(
            f"{path}: the CSV is empty; add a header 'case,<channel>...,label' and one row per case"
        )
    columns = [c.strip() for c in header]
    lower = [c.lower() for c in columns]
    if "case" not in lower:
        raise InputError(f"{path}: the CSV needs a 'case' column (found {columns})")
    if not rows:
        raise InputError(
            f"{path}: the CSV lists no cases; add rows with a 'case' column and one column per channel"
        )
    label_col = next((i for i, c in enumerate(lower) if c in ("label", "seg")), None)
    case_col = lower.index("case")
    channel_cols = [i for i in range(len(columns)) if i not in (case_col, label_col)]
    if not channel_cols:
        raise InputError(f"{path}: the CSV has no channel columns; add one column per modality")
    names = normalise_modalities([columns[i] for i in channel_cols])

    def resolve(p: str) -> Path:
        p = Path(p.strip()).expanduser()
        return p if p.is_absolute() else path.parent / p

    cases = []
    for n, row in enumerate(rows, start=2):
        if len(row) != len(columns):
            raise InputError(f"{path}: line {n} has {len(row)} cells, the header {len(columns)}; fix the row")
        case_id = row[case_col].strip()
        if not case_id:
            raise InputError(f"{path}: line {n} has an empty 'case' cell; give every case an id")
        empty = [names[j] for j, i in enumerate(channel_cols) if not row[i].strip()]
        if empty:
            raise InputError(
                f"{path}: line {n} (case {case_id}) has no file for {', '.join(empty)}; "
                "fill every channel cell"
            )
        channels = {names[j]: resolve(row[i]) for j, i in enumerate(channel_cols)}
        label = resolve(row[label_col]) if label_col is not None and row[label_col].strip() else None
        cases.append(Case(case_id, channels, label, {"layout": "csv"}))
    return cases


def detect_layout(root: Path) -> str:
    """Guess the layout of ``root`` (see the module docstring)."""
    root = Path(root)
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "csv"
        raise InputError(f"{root}: is a file; give a dataset folder, a case folder or a .csv case list")
    if (root / "dataset.json").is_file() or is_nnunet_images_folder(root):
        return "nnunet"
    if _brats_case(root) is not None:
        return "brats"
    subs = _subfolders(root)
    if any(_brats_case(sub) is not None for sub in subs):
        return "brats"
    if any(image_suffix(f) in (".mha", ".mhd") for f in root.rglob("*") if not f.name.startswith(".")):
        return "brats-mha"
    for sub in subs:
        if any(_brats_case(s) is not None for s in _subfolders(sub)):
            return "brats"
    raise InputError(
        f"{root}: no cases found; expected case folders with files named by modality (<case>_flair.nii.gz, "
        ".nrrd, .mha...) or one DICOM series folder per modality, BRATS 2015 .mha folders, an nnU-Net folder "
        "(dataset.json, or <case>_0000.nii.gz files), or a .csv case list"
    )


def find_cases(
    root: str | Path,
    layout: str | None = None,
    modalities=None,
    require_label: bool = False,
    split: str = "Tr",
    complete: bool = False,
) -> list[Case]:
    """All cases of the dataset at ``root`` (folder or CSV), channels in order, optionally a modality subset.

    Every case gets every modality that any case of the dataset has; where a case lacks the file, its
    channel points to the expected (missing) path, which :func:`check_case` reports and
    :meth:`Case.load` refuses. Choosing ``modalities`` checks at once that every case has those files.

    Args:
        root: dataset folder, single case folder, or CSV file.
        layout: one of ``LAYOUTS``; detected when ``None``.
        modalities: channels to keep, in order (e.g. ``"flair,t1ce"``); ``None`` keeps all.
        require_label: raise if a case has no label file (training needs them).
        split: for nnU-Net layouts, ``"Tr"`` or ``"Ts"``.
        complete: refuse a dataset in which no case has a file for one of its channels (a BraTS-named one
            without any FLAIR file), unless ``modalities`` chose the channels; a chosen subset that leaves
            such a channel out is said in each case's ``meta["note"]``.

    Returns:
        The cases, in the layout's order.

    Raises:
        InputError: no such dataset, no cases, a case id twice, a chosen modality missing, a case without
            a label under ``require_label``, a channel absent everywhere under ``complete``.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such dataset folder or file; check the path (or set MEDSEG3D_DATA)")
    if layout is not None and layout not in LAYOUTS:
        raise InputError(f"unknown dataset layout '{layout}'; choose one of {', '.join(LAYOUTS)}")
    layout = layout or detect_layout(root)
    if layout == "csv" and not root.is_file():
        raise InputError(f"{root}: is a folder; the csv layout needs a .csv file listing the cases")
    if layout != "csv" and not root.is_dir():
        raise InputError(f"{root}: is a file; the {layout} layout needs a dataset folder")
    if layout == "brats":
        cases = _find_brats(root)
    elif layout == "brats-mha":
        cases = _find_brats_mha(root)
    elif layout == "nnunet":
        cases = _find_nnunet(root, split)
    else:
        cases = _find_csv(root)
    if not cases:
        raise InputError(f"{root}: no cases found in the '{layout}' layout; check the folder")
    seen: dict[str, Case] = {}
    for c in cases:
        if c.case_id in seen:
            raise InputError(
                f"{root}: case id {c.case_id} appears twice ({_where(seen[c.case_id])} and {_where(c)}); "
                "give every case a unique name"
            )
        seen[c.case_id] = c
    absent = absent_channels(cases)
    if absent and complete and modalities is None:
        raise InputError(_absent_message(root, cases, absent))
    cases = [c.select(modalities) for c in cases]
    left_out = [m for m in absent if m not in cases[0].channels]
    if left_out and modalities is not None:  # the user chose to do without them: said once, not hidden
        note = (
            f"no case has a {', '.join(left_out)} file; the channels are {', '.join(cases[0].channels)}, "
            "as --modalities chose"
        )
        for c in cases:
            c.meta["note"] = "; ".join(n for n in (c.meta.get("note"), note) if n)
    if require_label:
        unlabelled = [c.case_id for c in cases if c.label is None]
        if unlabelled:
            raise InputError(
                f"{root}: {len(unlabelled)} case(s) have no label file (e.g. {unlabelled[0]}); "
                "training needs labels"
            )
    return cases


def absent_channels(cases: list[Case]) -> list[str]:
    """The channels that no case of ``cases`` has a file for (their paths are where the file was expected).

    Args:
        cases: cases of one dataset, every one with the same channels (as :func:`find_cases` gives them).

    Returns:
        Those channels' names, in channel order; empty when every channel has a file in some case.
    """
    if not cases:
        return []
    return [m for m in cases[0].channels if all(m in c.missing() for c in cases)]


def _absent_message(root: Path, cases: list[Case], absent: list[str]) -> str:
    first = cases[0]
    found = [m for m in first.channels if m not in absent]
    who = f"case {first.case_id} has no" if len(cases) == 1 else f"none of the {len(cases)} cases has a"
    return (
        f"{root}: {who} {', '.join(absent)} file (expected e.g. {shown_name(first.channels[absent[0]])}); "
        f"add it, or choose the sequences found with --modalities {','.join(found) or '...'}"
    )


def _where(case: Case) -> str:
    return str(Path(next(iter(case.channels.values()), case.label or ".")).parent)


def layout_notes(cases: list[Case]) -> list[str]:
    """The assumptions the layout made for these cases (e.g. nnU-Net's BraTS channel order taken for an
    images folder without dataset.json), each once: to be printed before the cases are used."""
    return list(dict.fromkeys(c.meta["note"] for c in cases if c.meta.get("note")))


# Pearson correlation between two channels' intensities inside the brain (voxels non-zero in every channel,
# every 2nd voxel along each axis): mean and standard deviation over the 27 shared BraTS 2018 cases. T2 is
