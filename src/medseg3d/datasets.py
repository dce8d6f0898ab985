"""Dataset layouts, cases and splits.

A :class:`Case` is one subject: an ordered list of channel files (one per modality) and an optional label
file. :func:`find_cases` recognises these layouts (auto-detected, or named with ``layout=``):

* ``brats``: case folders whose files are named by modality, ``<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz``
  (BraTS 2017-2021), BraTS 2023+ ``<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz``, clinical names (``flair.nii.gz``,
  ``t1_post.nrrd``, ``post_gd.nii.gz``, see :func:`identify_name`), in NIfTI or NRRD; or one DICOM series
  sub-folder per modality (named so, or with a SeriesDescription that says it). The root may also be a
  single case folder, and cases may be nested in ``HGG/`` and ``LGG/``.
* ``brats-mha``: BRATS 2012-2015 MetaImage files, both the flat 2012 naming
  (``BRATS_HG0015_{FLAIR,T1,T1C,T2,truth}.mha``, or any modality name such as ``_t1ce.mha``) and the 2015
  nesting ``HGG|LGG/<patient>/VSD.Brain.XX.O.MR_Flair.<id>/VSD.Brain.XX.O.MR_Flair.<id>.mha`` with the label
  in ``VSD.Brain_3more.XX.O.OT.<id>/``.
* ``nnunet``: nnU-Net / Medical Segmentation Decathlon ``imagesTr/labelsTr/imagesTs`` + ``dataset.json``,
  channel files ``{case}_{XXXX}.nii.gz``; or an ``imagesTs``-like folder given alone (its ``dataset.json`` is
  looked for in the folder above; without one, four channels are taken in nnU-Net's BraTS order T1, T1ce, T2,
  FLAIR, and the case says so in ``meta["note"]``). Labels renumbered by nnU-Net's BraTS conversions (1 edema,
  2 NCR/NET, 3 enhancing) are read back as BraTS values (:func:`brats_label_map`).
* ``csv``: a CSV file with a ``case`` column, one column per channel and an optional ``label`` column
  (relative paths are relative to the CSV's folder).

Channels are always in an explicit order; the paper's order is FLAIR, T1, T1c, T2 (``BRATS_MODALITIES``).
Any subset can be chosen with ``modalities=``. A case folder whose files cannot be told apart (two files
for one modality, an image file whose name says nothing) is found but refused when loaded, and reported by
:func:`check_case`; never resolved by directory order. :func:`resolve_case_channels` turns what a user gives
for one case (a folder, a list of files, ``--flair``-style overrides) into a case and lines saying how each
channel was identified.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .dicom import looks_like_dicom_series, series_description
from .errors import InputError
from .io import IMAGE_SUFFIXES, Volume, image_suffix, read_volume

BRATS_MODALITIES = ("flair", "t1", "t1ce", "t2")
_MODALITY_ALIASES = {
    "t1c": "t1ce", "t1gd": "t1ce", "t1ce": "t1ce", "flair": "flair", "t1": "t1", "t2": "t2",
    # BraTS 2023+ names (T2-FLAIR, native T1, contrast T1, T2-weighted) and MSD's T1w / T2w
    "t2f": "flair", "t1n": "t1", "t2w": "t2", "t1w": "t1",
}
# Names that say a file's modality when they END a file or folder name (after the case id): one word, or
# two joined by "_" ("t1_post", "post_gd"). Words are split at "_", "-", ".", and spaces; "t1+c" is one word.
_NAME_MODALITY = {
    **_MODALITY_ALIASES,
    "fla": "flair", "t2flair": "flair", "t2_flair": "flair",
    "t1_native": "t1", "t1native": "t1", "t1_pre": "t1", "t1pre": "t1", "native": "t1",
    "t1_post": "t1ce", "t1post": "t1ce", "post": "t1ce", "post_gd": "t1ce", "t1+c": "t1ce", "t1+gd": "t1ce",
    "t1_contrast": "t1ce", "t1_gd": "t1ce", "t1_ce": "t1ce", "t1ce_gd": "t1ce",
}
# Names that identify a modality wherever they stand in a file name ("flair_brain.nii.gz"), when no other
# such name is there; shorter words ("post", "native") are trusted only at the end, after the case id.
_STRONG_NAMES = {k: v for k, v in _NAME_MODALITY.items() if "_" not in k and k not in ("post", "native", "fla")}
_LABEL_NAMES = {"seg", "label", "labels", "truth", "ot", "gt", "segmentation"}
# known companions of the channels that are not channels (a brain mask beside the images)
_IGNORED_NAMES = {"mask", "brainmask", "brain_mask"}
LAYOUTS = ("brats", "brats-mha", "nnunet", "csv")
# The file order of nnU-Net's own BraTS 2021 conversion (Dataset137_BraTS2021): _0000 T1, _0001 T1ce,
# _0002 T2, _0003 FLAIR; taken when an nnU-Net folder of four channels comes without its dataset.json.
NNUNET_BRATS_ORDER = ("t1", "t1ce", "t2", "flair")
FLAGS = "--flair --t1 --t1ce --t2"


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
        if missing:
            present = [m for m in self.channels if m not in self.missing()]
            raise InputError(
                f"case {self.case_id}: modality {', '.join(missing)} is missing (found {', '.join(present) or 'none'}); "
                "add the file or choose --modalities among those found"
            )
        meta = dict(self.meta)
        if "channel_index" in meta:
            meta["channel_index"] = {m: meta["channel_index"][m] for m in modalities if m in meta["channel_index"]}
        return Case(self.case_id, {m: self.channels[m] for m in modalities}, self.label, meta)

    def read_channels(self):
        """Yield ``(modality, path, Volume)`` per channel, each a 3D volume; a 4D file is read once."""
        index = self.meta.get("channel_index", {})
        opened: dict[Path, Volume] = {}
        for name, path in self.channels.items():
            path = Path(path)
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
                    raise InputError(f"case {self.case_id}: {path} has {vol.array.shape[3]} channels, no channel {k} ({name})")
                vol = Volume(vol.array[..., k], vol.affine, vol.meta)
            if vol.array.ndim != 3:
                raise InputError(
                    f"case {self.case_id}: channel {name} ({path}) is not a 3D image {vol.array.shape}; "
                    "give one 3D file per channel"
                )
            yield name, path, vol

    def load(self, with_label: bool = True) -> tuple[np.ndarray, Volume, np.ndarray | None]:
        """Read all channels (and the label). Returns ``(image (C, X, Y, Z) float32, reference Volume, label)``.

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
        """``"t1ce <- post_gd.nii.gz (file name)"``: how each channel's file was identified, in channel order."""
        sources = self.meta.get("sources", {})
        return [f"{m} <- {_shown_name(p)}" + (f" ({sources[m]})" if m in sources else "")
                for m, p in self.channels.items()]


