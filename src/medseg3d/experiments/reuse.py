"""Reusing finished runs of other experiment folders that trained exactly what a run here would."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..datasets import fold_ids
from ..errors import InputError
from ..io import write_json_atomic
from .plan import read_record
from .task import Task, run_state

# config.json entries that say where a run lived or what it cached, not what it trained
_PLACE_KEYS = frozenset({"out", "split_file", "cache", "resume", "progress", "software", "dataset"})
# copied from a reused run; metrics.csv last, because its presence marks a run as done (see run_state)
_REUSED_FILES = ("config.json", "log.csv", "timing.json", "train.log", "curves.png", "metrics.csv")


def _training_settings(config: dict, modalities, train_ids, val_ids) -> dict:
    """What decides the outcome of a training: every :class:`TrainConfig` setting except where it lives
    (settings an older run did not record take their defaults), its channels, its cases and its batch."""
    from ..datasets import normalise_modalities
    from ..train import TrainConfig

    settings = TrainConfig().to_dict() | {
        k: v for k, v in config.items() if k in TrainConfig.__dataclass_fields__
    }
    settings = {k: v for k, v in settings.items() if k not in _PLACE_KEYS}
    global_batch = settings["batch"] * settings["accumulate"]
    settings["iters_per_epoch"] = settings["iters_per_epoch"] or max(
        1, math.ceil(len(train_ids) / global_batch)
    )
    settings["modalities"] = list(normalise_modalities(settings["modalities"] or modalities))
    settings |= {"train_cases": sorted(train_ids), "val_cases": sorted(val_ids), "global_batch": global_batch}
    return json.loads(json.dumps(settings))  # tuples -> lists, as in a config.json


def find_reusable(tasks: list[Task], sources: list[Path], record: dict, split: dict, modalities) -> dict:
    """Finished runs in other experiment folders (``sources``) that trained exactly what a new task of this
    experiment would: same settings, channels, budget, dataset and fold cases.

    Training on a CPU is deterministic for a given configuration (seeded sampling and augmentation: the
    ``all`` run of ``modalities`` and ``concat-jaccard`` of ``ablations``, trained a day apart in
    bfloat16, logged the same loss and validation scores at every epoch and the same per-case scores on
    every fold), so training such a run again would only repeat it.

    Args:
        tasks: this experiment's tasks; only those in state "new" are matched.
        sources: other experiment folders (``--reuse``).
        record: this experiment's record (dataset; a quick experiment reuses nothing).
        split: this experiment's split (the fold cases).
        modalities: the channels this experiment trains on.

    Returns:
        {task index: run folder}.

    Raises:
        InputError: a source is not an experiment folder.
    """
    found: dict[int, Path] = {}
    if record["quick"] or not sources:
        return found
    candidates = []  # (settings, folder) of every finished run in the sources
    for source in sources:
        source_record = read_record(source)
        if source_record is None:
            raise InputError(f"{source}: not an experiment folder (no experiment.json); check --reuse")
        if source_record["dataset"] != record["dataset"] or source_record.get("quick"):
            continue
        for config_path in sorted(source.glob("*/fold*/config.json")):
            folder = config_path.parent
            if run_state(folder) != "done" or (folder / "reused.json").is_file():
                continue
            config = json.loads(config_path.read_text(encoding="utf-8"))
            if config.get("world_size", 1) != 1:
                continue
            settings = _training_settings(config, None, config["train_cases"], config["val_cases"])
            candidates.append((settings, folder))
    for i, task in enumerate(tasks):
        if task.state != "new":
            continue
        train_ids, val_ids = fold_ids(split, task.fold)
        wanted = _training_settings(task.overrides, modalities, train_ids, val_ids)
        match = next((folder for settings, folder in candidates if settings == wanted), None)
        if match is not None:
            found[i] = match
    return found


def adopt_run(task: Task, source: Path) -> None:
    """Copy the result files of ``source`` (a finished run with the same training) into ``task``'s folder.

    Args:
        task: the task to mark done; its folder gets ``reused.json`` naming the source.
        source: the finished run folder.
    """
    import shutil

    task.folder.mkdir(parents=True, exist_ok=True)
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    write_json_atomic(
        {
            "source": str(source.resolve()),
            "source_out": config.get("out"),
            "source_software": config.get("software"),
            "why": "same training settings, channels, budget, dataset and fold cases; not trained again",
        },
        task.folder / "reused.json",
    )
    for name in _REUSED_FILES:
        if (source / name).is_file():
            tmp = task.folder / (name + ".tmp")
            shutil.copyfile(source / name, tmp)
            os.replace(tmp, task.folder / name)
    task.state = "done"


def reused_sources(out: Path) -> dict[str, dict[str, list[int]]]:
    """{run: {source run ("experiment/run"): folds}} of the runs of ``out`` that were copied, not trained."""
    sources: dict[str, dict[str, list[int]]] = {}
    for path in sorted(out.glob("*/fold*/reused.json")):
        source = Path(json.loads(path.read_text(encoding="utf-8"))["source"])
        fold = int(path.parent.name.removeprefix("fold"))
        name = f"{source.parent.parent.name}/{source.parent.name}"
        sources.setdefault(path.parent.parent.name, {}).setdefault(name, []).append(fold)
    return sources


def reused_lines(out: Path) -> list[str]:
    """One Markdown list line per run of the experiment in ``out`` with folds copied from another
    experiment."""
    lines = []
    for run, found in reused_sources(out).items():
        copies = "; ".join(
            f"fold{'s' if len(folds) > 1 else ''} {', '.join(map(str, sorted(folds)))} from `{name}`"
            for name, folds in found.items()
        )
        lines.append(
            f"- reused, not trained again: `{run}` {copies} (the same training settings, channels, budget "
            "and fold cases; `reused.json` in the fold folder)"
        )
    return lines
