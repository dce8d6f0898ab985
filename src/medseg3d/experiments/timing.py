"""How long an experiment takes: one training iteration timed with the training loop's own step
(:func:`medseg3d.train.step.training_step`), estimates from those timings or from finished runs, and what a
run folder says about the time it trained."""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import numpy as np

from ..datasets import Case
from .catalogue import QUICK
from .task import Task


def measure_iteration(cfg, cases_by_id: dict[str, Case]) -> tuple[float, float]:
    """Seconds of one training iteration and of one validation forward pass of ``cfg``'s network, timed on
    a random input of the size a case has after preprocessing (first case's grid, down-sampled), with the
    training loop's own step (:func:`medseg3d.train.step.training_step`).

    Args:
        cfg: the run's TrainConfig.
        cases_by_id: the dataset's cases; the first one sets the input size.

    Returns:
        (seconds per training iteration, seconds per forward pass).
    """
    import torch

    from ..io import read_volume
    from ..losses import build_loss
    from ..nets import build_network
    from ..precision import autocast
    from ..preprocess import bounding_box, foreground_mask, target_shape
    from ..train import label_scheme
    from ..train.step import make_grad_scaler, training_step

    scheme = label_scheme(cfg)
    case = next(iter(cases_by_id.values()))
    channels = list(cfg.modalities) if cfg.modalities else list(case.modalities)
    volume = read_volume(case.channels[channels[0]])
    shape = volume.array.shape[:3]
    if cfg.crop == "fixed" and cfg.crop_size:
        shape = cfg.crop_size
    elif cfg.crop == "bbox":  # the first case's own bounding box (a brain: about 140 x 170 x 140 mm)
        start, stop = bounding_box(
            foreground_mask(volume.array[None, ..., 0] if volume.array.ndim == 4 else volume.array[None]),
            cfg.prep_config().margin,
        )
        shape = tuple(b - a for a, b in zip(start, stop))
    shape = cfg.patch or target_shape(shape, volume.spacing, cfg.prep_config())
    model = build_network(cfg.net, len(channels), scheme.n_outputs, **cfg.net_args)
    multiple = getattr(model, "size_multiple", None) or 1
    grid = [max(multiple, math.ceil(s / multiple) * multiple) for s in shape]
    loss_fn = build_loss(cfg.loss, n_classes=scheme.n_outputs)
    x = torch.randn(1, len(channels), *grid)
    if getattr(loss_fn, "kind", "multiclass") == "region":
        y = torch.rand(1, scheme.n_outputs, *grid).round()
    else:
        y = torch.randint(0, scheme.n_outputs, (1, *grid))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = make_grad_scaler(cfg.precision, "cpu")
    times = []
    for _ in range(4):  # the first iteration also pays for warm-up: the median of the next three
        t0 = time.monotonic()
        training_step(model, loss_fn, optimizer, scaler, [(x, y)], precision=cfg.precision, device="cpu")
        times.append(time.monotonic() - t0)
    t_iter = float(np.median(times[1:]))
    model.eval()
    t0 = time.monotonic()
    with torch.no_grad(), autocast(cfg.precision, "cpu"):
        model(x)
    return t_iter, time.monotonic() - t0


# the settings that decide the speed of a training iteration (one timing per distinct combination)
_SPEED_KEYS = (
    "net",
    "net_args",
    "labels",
    "modalities",
    "crop",
    "crop_size",
    "downsample",
    "spacing",
    "patch",
    "precision",
    "batch",
)
# per validation case, besides the network: reading the channels, resampling back, writing, scoring (HD95)
_SECONDS_PER_SCORED_CASE = 8.0
# per training run: start-up (cache check, network, split); per epoch: checkpoint, log and curves
_SECONDS_PER_RUN = 5.0
_SECONDS_PER_EPOCH = 1.0