def apply_label_map(label: np.ndarray, label_map: dict | None) -> np.ndarray:
    """``label`` with its values renumbered by ``label_map`` (file value -> value; others unchanged)."""
    if not label_map:
        return label
    out = label.copy()
    for src, dst in label_map.items():
        out[label == int(src)] = int(dst)
    return out


def _shown_name(path) -> str:
    path = Path(path)
    return path.name + ("/" if path.is_dir() else "")


def _channel_problem(case_id, name, path, vol, data, ref, ref_name) -> str | None:
    if vol is not ref and not ref.same_grid(vol):
        return (
            f"case {case_id}: channel {name} has grid {vol.shape} / spacing {_fmt(vol.spacing)} / origin "
            f"{_fmt(vol.origin)} that differs from {ref_name} {ref.shape} / {_fmt(ref.spacing)} / {_fmt(ref.origin)}; "
            "resample all channels onto one grid"
        )
    if not np.all(np.isfinite(data)):
        return f"case {case_id}: channel {name} ({path}) holds NaN or infinite values; fix the file"
    if data.size and data.min() == data.max():
        return f"case {case_id}: channel {name} ({path}) is constant ({data.min():g}); the file is empty or broken"
    return None


def _label_problem(case_id, path, lab, ref) -> str | None:
    if not ref.same_grid(lab):
        return (
            f"case {case_id}: label grid {lab.shape} / spacing {_fmt(lab.spacing)} / origin {_fmt(lab.origin)} differs "
            f"from the images' {ref.shape} / {_fmt(ref.spacing)} / {_fmt(ref.origin)}; the label must be on the image grid"
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


def normalise_modalities(modalities) -> tuple[str, ...]:
    """``"flair,t1c"`` or ``["FLAIR", "T1c"]`` -> ``("flair", "t1ce")``.

    Aliases: t1c/t1gd -> t1ce, t1n/t1w -> t1, t2w -> t2, t2f -> flair (BraTS 2023 and MSD names).
    """
    if isinstance(modalities, str):
        modalities = [m for m in modalities.split(",") if m.strip()]
    out = tuple(_MODALITY_ALIASES.get(m.strip().lower(), m.strip()) for m in modalities)
    if not out:
        raise InputError("no modalities given; e.g. --modalities flair,t1,t1ce,t2")
    if len(set(out)) != len(out):
        raise InputError(f"modalities {list(out)} repeat a channel; list each once")
    return out


# --------------------------------------------------------------------------------------------- layouts


def _strip_suffix(name: str) -> str:
    suffix = image_suffix(name)
    return name[: -len(suffix)] if suffix else name


def _visible_files(folder: Path):
    """Files of ``folder`` without hidden ones (macOS ``._x.nii.gz`` forks ship inside MSD archives)."""
    return (f for f in folder.iterdir() if not f.name.startswith(".") and f.is_file())


_CASE_FILE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr")  # MetaImage case files: the brats-mha layout
_WORD = re.compile(r"[^\s_\-.]+")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


@functools.lru_cache(maxsize=65536)  # find_cases is called often, on the same names
def identify_name(name: str, descriptive: bool = False) -> tuple[str | None, str]:
    """What a file or folder name says it holds, and the name without that part (the case id, usually).

    Returns ``(what, prefix)``; ``what`` is a modality (``"flair"``, ``"t1"``, ``"t1ce"``, ``"t2"``),
    ``"label"``, ``"ignore"`` (a brain mask) or ``None`` (not recognised). The modality is read from the end
    of the name (``Brats18_x_t1ce``, ``BraTS-GLI-00001-000-t1n``, ``t1_post``, ``post_gd``), else from a name
    that says it anywhere (``flair_brain``). ``descriptive`` also reads free text such as a DICOM
    SeriesDescription or a series folder name (``AX T1 POST GD``, ``Sag T2 FLAIR``).

    Example:
        >>> identify_name("BraTS-GLI-00001-000-t2f.nii.gz")
        ('flair', 'BraTS-GLI-00001-000')
    """
    stem = _strip_suffix(name)
    spans = list(_WORD.finditer(stem))
    words = [m.group().lower() for m in spans]
    if descriptive:  # all the words count: "T1 FLAIR" is neither FLAIR nor plain T1, so it stays unrecognised
        what = _modality_from_description(words)
        if what is not None:
            return what, stem
    for n in (2, 1):  # "t1_native" before "native"
        if len(words) < n:
            continue
        key = "_".join(words[-n:])
        what = _NAME_MODALITY.get(key) or (
            "label" if key in _LABEL_NAMES else "ignore" if key in _IGNORED_NAMES else None)
        if what in ("label", "ignore") or (what and not descriptive):
            return what, stem[: spans[-n].start()].rstrip("_-. ")
    strong = {_STRONG_NAMES[w] for w in words if w in _STRONG_NAMES}
    if len(strong) == 1 and not descriptive:
        return strong.pop(), stem
    return None, stem


def _modality_from_description(words: list[str]) -> str | None:
    """A modality from free text (``AX T1 POST GD``), or ``None`` when the words do not settle it."""
    w = set(words)
    flair = w & {"flair", "t2f", "fla", "t2flair"}
    t1 = w & {"t1", "t1w", "t1n", "t1c", "t1ce", "t1gd", "t1+c", "t1post", "t1pre", "mprage", "spgr", "bravo"}
    t2 = w & {"t2", "t2w", "t2flair"}
    contrast = bool(w & {"post", "gd", "gad", "gado", "gadolinium", "ce", "c", "+c", "c+", "contrast", "t1c",
                         "t1ce", "t1gd", "t1+c", "t1post", "postcontrast"})
    pre = bool(w & {"pre", "native", "t1n", "t1pre", "precontrast"})
    if flair:
        return None if t1 and not t2 else "flair"  # T1-FLAIR is a T1-weighted sequence: let the user say
    if t2 and not t1:
        return None if contrast else "t2"
    if t1 or contrast:
        if t2 or (contrast and pre):
            return None
        return "t1ce" if contrast else "t1"
    return None


def _listing(folder: Path) -> tuple[list[Path], list[Path]]:
    """(visible files, visible sub-folders) of ``folder``, sorted, from one directory scan (no stat per entry
    but for links: ``find_cases`` runs this on every case folder, often)."""
    files, dirs = [], []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    dirs.append(Path(entry.path))
                elif entry.is_file():
                    files.append(Path(entry.path))
    except OSError:
        return [], []
    return sorted(files), sorted(dirs)


def _file_entries(folder: Path, suffixes, files=None) -> list[tuple[Path, str | None, str, str]]:
    """``(file, what, how, prefix)`` for the image files of ``folder`` with one of ``suffixes``."""
    entries = []
    for f in _listing(folder)[0] if files is None else files:
        if image_suffix(f) in suffixes:
            what, prefix = identify_name(f.name)
            entries.append((f, what, "file name", prefix))
    return entries


def _dicom_entries(folder: Path, subfolders=None) -> list[tuple[Path, str | None, str, str]]:
    """``(series folder, what, how, prefix)`` for the DICOM series sub-folders of ``folder``."""
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


def _ambiguity(case_id: str, entries, needed=None) -> str | None:
    """One line saying why the files of a case cannot be told apart, or ``None`` when they can."""
    counts: dict = {}
    for _, what, _, _ in entries:
        counts[what] = counts.get(what, 0) + 1
    twice = [w for w, n in counts.items() if w not in (None, "ignore") and n > 1 and (needed is None or w in needed)]
    unknown = counts.get(None, 0)
    if not twice and not unknown:
        return None
    found = ", ".join(f"{_shown_name(p)} -> {what or 'not recognised'}"
                      for p, what, _, _ in sorted(entries, key=lambda e: e[0].name) if what != "ignore")
    why = "; ".join([f"{n} files for {w}" for w, n in counts.items() if w in twice]
                    + ([f"{unknown} file(s) not recognised"] if unknown else []))
    return (f"case {case_id}: cannot tell which file is which channel ({why}; found {found}); remove the extra "
            f"files or say which is which with {FLAGS}")


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
    ambiguous = _ambiguity(case_id, entries, BRATS_MODALITIES)
    if ambiguous:
        meta["ambiguous"] = ambiguous
    labels = [e for e in entries if e[1] == "label"]
    if len(labels) > 1:  # matters to training and evaluation, not to prediction
        meta["ambiguous_label"] = (
            f"case {case_id}: {len(labels)} label files ({', '.join(_shown_name(e[0]) for e in labels)}); "
            "keep one, or list the cases in a .csv with a 'label' column")
    ignored = [_shown_name(p) for p, what, _, _ in entries if what == "ignore"]
    if ignored:
        meta["ignored"] = ignored
    label = first["label"][0] if "label" in first else None
    return Case(case_id, channels, label, meta)


def _brats_case(folder: Path) -> Case | None:
    """The case in ``folder``: channel files named by modality (any image format but MetaImage, which is the
    brats-mha layout's), or one DICOM series sub-folder per modality; ``None`` if none is named."""
    files, dirs = _listing(folder)
    entries = _file_entries(folder, _CASE_FILE_SUFFIXES, files)
    if dirs and not any(what in BRATS_MODALITIES for _, what, _, _ in entries):
        entries += _dicom_entries(folder, dirs)  # channels as files, or as series folders: not both
    return _case_from_entries(folder.name, entries, "brats")


def _fill_missing(cases: list[Case], expected_path) -> list[Case]:
    """Give every case the modalities any case has (BraTS order), pointing missing ones at ``expected_path``."""
    present = {m for c in cases for m in c.channels}
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
        stem = _strip_suffix(f.name)
        m = _VSD.search(stem)
        if not m:
            what, prefix = identify_name(f.name)
            flat.setdefault(f.parent, []).append((f, what, "file name", prefix))
            continue
        # 2015: <grade>/<patient>/VSD...<kind>.<id>/VSD...<id>.mha ; the patient folder names the case
        patient_dir = f.parent.parent if _VSD.search(f.parent.name) else f.parent
        case_id = patient_dir.name
        kind = m.group(1).lower()
        key = "label" if kind == "ot" else _NAME_MODALITY.get(kind[3:].replace("_", ""), kind[3:])
        meta = {"grade": patient_dir.parent.name} if patient_dir != root else {}
        entry = groups.setdefault(case_id, {"channels": {}, "label": None, "meta": {"layout": "brats-mha", **meta}})
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
        found = [_case_from_entries(prefix, group, "brats-mha") for prefix, group in sorted(by_prefix.items())]
        return [c for c in found if c is not None]
    prefixes = [p for p in by_prefix if p]
    case_id = prefixes[0] if len(by_prefix) == 1 and prefixes else folder.name
    case = _case_from_entries(case_id, entries, "brats-mha")
    if case is None and any(e[1] == "label" for e in entries):  # a label alone: every channel is missing
        case = Case(case_id, {}, next(e[0] for e in entries if e[1] == "label"), {"layout": "brats-mha"})
    return [case] if case is not None else []


def _read_dataset_json(root: Path) -> dict:
    path = root / "dataset.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); fix the file") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    if not isinstance(info, dict):
        raise InputError(f"{path}: must hold a JSON object with 'channel_names' (or 'modality') and 'labels'")
    return info


