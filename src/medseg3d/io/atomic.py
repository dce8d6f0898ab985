"""The one home of the temp-file-and-rename write: text, JSON, CSV rows or anything a callback writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(
    path: str | os.PathLike, write, previous: str | os.PathLike | None = None, suffix: str = ".tmp"
) -> Path:
    """Run ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``: the one home of
    the temp-file-and-rename write, so no reader ever sees a half-written file.

    Args:
        path: the file to write; its folder is created.
        write: called with the temporary file's name (a str); writes the whole content there.
        previous: when given, an existing ``path`` is first renamed to it (the last good version stays until
            the new one is complete; a process killed between the two renames leaves ``previous`` only).
        suffix: of the temporary file (``.{name}.XXXX{suffix}``), for writers that read the format from it
            (``".tmp.png"`` for matplotlib).

    The result gets the permissions of any new file (umask), not mkstemp's private 0600. The temporary file
    is removed on any failure (a full disk, an interrupt) and the error raised as it came.

    Example:
        >>> atomic_write(folder / "notes.txt", lambda tmp: Path(tmp).write_text("done"))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_write`.

    Args:
        text: the content.
        path: the file.

    Returns:
        The path.
    """
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json_atomic(obj, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON (UTF-8) to ``path`` through :func:`atomic_write` (a unique temporary, so
    two processes writing the same file at once, e.g. two trainings sharing a cache, never race on it).

    Args:
        obj: a JSON-serialisable object.
        path: the file.

    Returns:
        The path.
    """
    import json

    return write_text_atomic(json.dumps(obj, indent=1), path)


def write_rows(rows, path: str | os.PathLike) -> Path:
    """Write one CSV row per dict (columns in order of first appearance) atomically; floats to 6 digits.

    Args:
        rows: the dicts (a missing key is an empty cell).
        path: the CSV file.

    Returns:
        The path.
    """
    import csv

    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    return atomic_write(path, write)


def remove_stale_temporaries_of(target: str | os.PathLike, companions=()) -> list[Path]:
    """Delete the temporaries an interrupted :func:`atomic_write` of ``target`` (or of a companion file beside
    it) left behind: ``.NAME.*tmp*`` files or folders.

    Only the process responsible for ``target`` may call this (for ``predict --shard i/n``: the shard that
    owns the case), since a write of ``target`` in progress elsewhere would lose its temporary.

    Args:
        target: the file whose temporaries go.
        companions: names of files beside it whose temporaries go too.

    Returns:
        What was removed.
    """
    import glob
    import shutil

    target = Path(target)
    removed = []
    for name in [target.name, *companions]:
        for path in target.parent.glob(f".{glob.escape(name)}.*tmp*"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed
