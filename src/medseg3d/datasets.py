"""Dataset layouts, cases and splits.

A :class:`Case` is one subject: an ordered list of channel files (one per modality) and an optional label
file. :func:`find_cases` recognises these layouts (auto-detected, or named with ``layout=``):

* ``brats``: BraTS 2017+ folders ``<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz``; the root may also be a
  single case folder.
* ``brats-mha``: BRATS 2012-2015 MetaImage files, both the flat 2012 naming
  (``BRATS_HG0015_{FLAIR,T1,T1C,T2,truth}.mha``) and the 2015 nesting
  ``HGG|LGG/<patient>/VSD.Brain.XX.O.MR_Flair.<id>/VSD.Brain.XX.O.MR_Flair.<id>.mha`` with the label in
  ``VSD.Brain_3more.XX.O.OT.<id>/``.
* ``nnunet``: nnU-Net / Medical Segmentation Decathlon ``imagesTr/labelsTr/imagesTs`` + ``dataset.json``,
  channel files ``{case}_{XXXX}.nii.gz``.
* ``csv``: a CSV file with a ``case`` column, one column per channel and an optional ``label`` column
  (relative paths are relative to the CSV's folder).

Channels are always in an explicit order; the paper's order is FLAIR, T1, T1c, T2 (``BRATS_MODALITIES``).
Any subset can be chosen with ``modalities=``.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .io import IMAGE_SUFFIXES, Volume, image_suffix, read_volume

BRATS_MODALITIES = ("flair", "t1", "t1ce", "t2")
_MODALITY_ALIASES = {"t1c": "t1ce", "t1gd": "t1ce", "t1ce": "t1ce", "flair": "flair", "t1": "t1", "t2": "t2"}
_MHA_MODALITY = {"flair": "flair", "t1": "t1", "t1c": "t1ce", "t2": "t2"}
LAYOUTS = ("brats", "brats-mha", "nnunet", "csv")


@dataclass
class Case:
    """One subject: channel files in order, an optional label file.

    Args:
        case_id: identifier used for output names (``<case_id>.nii.gz``).
        channels: modality name -> file (or DICOM folder), in channel order.
        label: label file, or ``None`` for unlabelled cases.
        meta: layout details (e.g. ``"grade": "HGG"``).
    """

    case_id: str
    channels: dict[str, Path]
    label: Path | None = None
    meta: dict = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.channels)

    def select(self, modalities: tuple[str, ...] | list[str] | None) -> "Case":
        """This case with only ``modalities``, in that order."""
        if modalities is None:
            return self
        modalities = normalise_modalities(modalities)
        missing = [m for m in modalities if m not in self.channels]
        if missing:
            raise InputError(
                f"case {self.case_id}: modality {', '.join(missing)} is missing (found {', '.join(self.channels)}); "
                "add the file or choose --modalities among those found"
            )
        return Case(self.case_id, {m: self.channels[m] for m in modalities}, self.label, dict(self.meta))

    def load(self, with_label: bool = True) -> tuple[np.ndarray, Volume, np.ndarray | None]:
        """Read all channels (and the label). Returns ``(image (C, X, Y, Z) float32, reference Volume, label)``.

        Checks that every channel and the label share one grid, and that images are finite and not constant.
        """
        ref = None
        arrays = []
        for name, path in self.channels.items():
            vol = read_volume(path)
            if vol.array.ndim != 3:
                raise InputError(f"case {self.case_id}: channel {name} ({path}) is not a 3D image {vol.array.shape}")
            if ref is None:
                ref = vol
            elif not ref.same_grid(vol):
                raise InputError(
                    f"case {self.case_id}: channel {name} has grid {vol.shape} / spacing {vol.spacing} that differs "
                    f"from {list(self.channels)[0]} {ref.shape} / {ref.spacing}; resample all channels onto one grid"
                )
            data = vol.array.astype(np.float32, copy=False)
            if not np.all(np.isfinite(data)):
                raise InputError(f"case {self.case_id}: channel {name} ({path}) holds NaN or infinite values; fix the file")
            if data.size and data.min() == data.max():
                raise InputError(f"case {self.case_id}: channel {name} ({path}) is constant ({data.min()}); the file is empty or broken")
            arrays.append(data)
        if ref is None:
            raise InputError(f"case {self.case_id}: no channel files")
        label = None
        if with_label and self.label is not None:
            lab = read_volume(self.label)
            if not ref.same_grid(lab):
                raise InputError(
                    f"case {self.case_id}: label grid {lab.shape} / spacing {lab.spacing} differs from the images' "
                    f"{ref.shape} / {ref.spacing}; the label must be on the image grid"
                )
            label = lab.array
        return np.stack(arrays), ref, label


def normalise_modalities(modalities) -> tuple[str, ...]:
    """``"flair,t1c"`` or ``["FLAIR", "T1c"]`` -> ``("flair", "t1ce")`` (aliases t1c/t1gd -> t1ce)."""
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


def _brats_case(folder: Path) -> Case | None:
    files = {}
    for f in folder.iterdir():
        if not f.is_file() or image_suffix(f) not in (".nii.gz", ".nii"):
            continue
        stem = _strip_suffix(f.name)
        if "_" not in stem:
            continue
        key = stem.rsplit("_", 1)[1].lower()
        files[key] = f
    if not any(m in files for m in BRATS_MODALITIES):
        return None
    channels = {}
    for key in ("flair", "t1", "t1ce", "t1c", "t1gd", "t2"):
        if key in files:
            channels.setdefault(_MODALITY_ALIASES[key], files[key])
    label = files.get("seg")
    ordered = {m: channels[m] for m in BRATS_MODALITIES if m in channels}
    return Case(folder.name, ordered, label, {"layout": "brats"})


def _find_brats(root: Path) -> list[Case]:
    single = _brats_case(root)
    if single is not None:
        return [single]
    cases = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        case = _brats_case(sub)
        if case is not None:
            cases.append(case)
        else:  # BraTS 2017/2018 training archives nest HGG/ and LGG/
            for subsub in sorted(p for p in sub.iterdir() if p.is_dir()):
                case = _brats_case(subsub)
                if case is not None:
                    case.meta["grade"] = sub.name
                    cases.append(case)
    return cases


_VSD = re.compile(r"VSD\.Brain(?:_3more)?\.XX\.O\.(MR_[A-Za-z0-9]+|OT)\.(\d+)", re.IGNORECASE)
_FLAT_MHA = re.compile(r"^(?P<case>.+)_(?P<mod>flair|t1c|t1|t2|truth|ot|seg)$", re.IGNORECASE)


def _find_brats_mha(root: Path) -> list[Case]:
    groups: dict[str, dict] = {}
    for f in sorted(root.rglob("*")):
        if not f.is_file() or image_suffix(f) not in (".mha", ".mhd"):
            continue
        stem = _strip_suffix(f.name)
        m = _VSD.search(stem)
        if m:
            # 2015: <grade>/<patient>/VSD...<kind>.<id>/VSD...<id>.mha ; the patient folder names the case
            patient_dir = f.parent.parent if _VSD.search(f.parent.name) else f.parent
            case_id = patient_dir.name
            kind = m.group(1).lower()
            key = "label" if kind == "ot" else _MHA_MODALITY.get(kind[3:].replace("_", ""), kind[3:])
            meta = {"grade": patient_dir.parent.name} if patient_dir.parent != root.parent else {}
        else:
            m = _FLAT_MHA.match(stem)
            if not m:
                continue
            case_id = m.group("case")
            mod = m.group("mod").lower()
            key = "label" if mod in ("truth", "ot", "seg") else _MHA_MODALITY[mod]
            meta = {}
        entry = groups.setdefault(case_id, {"channels": {}, "label": None, "meta": {"layout": "brats-mha", **meta}})
        if key == "label":
            entry["label"] = f
        else:
            entry["channels"][key] = f
    cases = []
    for case_id, g in sorted(groups.items()):
        ordered = {m: g["channels"][m] for m in BRATS_MODALITIES if m in g["channels"]}
        ordered.update({m: p for m, p in g["channels"].items() if m not in ordered})
        cases.append(Case(case_id, ordered, g["label"], g["meta"]))
    return cases


def _find_nnunet(root: Path, split: str = "Tr") -> list[Case]:
    info = json.loads((root / "dataset.json").read_text())
    names = info.get("channel_names") or info.get("modality") or {}
    n_channels = len(names) if names else None
    img_dir = root / f"images{split}"
    lab_dir = root / f"labels{split}"
    pattern = re.compile(r"^(?P<case>.+)_(?P<ch>\d{4})$")
    found: dict[str, dict[int, Path]] = {}
    for f in sorted(img_dir.glob("*")) if img_dir.is_dir() else []:
        if image_suffix(f) == "":
            continue
        m = pattern.match(_strip_suffix(f.name))
        if m:
            found.setdefault(m.group("case"), {})[int(m.group("ch"))] = f
        else:  # MSD: one 4D file per case
            found.setdefault(_strip_suffix(f.name), {})[-1] = f
    cases = []
    for case_id, chans in sorted(found.items()):
        if -1 in chans:
            channels = {"all": chans[-1]}
        else:
            count = n_channels or (max(chans) + 1)
            channels = {}
            for k in range(count):
                name = str(names.get(str(k), f"ch{k}")).lower() if names else f"ch{k}"
                name = _MODALITY_ALIASES.get(name, name)
                if k in chans:
                    channels[name] = chans[k]
                else:
                    channels[name] = img_dir / f"{case_id}_{k:04d}.nii.gz"  # reported missing by check_case
        label = None
        for suffix in IMAGE_SUFFIXES:
            candidate = lab_dir / f"{case_id}{suffix}"
            if candidate.is_file():
                label = candidate
                break
        cases.append(Case(case_id, channels, label, {"layout": "nnunet"}))
    return cases


def _find_csv(path: Path) -> list[Case]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise InputError(f"{path}: the CSV lists no cases; add rows with a 'case' column and one column per channel")
    columns = list(rows[0])
    if "case" not in columns:
        raise InputError(f"{path}: the CSV needs a 'case' column (found {columns})")
    channel_cols = [c for c in columns if c not in ("case", "label")]
    if not channel_cols:
        raise InputError(f"{path}: the CSV has no channel columns; add one column per modality")
    cases = []
    for row in rows:
        def resolve(p: str) -> Path:
            p = Path(p.strip())
            return p if p.is_absolute() else path.parent / p

        channels = {_MODALITY_ALIASES.get(c.lower(), c): resolve(row[c]) for c in channel_cols}
        label = resolve(row["label"]) if row.get("label") else None
        cases.append(Case(row["case"], channels, label, {"layout": "csv"}))
    return cases


def detect_layout(root: Path) -> str:
    """Guess the layout of ``root`` (see the module docstring)."""
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "csv"
        raise InputError(f"{root}: is a file; give a dataset folder, a case folder or a .csv case list")
    if (root / "dataset.json").is_file():
        return "nnunet"
    if _brats_case(root) is not None:
        return "brats"
    for sub in root.iterdir():
        if sub.is_dir() and _brats_case(sub) is not None:
            return "brats"
    if any(image_suffix(f) in (".mha", ".mhd") for f in root.rglob("*")):
        return "brats-mha"
    for sub in root.iterdir():
        if sub.is_dir() and any(_brats_case(s) is not None for s in sub.iterdir() if s.is_dir()):
            return "brats"
    raise InputError(
        f"{root}: no cases found; expected BraTS folders (<case>/<case>_flair.nii.gz...), BRATS .mha files, "
        "an nnU-Net folder with dataset.json, or a .csv case list"
    )


def find_cases(
    root: str | Path,
    layout: str | None = None,
    modalities=None,
    require_label: bool = False,
    split: str = "Tr",
) -> list[Case]:
    """All cases of the dataset at ``root`` (folder or CSV), channels in order, optionally a modality subset.

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
    layout = layout or detect_layout(root)
    if layout == "brats":
        cases = _find_brats(root)
    elif layout == "brats-mha":
        cases = _find_brats_mha(root)
    elif layout == "nnunet":
        cases = _find_nnunet(root, split)
    elif layout == "csv":
        cases = _find_csv(root)
    else:
        raise InputError(f"unknown dataset layout '{layout}'; choose one of {', '.join(LAYOUTS)}")
    if not cases:
        raise InputError(f"{root}: no cases found in the '{layout}' layout; check the folder")
    cases = [c.select(modalities) for c in cases]
    if require_label:
        unlabelled = [c.case_id for c in cases if c.label is None]
        if unlabelled:
            raise InputError(
                f"{root}: {len(unlabelled)} case(s) have no label file (e.g. {unlabelled[0]}); training needs labels"
            )
    return cases


def check_case(case: Case) -> list[str]:
    """Problems of one case as readable lines (missing files, unreadable files, grids that differ)."""
    problems = []
    for name, path in list(case.channels.items()) + ([("label", case.label)] if case.label else []):
        if not Path(path).exists():
            problems.append(f"{case.case_id}: {name} file missing ({path})")
    if problems:
        return problems
    try:
        case.load(with_label=True)
    except InputError as exc:
        problems.append(str(exc))
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
        n_val = int(round(fractions[1] * n))
        n_test = int(round(fractions[2] * n))
        counts = (n - n_val - n_test, n_val, n_test)
    if sum(counts) != n or min(counts) < 0:
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
    tmp.write_text(json.dumps(split, indent=1))
    tmp.replace(path)
    return path


def load_split(path: str | Path) -> dict:
    path = Path(path)
    try:
        split = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{path}: split file not found; create it with `medseg3d split`") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: split file is not valid JSON ({exc.msg})") from exc
    if split.get("kind") not in ("kfold", "holdout"):
        raise InputError(f"{path}: not a medseg3d split file (no 'kind')")
    return split