_BRATS_LABEL_NAMES = {0: "background", 1: "NCR/NET", 2: "edema", 4: "enhancing"}


def _brats_value_of_class(name: str) -> int | None:
    """The BraTS value (1 NCR/NET, 2 edema, 4 enhancing) a class name of a BraTS conversion stands for."""
    words = set(_words(name.replace("/", " ")))
    text = " ".join(sorted(words))
    if words & {"edema", "oedema", "ed", "peritumoral"}:
        return 2
    if words & {"non", "nonenhancing", "necrotic", "necrosis", "ncr", "net"} or "non-enhancing" in name.lower():
        return 1
    if words & {"enhancing", "et"} or "enhancing" in text:
        return 4
    return None


def brats_label_map(labels) -> dict[int, int] | None:
    """File value -> BraTS value for an nnU-Net/MSD ``labels`` entry that renumbered the BraTS labels.

    nnU-Net's own BraTS conversions write 1 edema, 2 NCR/NET, 3 enhancing, declared either as classes
    (MSD Task01: ``"1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"``) or as regions
    (Dataset137: ``"whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]``). Returns
    ``None`` when the labels are not BraTS's or already hold the BraTS values.
    """
    if not isinstance(labels, dict):
        return None
    regions: dict[str, set[int]] = {}
    classes: dict[int, str] = {}
    try:
        for k, v in labels.items():
            if isinstance(v, (list, tuple)):
                regions[str(k).lower()] = {int(x) for x in v}
            elif str(k).strip().lstrip("-").isdigit():
                classes[int(k)] = str(v)
            else:
                classes[int(v)] = str(k)
    except (TypeError, ValueError):
        return None
    if regions:
        def region(*keys):
            return next((vals for name, vals in regions.items() if any(k in _words(name) for k in keys)), None)

        whole, core, enhancing = region("whole", "wt"), region("core", "tc"), region("enhancing", "et")
        if whole is None or core is None or enhancing is None or not enhancing <= core <= whole:
            return None
        mapping = {v: 4 for v in enhancing} | {v: 1 for v in core - enhancing} | {v: 2 for v in whole - core}
    else:
        mapping = {}
        for value, name in classes.items():
            if value == 0:
                continue
            brats = _brats_value_of_class(name)
            if brats is None:
                return None
            mapping[value] = brats
        if not mapping or len(set(mapping.values())) != len(mapping):
            return None
    if all(k == v for k, v in mapping.items()):
        return None
    return dict(sorted(mapping.items()))