def estimate_seconds(tasks: list[Task], t_iter: float, t_forward: float, n_train: int) -> float:
    """Rough wall time of the pending tasks: training budget (or epochs x iterations x ``t_iter``),
    validation passes, checkpoints, and prediction + scoring of the validation cases. Preparing a cache
    the first time (a few seconds per case) comes on top.

    Args:
        tasks: the experiment's tasks (done ones count nothing).
        t_iter, t_forward: seconds of a training iteration and of a forward pass (:func:`measure_iteration`).
        n_train: training cases per fold (iterations per epoch unless a task sets them).

    Returns:
        Seconds.
    """
    total = 0.0
    for task in tasks:
        if task.state == "done":
            continue
        o = task.overrides
        n_val = len(task.val_ids)
        score = n_val * (t_forward * 2 + _SECONDS_PER_SCORED_CASE)
        if task.state == "score":
            total += score
            continue
        per_epoch = iterations_per_epoch(o, n_train) * t_iter
        if o.get("minutes"):
            train_s = o["minutes"] * 60 - trained_seconds(task.folder)
            epochs = train_s / max(per_epoch, 1e-6)
        else:
            epochs = o["epochs"] - trained_epochs(task.folder)
            train_s = epochs * per_epoch
        epochs = max(epochs, 0.0)
        validation = epochs / max(o.get("val_every") or 1, 1) * n_val * t_forward
        total += max(train_s, 0.0) + validation + epochs * _SECONDS_PER_EPOCH + _SECONDS_PER_RUN + score
    return total


def read_timing(folder: Path) -> dict:
    """A run's ``timing.json`` (wall seconds of training and scoring, summed over sittings); ``{}`` if
    none."""
    path = folder / "timing.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def finished_rates(tasks: list[Task], n_train: int) -> tuple[dict[str, float], float]:
    """From the finished trainings with a ``timing.json``: wall seconds per training iteration (validation
    and checkpoints included) per run name, key ``""`` over all of them, and the mean scoring seconds of a
    fold.

    Args:
        tasks: the experiment's tasks (only done fixed-epoch ones are read).
        n_train: training cases per fold (iterations per epoch unless a task sets them).

    Returns:
        (rates, scoring seconds); ``({}, 0.0)`` if none has finished.
    """
    seconds: dict[str, float] = {}
    iterations: dict[str, float] = {}
    scoring = []
    for task in tasks:
        if task.state != "done" or not task.overrides.get("epochs"):
            continue
        try:
            timing = read_timing(task.folder)
        except (OSError, json.JSONDecodeError):
            continue
        wall = float(timing.get("train_wall_seconds", 0.0))
        if wall <= 0:
            continue
        scoring.append(float(timing.get("score_wall_seconds", 0.0)))
        its = task.overrides["epochs"] * iterations_per_epoch(task.overrides, n_train)
        for key in (task.run.name, ""):
            seconds[key] = seconds.get(key, 0.0) + wall
            iterations[key] = iterations.get(key, 0.0) + its
    rates = {k: seconds[k] / iterations[k] for k in seconds}
    return rates, (float(np.mean(scoring)) if scoring else 0.0)


def estimate_from_finished(
    tasks: list[Task], rates: dict[str, float], score_seconds: float, n_train: int
) -> float:
    """Wall time of the pending fixed-epoch tasks at the pace of the finished ones (:func:`finished_rates`):
    a run's own pace where it has finished a fold, else the experiment's; plus scoring.

    Args:
        tasks: the experiment's tasks.
        rates: seconds per iteration by run name, ``""`` for all (must be present).
        score_seconds: seconds to score one fold.
        n_train: training cases per fold.

    Returns:
        Seconds.
    """
    total = 0.0
    for task in tasks:
        if task.state == "done":
            continue
        if task.state != "score":
            epochs = task.overrides["epochs"] - (trained_epochs(task.folder) if task.state == "resume" else 0)
            iterations = max(epochs, 0) * iterations_per_epoch(task.overrides, n_train)
            total += iterations * rates.get(task.run.name, rates[""])
        total += score_seconds
    return total


def iterations_per_epoch(overrides: dict, n_train: int) -> int:
    """Iterations in one epoch of a run, as the training loop counts them: its ``iters_per_epoch``, else one
    pass over the ``n_train`` training cases in batches of ``batch`` x ``accumulate`` samples.

    Args:
        overrides: the run's settings (``iters_per_epoch``, ``batch``, ``accumulate``; missing: 1 sample).
        n_train: training cases per fold.
    """
    if overrides.get("iters_per_epoch"):
        return int(overrides["iters_per_epoch"])
    samples = int(overrides.get("batch") or 1) * int(overrides.get("accumulate") or 1)
    return max(1, math.ceil(n_train / samples))


