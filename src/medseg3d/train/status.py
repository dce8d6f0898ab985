"""Where a training run stands (``medseg3d info RUN``): settings, progress, speed, time to go, validation, and
whether it can be resumed. It reads ``config.json`` and ``log.csv`` only: safe while the run is training.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from ..errors import InputError

__all__ = ["describe_run", "is_run_folder"]


def is_run_folder(path: Path) -> bool:
    """A folder ``medseg3d train`` wrote: its settings and a log or a checkpoint."""
    path = Path(path)
    return (path / "config.json").is_file() and ((path / "log.csv").is_file() or (path / "last.pt").is_file())


def _minutes(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _read_log(path: Path) -> list[dict]:
    """The log's complete rows (a line cut off by a kill mid-write is left out)."""
    if not path.is_file():
        return []

    def complete(
        row: dict,
    ) -> bool:  # every column there (a cut line lacks the last ones: None), counters numbers
        if any(v is None for v in row.values()):
            return False
        try:
            int(row["epoch"]), int(row["iteration"]), float(row["seconds"])
        except (KeyError, ValueError):
            return False
        return True

    with path.open(newline="", encoding="utf-8") as f:
        return [row for row in csv.DictReader(f) if complete(row)]


def _number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def describe_run(path) -> str:
    """A readable status of the training run in ``path``.

    Speed is the median seconds of the last ten epochs (a paused or shared machine shows in single epochs);
    the time to go is that speed times the epochs left, capped by the run's ``--minutes`` budget if it has
    one."""
    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{path / 'config.json'}: unreadable run settings ({exc}); is this a training run?"
        ) from None
    if not isinstance(config, dict):
        raise InputError(f"{path / 'config.json'}: not a run's settings; is this a training run?")
    log = _read_log(path / "log.csv")
    epochs = int(config.get("epochs") or 0)
    per_epoch = int(config.get("iters_per_epoch") or 0)
    lines = [f"training run {path}"]
    what = [f"preset {config.get('preset') or '(none)'}", f"network {config.get('net')}"]
    if config.get("augment") not in (None, "default"):
        what.append(f"augment {config['augment']}")
    if config.get("patch"):
        what.append("patches " + "x".join(str(v) for v in config["patch"]))
    if config.get("downsample") not in (None, 1, 1.0):
        what.append(f"downsample {config['downsample']:g}")
    lines.append("  settings     " + ", ".join(what))
    cases = (
        f"{len(config.get('train_cases') or [])} training, {len(config.get('val_cases') or [])} validation"
    )
    if config.get("fold") is not None:
        cases += f" (fold {config['fold']} of {config.get('split_file')})"
    elif config.get("all_cases"):
        cases += " (every case: the final model)"
    lines.append(f"  cases        {cases} from {config.get('dataset')}")
    done = int(log[-1]["epoch"]) if log else 0
    elapsed = float(log[-1]["seconds"]) if log else 0.0
    finished = (path / "model.safetensors").is_file()
    if epochs:
        iters = (
            f", {int(log[-1]['iteration']):,} of {epochs * per_epoch:,} iterations"
            if log and per_epoch
            else ""
        )
        lines.append(f"  progress     epoch {done} of {epochs}{iters} ({100 * done / epochs:.0f}%)")
    recent = [float(r["epoch_seconds"]) for r in log[-10:] if _number(r.get("epoch_seconds"))]
    if recent:
        speed = statistics.median(recent)
        timing = (
            f"{_minutes(elapsed)} of training {'in all' if finished else 'so far'}; {speed:.1f} s per epoch "
            f"(median of the last {len(recent)})"
        )
        left = max(epochs - done, 0) * speed
        budget = config.get("minutes")
        if budget:
            left = min(left, max(float(budget) * 60 - elapsed, 0.0))
        if not finished and left > 0:
            timing += f", about {_minutes(left)} to go"
        lines.append(f"  time         {timing}")
    scored = [r for r in log if _number(r.get("score"))]
    if scored:
        last = scored[-1]
        scores = [k for k in last if k.startswith("dice_") and _number(last[k])]
        shown = [
            k for k in scores if k in ("dice_WT", "dice_TC", "dice_ET")
        ] or scores  # regions, else classes
        best = max(scored, key=lambda r: float(r["score"]))
        lines.append(
            f"  validation   epoch {last['epoch']}: "
            + " ".join(f"{k.removeprefix('dice_')} {float(last[k]):.3f}" for k in shown)
            + f"; best score {float(best['score']):.3f} at epoch {best['epoch']}"
        )
    if finished:
        lines.append(f"  state        finished: {path / 'model.safetensors'}")
    elif (path / "last.pt").is_file():
        lines.append(
            f"  state        stopped or running; resumable from epoch {done}: "
            f"medseg3d train --out {path} --resume"
        )
    else:
        lines.append("  state        no checkpoint yet (last.pt): a restart begins again")
    return "\n".join(lines)
