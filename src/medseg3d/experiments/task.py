"""One training of an experiment or a cross-validation: a run on a fold (:class:`Task`, what ``plan`` makes,
``timing`` estimates and ``runner`` trains), what its folder still needs (:func:`run_state`), and the claim
that lets several invocations, shells, machines or Slurm array tasks share the work (:func:`claim_task`). Its
own module so that ``timing`` can name a task without importing ``plan``, and ``crossval`` claim folds without
the runner."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from .catalogue import Run


@dataclass
class Task:
    """One run on one fold, with its training settings and state."""

    run: Run
    fold: int
    folder: Path
    overrides: dict
    val_ids: list[str]
    state: str = "new"  # new | resume | score | done


def fold_dir(out: Path, run: str, fold: int) -> Path:
    """The folder of one run's fold: ``out/<run>/fold<fold>``.

    Args:
        out: the experiment folder.
        run: the run's name.
        fold: the fold index.
    """
    return out / run / f"fold{fold}"


# Written as DIR/.gitignore: a run's tables need only its metrics.csv, log.csv, config.json and timing.json,
# so committing DIR keeps every finished run (a later invocation skips it) without weights or predictions.
RESULTS_ONLY_IGNORE = """# written by medseg3d experiment: keep the small text files of finished runs, \
not weights or images
*.pt
*.safetensors
*.onnx
pred/
cache/
claim.json
"""


def run_state(folder: Path) -> str:
    """What a run and fold's folder still needs: ``done`` (scored), ``score``, ``resume`` or ``new``."""
    if (folder / "metrics.csv").is_file():  # scored: the tables need nothing else of the run
        return "done"
    if (folder / "model.safetensors").is_file():
        return "score"
    if (folder / "last.pt").is_file():
        return "resume"
    return "new"


def _process_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def claim_task(folder: Path) -> bool:
    """Mark ``folder`` as trained by this process; False when a live process (or another host) holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "claim.json"
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                owner = {}
            if owner.get("pid") == me["pid"] and owner.get("host") == me["host"]:
                return True
            if owner.get("host") == me["host"] and not _process_alive(owner.get("pid")):
                path.unlink(missing_ok=True)  # stale: the process that held it has ended
                continue
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        return True
    return False


def release_task(folder: Path) -> None:
    """Remove the folder's ``claim.json`` if this process holds it (errors ignored)."""
    path = folder / "claim.json"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