def dataset_labels(root: str | Path) -> dict | None:
    """The ``labels`` entry of an nnU-Net/MSD ``dataset.json`` at ``root``, or ``None``.

    For a conversion that renumbered the BraTS labels (see :func:`brats_label_map`), the labels as
    :meth:`Case.load` returns them: BraTS values (``{"background": 0, "NCR/NET": 1, "edema": 2,
    "enhancing": 4}``).
    """
    root = Path(root)
    if root.is_dir() and (root / "dataset.json").is_file():
        labels = _read_dataset_json(root).get("labels")
        mapping = brats_label_map(labels)
        if mapping:
            return {_BRATS_LABEL_NAMES[v]: v for v in sorted({0, *mapping.values()})}
        return labels
    return None


_NNUNET_FILE = re.compile(r"^(?P<case>.+)_(?P<ch>\d{4})$")


def _is_nnunet_images_folder(folder: Path) -> bool:
    """``folder`` holds image files and every one is named ``<case>_XXXX`` (an nnU-Net imagesTr/imagesTs)."""
    seen = False
    for f in _visible_files(folder):
        if image_suffix(f):
            if not _NNUNET_FILE.match(_strip_suffix(f.name)):
                return False
            seen = True
    return seen


def _nnunet_channel_name(name: str, k: int) -> str:
    what, _ = identify_name(str(name).strip(), descriptive=True)
    if what in BRATS_MODALITIES:
        return what
    name = str(name).strip().lower()
    return _MODALITY_ALIASES.get(name, name) if name else f"ch{k}"


