"""The preprocessed-case cache that training reads (``medseg3d cache``).

Layout of a cache folder::

    CACHE/cache.json              settings: preprocessing, label scheme, modalities, dataset root
    CACHE/<case>/image.npy        float16 (C, x, y, z), z-scored, memory-mapped by training
    CACHE/<case>/label.npy        uint8 class indices (x, y, z)
    CACHE/<case>/record.json      PrepRecord (how to undo) + source files; written last

A case counts as done when its ``record.json`` exists, matches the cache's settings and its arrays have the
recorded shapes; anything else is (re)computed. Files are written under temporary names and renamed, so an
interrupted ``prepare`` leaves no case half-written.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .datasets import Case, channel_order_warning, find_cases
from .errors import InputError
from .io import atomic_write, write_json_atomic
from .labels import LabelScheme, get_scheme
from .preprocess import PrepConfig, PrepRecord, preprocess

CACHE_VERSION = 1


def _atomic_npy(array: np.ndarray, path: Path) -> None:
    # the temporary name must end in .npy, or np.save appends it and the rename misses the file
    atomic_write(path, lambda tmp: np.save(tmp, array), suffix=".tmp.npy")


def settings_of(config: PrepConfig, scheme: LabelScheme, modalities) -> dict:
    """The settings a cache is made with and checked against (version, preprocessing, class-map labels,
    modalities), as stored in ``cache.json``.

    Args:
        config: the preprocessing settings.
        scheme: the label scheme (stored without region training: the cache holds class maps).
        modalities: the channels in order.
    """
    return {
        "version": CACHE_VERSION,
        "preprocess": config.to_dict(),
        # the cache holds class maps; region training is a training-time view of them, so it is left out
        "labels": scheme.with_region_training(False).to_dict(),
        "modalities": list(modalities),
    }


def _case_done(case_dir: Path, settings: dict) -> bool:
    rec_path = case_dir / "record.json"
    if not rec_path.is_file():
        return False
    try:
        rec = json.loads(rec_path.read_text(encoding="utf-8"))
        if rec.get("settings") != settings:
            return False
        shape = tuple(rec["record"]["shape"])
        img = np.load(case_dir / "image.npy", mmap_mode="r")
        if tuple(img.shape) != (len(settings["modalities"]),) + shape:
            return False
        if rec.get("has_label"):
            lab = np.load(case_dir / "label.npy", mmap_mode="r")
            return tuple(lab.shape) == shape
        return True
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return False


def _check_numbering(case: Case, label: np.ndarray, scheme: LabelScheme) -> None:
    """Refuse nnU-Net-numbered BraTS labels (1 edema, 2 NCR/NET, 3 enhancing) read as BraTS 2017+ values,
    which would silently merge the enhancing tumour (3) into the necrosis (1). BRATS 2015 maps (3 =
    non-enhancing, edema 2) still merge 3 into 1 as they should."""
    from .labels import LabelStats

    if scheme.name != "brats":
        return
    stats = LabelStats().add(label)
    if 3 in stats.values and 4 not in stats.values and stats.edema_value() == 1:
        raise InputError(
            f"case {case.case_id}: label values {sorted(stats.values)} are numbered like nnU-Net's BraTS "
            "conversion (1 edema, 3 enhancing), not BraTS 2017+; pass --labels nnunet-brats"
        )


def prepare_case(case: Case, out: Path, config: PrepConfig, scheme: LabelScheme, settings: dict) -> dict:
    """Preprocess one case into ``out/<case_id>/``.

    The case folder is made only once the case has been read and preprocessed, and removed again if writing
    it fails (a full disk): a failed case leaves nothing in the cache.

    Args:
        case: the case.
        out: the cache folder.
        config: the preprocessing settings.
        scheme: the label scheme (the label is checked against it and stored as class indices).
        settings: :func:`settings_of`'s dict, stored with the case.

    Returns:
        The case's record (also written as ``record.json``): channels, label file, voxels per class.

    Raises:
        InputError: the channels' content confidently says another order of FLAIR, T1, T1ce, T2 than their
            names, or the label's values do not fit the scheme.
    """
    case_dir = out / case.case_id
    image, ref, label = case.load(with_label=True)
    swapped = channel_order_warning(image, case.modalities, ref.spacing)  # FLAIR, T1, T1ce, T2 by content
    if swapped:
        raise InputError(f"case {case.case_id}: {swapped}")
    if label is not None:
        _check_numbering(case, label, scheme)
    classes = scheme.to_classes(label, where=f"case {case.case_id} label") if label is not None else None
    x, y, record = preprocess(image, ref.affine, config, classes, scheme.n_classes)
    try:
        case_dir.mkdir(parents=True, exist_ok=True)
        (case_dir / "record.json").unlink(missing_ok=True)
        _atomic_npy(x.astype(np.float16), case_dir / "image.npy")
        if y is not None:
            _atomic_npy(y.astype(np.uint8), case_dir / "label.npy")
    except BaseException:
        # without its record the case is not done: its arrays (old or new) are of no use to anyone
        _remove_case_dir(case_dir, out)
        raise
    entry = {
        "case": case.case_id,
        "settings": settings,
        "record": record.to_dict(),
        "has_label": y is not None,
        "channels": {k: str(v) for k, v in case.channels.items()},
        "label_file": str(case.label) if case.label else None,
        "class_voxels": np.bincount(y.ravel(), minlength=scheme.n_classes).tolist()
        if y is not None
        else None,
    }
    try:
        write_json_atomic(entry, case_dir / "record.json")
    except BaseException:
        _remove_case_dir(case_dir, out)
        raise
    return entry


def _remove_case_dir(case_dir: Path, out: Path) -> None:
    """Delete a case's cache folder, only if it really is a folder directly inside the cache ``out``."""
    if case_dir.is_dir() and not case_dir.is_symlink() and case_dir.resolve().parent == out.resolve():
        shutil.rmtree(case_dir, ignore_errors=True)