def budget_text(record: dict, n_train: int) -> str:
    """The budget of a run and fold, in words, from ``experiment.json``.

    Args:
        record: the experiment's record (quick, epochs, budget minutes, measured seconds per iteration).
        n_train: training cases per fold (an epoch passes over them once, in the shared batch size).
    """
    if record["quick"]:
        return f"{QUICK['epochs']} epochs of {QUICK['iters_per_epoch']} iterations per run and fold"
    epochs = record["epochs"]
    minutes = record.get("budget_minutes")
    seconds = record.get("measured_seconds_per_iteration") or {}
    if None in epochs.values():  # a --plan of a new folder: not timed yet
        return (
            f"{minutes:g} training minutes per run and fold, turned into epochs by timing each network "
            "when the experiment starts"
        )
    per_epoch = iterations_per_epoch(record.get("adapted") or {}, n_train)
    if len(set(epochs.values())) == 1:
        (e,) = set(epochs.values())
        text = f"{e} epochs of {per_epoch} iterations ({e * per_epoch} iterations) per run and fold"
        if minutes and seconds:
            text += (
                f", fixed from a {minutes:g}-minute budget at the {next(iter(seconds.values())):.2f} s per "
                "iteration measured when the experiment started"
            )
        return text
    per_run = ", ".join(f"{run} {e}" for run, e in epochs.items())
    text = f"epochs of {per_epoch} iterations per run and fold: {per_run}"
    if minutes:
        text += f" (the same {minutes:g} training minutes for each, at iteration times measured side by side)"
    return text


def log_rows(folder: Path) -> list[dict]:
    """The rows of a run folder's ``log.csv`` (one per epoch), [] without one."""
    path = folder / "log.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def trained_seconds(folder: Path) -> float:
    """The training seconds a run folder's log reached (0.0 without a log)."""
    rows = log_rows(folder)
    return float(rows[-1].get("seconds") or 0) if rows else 0.0


def trained_epochs(folder: Path) -> int:
    """The epochs a run folder's log reached (0 without a log)."""
    rows = log_rows(folder)
    return int(rows[-1].get("epoch") or 0) if rows else 0


def format_duration(seconds: float) -> str:
    """Seconds as "45 s", "12 min" or "2 h 05 min" (whole minutes from one minute on)."""
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def speed_groups(tasks: list[Task]) -> list[list[Task]]:
    """The tasks grouped by what decides their speed (``_SPEED_KEYS``): one timing per group (the runs of
    binary or depth differ several-fold)."""
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        o = task.overrides
        key = json.dumps([o.get(k) for k in _SPEED_KEYS], sort_keys=True, default=str)
        groups.setdefault(key, []).append(task)
    return list(groups.values())


def plan_estimate_text(pending: list[Task], record: dict, n_train: int) -> str:
    """The time estimate ``--plan`` prints without timing anything (timing takes minutes on a CPU): the
    minutes budget of each training, or the iteration times recorded when the folder was made.

    Args:
        pending: the tasks still to do.
        record: the experiment's record.
        n_train: training cases per fold.

    Returns:
        One sentence: "about ..." with how it was estimated, or why it was not.
    """
    to_train = [t for t in pending if t.state in ("new", "resume")]
    scoring = sum(len(t.val_ids) for t in pending) * _SECONDS_PER_SCORED_CASE
    minutes = record.get("budget_minutes")
    measured = record.get("measured_seconds_per_iteration") or {}
    if minutes and all(t.state == "new" for t in to_train):
        total = len(to_train) * (minutes * 60 + _SECONDS_PER_RUN) + scoring
        return (
            f"about {format_duration(total)} ({len(to_train)} trainings of {minutes:g} minutes, then "
            "scoring; nothing timed for --plan)"
        )
    if measured and all(t.overrides.get("epochs") for t in to_train):
        reference = next(iter(measured.values()))
        total = scoring
        for task in to_train:
            epochs = task.overrides["epochs"] - (trained_epochs(task.folder) if task.state == "resume" else 0)
            iterations = max(epochs, 0) * iterations_per_epoch(task.overrides, n_train)
            total += iterations * measured.get(task.run.name, reference) + _SECONDS_PER_RUN
        return (
            f"about {format_duration(total)} (at the seconds per iteration measured when the experiment "
            "started; nothing timed for --plan)"
        )
    return (
        "not estimated by --plan (it times nothing, to print at once); a run without --plan times one "
        "iteration per network first (minutes on a CPU) and prints its estimate"
    )