def _find_nnunet(root: Path, split: str = "Tr") -> list[Case]:
    if (root / "dataset.json").is_file():
        info_root, img_dir, lab_dir = root, root / f"images{split}", root / f"labels{split}"
    else:  # an images folder given on its own: its dataset.json, if any, is in the dataset folder above
        info_root = root.parent if (root.parent / "dataset.json").is_file() else None
        img_dir = root
        lab_dir = root.parent / ("labels" + root.name[len("images"):]) if root.name.startswith("images") else None
    info = _read_dataset_json(info_root) if info_root is not None else {}
    names = info.get("channel_names") or info.get("modality") or {}
    if not isinstance(names, dict):
        raise InputError(f"{info_root / 'dataset.json'}: 'channel_names' must map channel numbers to names")
    channel_names: list[str] = []
    for k in range(len(names)):
        name = _nnunet_channel_name(names.get(str(k), f"ch{k}"), k)
        channel_names.append(name if name not in channel_names else f"{name}_{k}")
    how = {name: f"dataset.json channel {k} '{names.get(str(k))}'" for k, name in enumerate(channel_names)}
    found: dict[str, dict[int, Path]] = {}
    for f in sorted(_visible_files(img_dir)) if img_dir.is_dir() else []:
        if image_suffix(f) == "":
            continue
        m = _NNUNET_FILE.match(_strip_suffix(f.name))
        if m:
            found.setdefault(m.group("case"), {})[int(m.group("ch"))] = f
        else:  # MSD: one 4D file per case
            found.setdefault(_strip_suffix(f.name), {})[-1] = f
    note = None
    if info_root is None and found and all(set(chans) == {0, 1, 2, 3} for chans in found.values()):
        channel_names = list(NNUNET_BRATS_ORDER)
        how = {name: f"_{k:04d}: nnU-Net's BraTS order, no dataset.json" for k, name in enumerate(channel_names)}
        note = (f"{root}: no dataset.json here or in the folder above; channels taken in nnU-Net's BraTS order "
                f"(_0000 t1, _0001 t1ce, _0002 t2, _0003 flair); if not, give a dataset.json or the files with {FLAGS}")
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
        raise InputError(f"{path}: the CSV is empty; add a header 'case,<channel>...,label' and one row per case")
    columns = [c.strip() for c in header]
    lower = [c.lower() for c in columns]
    if "case" not in lower:
        raise InputError(f"{path}: the CSV needs a 'case' column (found {columns})")
    if not rows:
        raise InputError(f"{path}: the CSV lists no cases; add rows with a 'case' column and one column per channel")
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
            raise InputError(f"{path}: line {n} (case {case_id}) has no file for {', '.join(empty)}; fill every channel cell")
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
    if (root / "dataset.json").is_file() or _is_nnunet_images_folder(root):
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
    cases = [c.select(modalities) for c in cases]
    if require_label:
        unlabelled = [c.case_id for c in cases if c.label is None]
        if unlabelled:
            raise InputError(
                f"{root}: {len(unlabelled)} case(s) have no label file (e.g. {unlabelled[0]}); training needs labels"
            )
    return cases


def _where(case: Case) -> str:
    return str(Path(next(iter(case.channels.values()), case.label or ".")).parent)


def layout_notes(cases: list[Case]) -> list[str]:
    """The assumptions the layout made for these cases (e.g. nnU-Net's BraTS channel order taken for an
    images folder without dataset.json), each once: to be printed before the cases are used."""
    return list(dict.fromkeys(c.meta["note"] for c in cases if c.meta.get("note")))


# Pearson correlation between two channels' intensities inside the brain (voxels non-zero in every channel,
# every 2nd voxel along each axis): mean and standard deviation over the 27 shared BraTS 2018 cases. T2 is
# the one channel anti-correlated with T1 and T1ce (CSF is bright only in T2); T1 and T1ce go together.
_PAIR_CORRELATION = {
    ("flair", "t1"): (0.302, 0.233), ("flair", "t1ce"): (0.200, 0.194), ("flair", "t2"): (0.166, 0.241),
    ("t1", "t1ce"): (0.580, 0.143), ("t1", "t2"): (-0.362, 0.326), ("t1ce", "t2"): (-0.283, 0.261),
}
# How much better another order must fit than the given one to be reported. On the shared cases (each scored
# against the other 26) and the shared case from another pipeline (brainles_sri24), the correct order's excess
# was at most 0.56; nnU-Net's order (T1, T1ce, T2, FLAIR) read as FLAIR, T1, T1ce, T2 scored at least 10.8.
# A T1 / T1ce swap is not seen by this check (their correlations with the others are alike).
CHANNEL_ORDER_THRESHOLD = 3.0