def _worker_init() -> None:
    """One torch/OpenMP thread per worker process: the workers already share the cores between them."""
    os.environ["OMP_NUM_THREADS"] = "1"
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _prepare_one(args):
    case, out, config, scheme, settings = args
    try:
        return prepare_case(case, out, config, scheme, settings), None
    except InputError as exc:
        return None, str(exc)
    except OSError as exc:  # disk full, permissions: reported with the case, like bad input
        return None, f"case {case.case_id}: cannot write to the cache ({exc})"


def _settings_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _settings_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {a!r} -> {b!r}")
    return out


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"{path}: {what} is unreadable ({exc}); delete the cache folder and prepare again"
        ) from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: {what} is malformed; delete the cache folder and prepare again")
    return data


def prepare_dataset(
    root,
    out,
    config: PrepConfig | None = None,
    labels: str | LabelScheme = "brats",
    modalities=None,
    layout: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    option: str = "--out",
) -> dict:
    """Preprocess every case of the dataset at ``root`` into the cache folder ``out``.

    Cases already done with the same settings are skipped. Failed cases are reported, not fatal, unless every
    case fails; a caller that refuses because of a failed case undoes the call with :func:`discard_prepared`.

    Args:
        root: the dataset folder (or CSV).
        out: the cache folder.
        config: the preprocessing settings (None: the defaults).
        labels: the label scheme or its name.
        modalities: the channels in order (None: all the dataset has).
        layout: the dataset layout (None: detected).
        workers: processes (None: the cores, at most 4 and at most the cases to do).
        progress: show a progress bar.
        option: how the caller's user named ``out`` (``--cache`` for train), for the messages.

    Returns:
        ``{"prepared": [...], "skipped": [...], "failed": {case: reason}, "new_cache": bool}``.

    Raises:
        InputError: ``out`` is a file, a folder of other files or a cache made with other settings, it cannot
            be made or written, the dataset cannot be read, or every case failed.
    """
    config = config or PrepConfig()
    scheme = get_scheme(labels) if isinstance(labels, str) else labels
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; --out must be a folder")
    cases = find_cases(root, layout=layout, modalities=modalities, complete=True)
    modalities = cases[0].modalities
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"{out}: cannot make the cache folder ({exc.strerror or exc}); choose another {option}"
        ) from exc
    settings = settings_of(config, scheme, modalities)
    meta_path = out / "cache.json"
    if meta_path.is_file():
        old = _read_json(meta_path, "the cache record")
        if old.get("settings") != settings:
            diff = _settings_diff(old.get("settings") or {}, settings)
            raise InputError(
                f"{out}: holds a cache made with other settings ({'; '.join(diff[:3])}); "
                f"use another {option} folder or delete this one"
            )
    elif out.is_dir() and any(out.iterdir()):
        raise InputError(
            f"{out}: is a folder that holds other files, not a medseg3d cache; "
            f"choose an empty or new {option}"
        )
    new_cache = not meta_path.is_file()
    try:
        write_json_atomic(
            {"settings": settings, "root": str(Path(root).resolve()), "cases": [c.case_id for c in cases]},
            meta_path,
        )
    except OSError as exc:  # a full disk or a read-only folder
        raise InputError(
            f"{out}: cannot write the cache ({exc.strerror or exc}); free space or choose another {option}"
        ) from exc
    todo = [c for c in cases if not _case_done(out / c.case_id, settings)]
    skipped = [c.case_id for c in cases if c not in todo]
    summary = {"prepared": [], "skipped": skipped, "failed": {}, "new_cache": new_cache}
    workers = workers or min(len(todo), os.cpu_count() or 1, 4)
    jobs = [(c, out, config, scheme, settings) for c in todo]
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="prepare", unit="case", disable=not progress or not jobs)
    if workers <= 1 or len(jobs) <= 1:
        results = map(_prepare_one, jobs)
        pool = None
    else:
        # spawn, not fork: a forked child of a process that already ran torch's OpenMP threads can hang
        pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
        )
        results = pool.map(_prepare_one, jobs)
    try:
        for job, (entry, error) in zip(jobs, results):
            if error:
                summary["failed"][job[0].case_id] = error
            else:
                summary["prepared"].append(entry["case"])
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    if summary["failed"] and not summary["prepared"] and not skipped:
        first = next(iter(summary["failed"].values()))
        if new_cache:  # nothing was cached: leave no record of a cache behind
            meta_path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                out.rmdir()
        raise InputError(f"every case failed to prepare; first error: {first}")
    return summary