def _order_misfit(corr: np.ndarray, assigned) -> float:
    total = 0.0
    for i in range(len(assigned)):
        for j in range(i + 1, len(assigned)):
            pair = tuple(sorted((assigned[i], assigned[j]), key=BRATS_MODALITIES.index))
            mean, sd = _PAIR_CORRELATION[pair]
            total += ((corr[i, j] - mean) / (sd + 0.05)) ** 2
    return total


def channel_order_warning(image: np.ndarray, modalities) -> str | None:
    """One line when the channels' intensities fit another order of the BraTS modalities clearly better.

    ``image`` is ``(C, X, Y, Z)`` with channels in ``modalities`` order, skull-stripped, on one grid (as
    :meth:`Case.load` returns it). The check compares the correlations between channels inside the brain
    with those of the shared BraTS cases; it needs three or more BraTS modalities and a brain-sized volume,
    and cannot tell T1 from T1ce. Returns ``None`` when the given order fits (or nothing can be said).

    Example:
        >>> image, _, _ = case.load(with_label=False)
        >>> channel_order_warning(image[[1, 2, 3, 0]], case.modalities)  # nnU-Net's order read as BraTS's
        "the channels given as flair, t1, t1ce, t2 look like t1, t1ce, t2, flair by their intensities ..."
    """
    if image.ndim != 4:
        return None
    return _order_warning([image[i, ::2, ::2, ::2] for i in range(image.shape[0])], tuple(modalities))


# fewer voxels (every 2nd along each axis) inside the brain than this, e.g. a small crop: no order check
_ORDER_CHECK_MIN_VOXELS = 10_000


def _order_warning(subsampled: list[np.ndarray], modalities: tuple[str, ...]) -> str | None:
    import itertools

    idx = [i for i, m in enumerate(modalities) if m in BRATS_MODALITIES]
    if len(idx) < 3:
        return None
    sub = [np.asarray(subsampled[i], dtype=np.float32) for i in idx]
    brain = np.logical_and.reduce([s != 0 for s in sub])
    if brain.sum() < _ORDER_CHECK_MIN_VOXELS:
        return None
    values = np.stack([s[brain] for s in sub]).astype(np.float64)
    if not np.all(np.isfinite(values)) or np.any(values.std(axis=1) == 0):
        return None
    corr = np.corrcoef(values)
    given = [modalities[i] for i in idx]
    misfit = _order_misfit(corr, given)
    best = min(itertools.permutations(given), key=lambda order: _order_misfit(corr, order))
    best_misfit = _order_misfit(corr, best)
    if misfit - best_misfit <= CHANNEL_ORDER_THRESHOLD:
        return None
    return (f"the channels given as {', '.join(given)} look like {', '.join(best)} by their intensities "
            f"(misfit {misfit:.1f}, against {best_misfit:.1f} in that order); check which file is which, or "
            f"name them with {FLAGS}")


# ------------------------------------------------------------------------------- one case, for prediction


def resolve_case_channels(
    inputs: list[Path],
    modalities: tuple[str, ...],
    overrides: dict[str, Path] | None = None,
) -> tuple[Case, list[str]]:
    """The case a user means by one case folder or a list of channel files, channels in ``modalities`` order.

    Each file's modality comes from its name (:func:`identify_name`), a DICOM series' folder name or
    SeriesDescription, an nnU-Net ``_XXXX`` number read through ``dataset.json`` (nnU-Net's BraTS order when
    there is none, said in a line), or ``overrides`` (``{"t1ce": path}``, the ``--t1ce`` flags). A list of
    files with no recognisable names keeps the order given (the model's); a list whose names are recognised
    but given in another order is reordered, with a line saying so. DICOM series folders count as files.

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
    found = ", ".join(f"{_shown_name(p)} -> {what or 'not recognised'}" for p, what, _, _ in entries) or "no image file"
    return InputError(f"case {case_id}: {problem} (found {found}); say which file is which with {FLAGS}"
                      + ("" if set(modalities) == set(BRATS_MODALITIES) else f" (the model needs {', '.join(modalities)})"))


def _resolve_folder(folder: Path, modalities, overrides) -> tuple[Case, list[str]]:
    entries = _file_entries(folder, IMAGE_SUFFIXES) + _dicom_entries(folder)
    named = any(what in BRATS_MODALITIES for _, what, _, _ in entries)
    if set(overrides) >= set(modalities):
        case = Case(folder.name, {m: overrides[m] for m in modalities}, None,
                    {"layout": "files", "sources": {m: f"--{m}" for m in modalities}})
        return case, []
    if not named and entries and not _is_nnunet_images_folder(folder):
        raise _refuse(folder.name, entries, modalities, "no file name says its modality")
    if not named:  # nnU-Net images folder, BRATS 2015 patient folder...: as find_cases reads it
        cases = find_cases(folder)
        if len(cases) != 1:
            raise InputError(f"{folder}: holds {len(cases)} cases; give one case folder, or -o a folder for all")
        case = cases[0]
        if case.meta.get("ambiguous"):
            raise InputError(case.meta["ambiguous"])
        channels = {m: overrides.get(m, case.channels.get(m)) for m in modalities}
        missing = [m for m, p in channels.items() if p is None or not Path(p).exists()]
        if missing:
            listed = [(p, m, "", "") for m, p in case.channels.items() if Path(p).exists()]
            raise _refuse(case.case_id, listed, modalities, f"no file for {', '.join(missing)}")
        sources = {m: f"--{m}" if m in overrides else case.meta.get("sources", {}).get(m, "") for m in modalities}
        meta = {k: v for k, v in case.meta.items() if k not in ("sources", "channel_index")}
        if "channel_index" in case.meta:
            meta["channel_index"] = {m: case.meta["channel_index"][m] for m in modalities
                                     if m in case.meta["channel_index"] and m not in overrides}
        out = Case(case.case_id, channels, case.label, meta | {"sources": {k: v for k, v in sources.items() if v}})
        return out, [case.meta["note"]] if case.meta.get("note") else []
    # the user's flags settle their modalities: the folder's files named so, or given so, step aside
    given = {p.resolve() for p in overrides.values()}
    kept = [e for e in entries if e[1] not in overrides and e[0].resolve() not in given]
    prefixes = {prefix for _, what, _, prefix in kept if what in BRATS_MODALITIES and prefix}
    case_id = folder.name
    needed = [m for m in modalities if m not in overrides]
    ambiguous = _ambiguity(case_id, kept, needed)
    if ambiguous:
        raise InputError(ambiguous)
    found = {what: (path, how) for path, what, how, _ in kept}
    missing = [m for m in needed if m not in found]
    if missing:
        raise _refuse(case_id, kept + _override_entries(overrides), modalities, f"no file for {', '.join(missing)}")
    channels = {m: overrides[m] if m in overrides else found[m][0] for m in modalities}
    sources = {m: f"--{m}" if m in overrides else found[m][1] for m in modalities}
    label = found["label"][0] if "label" in found else None
    case = Case(case_id, channels, label, {"layout": "folder", "sources": sources})
    if case_id.lower() in _GENERIC_FOLDER_NAMES:  # ".../TCGA-FG-6692/raw/flair.nii.gz": the case is above
        case.case_id = prefixes.pop() if len(prefixes) == 1 else folder.resolve().parent.name
    return case, []


_GENERIC_FOLDER_NAMES = {"raw", "images", "input", "inputs", "nifti", "nii", "dicom", "scans", "anat", "mri"}


def _nnunet_file_modalities(files: list[Path]) -> tuple[dict[int, str], str] | None:
    """For files named ``<case>_XXXX`` of one case: channel number -> modality and how it was known."""
    matches = [_NNUNET_FILE.match(_strip_suffix(f.name)) if f.is_file() else None for f in files]
    if not all(matches) or len({m.group("case") for m in matches}) != 1:
        return None
    numbers = [int(m.group("ch")) for m in matches]
    if len(set(numbers)) != len(numbers):
        return None
    folder = files[0].parent
    for info_root in (folder, folder.parent):
        if (info_root / "dataset.json").is_file():
            names = _read_dataset_json(info_root).get("channel_names") or _read_dataset_json(info_root).get("modality")
            if isinstance(names, dict) and all(str(k) in names for k in numbers):
                return ({k: _nnunet_channel_name(names[str(k)], k) for k in numbers},
                        f"nnU-Net channel number, {info_root / 'dataset.json'}")
    if set(numbers) == {0, 1, 2, 3}:
        return dict(enumerate(NNUNET_BRATS_ORDER)), "nnU-Net channel number, nnU-Net's BraTS order"
    return None


def _resolve_files(files: list[Path], modalities, overrides) -> tuple[Case, list[str]]:
    remaining = [m for m in modalities if m not in overrides]
    first = files[0] if files else next(iter(overrides.values()))
    case_id = _strip_suffix(first.name)
    lines: list[str] = []
    entries = []
    nnunet = _nnunet_file_modalities(files) if files else None
    if nnunet is not None:
        by_number, how = nnunet
        case_id = _NNUNET_FILE.match(_strip_suffix(files[0].name)).group("case")
        for f in files:
            k = int(_NNUNET_FILE.match(_strip_suffix(f.name)).group("ch"))
            entries.append((f, by_number[k], f"_{k:04d}: {how}", case_id))
        if "BraTS order" in how:
            lines.append(f"no dataset.json beside {files[0].parent}: channels taken in nnU-Net's BraTS order "
                         "(_0000 t1, _0001 t1ce, _0002 t2, _0003 flair)")
    else:
        for f in files:
            if f.is_dir():
                what, prefix = identify_name(f.name, descriptive=True)
                how = "folder name"
                if what is None:
                    description = series_description(f)
                    if description:
                        what, how = identify_name(description, descriptive=True)[0], f"series description '{description}'"
            else:
                what, prefix = identify_name(f.name)
                how = "file name"
            entries.append((f, what, how, prefix))
    if len(files) != len(remaining):
        raise _refuse(case_id, entries + _override_entries(overrides), modalities,
                      f"the model needs {len(modalities)} channel files ({', '.join(modalities)}), got "
                      f"{len(files) + len(overrides)}")
    whats = [what for _, what, _, _ in entries]
    if all(w is None for w in whats):  # no name says anything: the order given is the model's (as always)
        channels = dict(zip(remaining, files))
        sources = {m: f"position {k + 1}, no modality in the name" for k, m in enumerate(remaining)}
    elif sorted(map(str, whats)) == sorted(remaining):
        channels = {w: f for f, w, _, _ in entries}
        sources = {w: how for _, w, how, _ in entries}
        if whats != remaining:
            lines.append(f"channels given in the order {', '.join(whats)}; reordered to the model's "
                         f"{', '.join(modalities)} by their names")
        prefixes = {prefix for _, _, _, prefix in entries}
        if nnunet is None and len(prefixes) == 1 and next(iter(prefixes)):
            case_id = prefixes.pop()
    elif all(w is None or w == m for w, m in zip(whats, remaining)):  # some named, each where it belongs
        channels = dict(zip(remaining, files))
        sources = {m: how if w == m else f"position {k + 1}, no modality in the name"
                   for k, (m, (_, w, how, _)) in enumerate(zip(remaining, entries))}
    else:
        raise _refuse(case_id, entries + _override_entries(overrides), modalities,
                      "the file names do not give each channel exactly once")
    channels |= {m: overrides[m] for m in overrides}
    sources |= {m: f"--{m}" for m in overrides}
    case = Case(case_id, {m: Path(channels[m]) for m in modalities}, None,
                {"layout": "files", "sources": {m: sources[m] for m in modalities}})
    return case, lines


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
            problems.append(str(exc) if str(exc).startswith(f"case {case.case_id}") else f"case {case.case_id}: {exc}")
            continue
        if ref is None:
            ref, ref_name = vol, name
        problem = _channel_problem(case.case_id, name, path, vol, vol.array.astype(np.float32, copy=False), ref, ref_name)
        if problem:
            problems.append(problem)
        else:
            subsampled[name] = vol.array[::2, ::2, ::2]
    if len(subsampled) == len(case.channels) and not case.meta.get("ambiguous"):
        warning = _order_warning(list(subsampled.values()), tuple(subsampled))
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


# ---------------------------------------------------------------------------------------------- splits


def make_split(
    case_ids: list[str],
    *,
    folds: int | None = None,
    fractions: tuple[float, float, float] | None = None,
    counts: tuple[int, int, int] | None = None,
    seed: int = 0,
) -> dict:
    """A seeded split: k folds (``folds=5``) or train/validation/test by fractions or counts.

    Returns a JSON-ready dict: ``{"seed", "kind": "kfold", "folds": [{"train": [...], "val": [...]}, ...]}``
    or ``{"seed", "kind": "holdout", "train", "val", "test"}``. The same ids and seed always give the same
    split, whatever order the ids come in.
    """
    ids = sorted(case_ids)
    if len(set(ids)) != len(ids):
        raise InputError("case ids repeat; every case needs a unique id")
    rng = np.random.default_rng(seed)
    order = [ids[i] for i in rng.permutation(len(ids))]
    if folds is not None:
        if not 2 <= folds <= len(ids):
            raise InputError(f"--folds must be between 2 and the number of cases ({len(ids)}), got {folds}")
        parts = [order[k::folds] for k in range(folds)]
        return {
            "seed": seed,
            "kind": "kfold",
            "folds": [
                {"train": sorted(c for j, p in enumerate(parts) if j != k for c in p), "val": sorted(parts[k])}
                for k in range(folds)
            ],
        }
    n = len(ids)
    if counts is None:
        fractions = fractions or (0.8, 0.1, 0.1)
        if any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise InputError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
        n_val = min(round(fractions[1] * n), n)
        n_test = min(round(fractions[2] * n), n - n_val)
        counts = (n - n_val - n_test, n_val, n_test)
    if len(counts) != 3 or sum(counts) != n or min(counts) < 0:
        raise InputError(f"split counts {counts} must be >= 0 and sum to the number of cases ({n})")
    a, b = counts[0], counts[0] + counts[1]
    return {"seed": seed, "kind": "holdout", "train": sorted(order[:a]), "val": sorted(order[a:b]), "test": sorted(order[b:])}


def fold_ids(split: dict, fold: int | None) -> tuple[list[str], list[str]]:
    """(train ids, validation ids) of ``fold`` in a k-fold split, or of a hold-out split."""
    if split["kind"] == "kfold":
        if fold is None or not 0 <= fold < len(split["folds"]):
            raise InputError(f"--fold must be between 0 and {len(split['folds']) - 1} for this {len(split['folds'])}-fold split")
        f = split["folds"][fold]
        return list(f["train"]), list(f["val"])
    return list(split["train"]), list(split["val"])


def save_split(split: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(split, indent=1), encoding="utf-8")
    tmp.replace(path)
    return path


def load_split(path: str | Path) -> dict:
    path = Path(path)
    try:
        split = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: split file not found; create it with `medseg3d split`") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: split file is not valid JSON ({exc.msg})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the split file ({exc}); give a JSON file made by `medseg3d split`") from exc
    if not isinstance(split, dict) or split.get("kind") not in ("kfold", "holdout"):
        raise InputError(f"{path}: not a medseg3d split file (no 'kind'); create it with `medseg3d split`")
    needed = ("folds",) if split["kind"] == "kfold" else ("train", "val")
    if any(k not in split for k in needed):
        raise InputError(f"{path}: the split file lacks {', '.join(k for k in needed if k not in split)}; recreate it")
    return split