def discard_prepared(out, summary: dict) -> None:
    """Undo one :func:`prepare_dataset` call: remove the cases it prepared (and the cache's record and folder
    when it made the cache), for a caller that refuses to go on (``train`` with a bad case), so that a
    refusal leaves nothing behind. Cases an earlier call prepared stay.

    Args:
        out: the cache folder.
        summary: that call's summary.
    """
    out = Path(out)
    for cid in summary.get("prepared", []):
        _remove_case_dir(out / cid, out)
    if summary.get("new_cache") and not summary.get("skipped"):
        (out / "cache.json").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            out.rmdir()


class PreparedCase:
    """One cached case: memory-mapped arrays plus its record."""

    def __init__(self, case_dir: Path):
        self.dir = Path(case_dir)
        rec_path = self.dir / "record.json"
        if not rec_path.is_file():
            raise InputError(f"{self.dir}: not a prepared case (no record.json); run `medseg3d cache` again")
        self.entry = _read_json(rec_path, "the case record")
        try:
            self.case_id = self.entry["case"]
            self.record = PrepRecord.from_dict(self.entry["record"])
            self.image = np.load(self.dir / "image.npy", mmap_mode="r")
            self.label = (
                np.load(self.dir / "label.npy", mmap_mode="r") if self.entry.get("has_label") else None
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(
                f"{self.dir}: prepared case is damaged ({type(exc).__name__}: {exc}); "
                "run `medseg3d cache` again"
            ) from exc


def open_cache(out) -> tuple[dict, dict[str, PreparedCase]]:
    """Read a cache folder: (settings, {case_id: PreparedCase})."""
    out = Path(out)
    meta_path = out / "cache.json"
    if not meta_path.is_file():
        raise InputError(f"{out}: not a medseg3d cache (no cache.json); create it with `medseg3d cache`")
    meta = _read_json(meta_path, "the cache record")
    cases = {}
    for cid in meta.get("cases", []):
        if (out / cid / "record.json").is_file():
            cases[cid] = PreparedCase(out / cid)
    if not cases:
        raise InputError(f"{out}: the cache holds no prepared case; run `medseg3d cache` again")
    return meta, cases
