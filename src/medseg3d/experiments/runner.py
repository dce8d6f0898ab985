"""Running an experiment: claiming, training and scoring each task, several invocations side by side."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from ..datasets import Case, find_cases, fold_ids
from ..errors import InputError
from ..io import write_json_atomic
from . import timing  # timing.measure_iteration: one place for tests to replace the timing
from .catalogue import train_config
from .plan import plan_experiment
from .reuse import adopt_run, find_reusable
from .tables import write_report
from .task import Task, claim_task, release_task, run_state
from .timing import (
    budget_text,
    estimate_from_finished,
    estimate_seconds,
    finished_rates,
    format_duration,
    plan_estimate_text,
    read_timing,
    speed_groups,
)


def _score_task(task: Task, cfg, cases_by_id: dict[str, Case], dataset_ref: Path) -> None:
    """Segment the fold's validation cases with the final parameters and score them (metrics.csv)."""
    from ..evaluate import evaluate
    from ..io import image_suffix, write_volume
    from ..models import load_model
    from ..predict import segment_arrays

    model_file = task.folder / "last.safetensors"
    if not model_file.is_file():
        model_file = task.folder / "model.safetensors"
    # every run is scored the same way, whatever its model file asks for: one whole-volume pass in float32
    loaded = load_model(model_file, device=cfg.device, precision="fp32")
    pred_dir = task.folder / "pred"
    pred_dir.mkdir(exist_ok=True)
    for case_id in task.val_ids:
        case = cases_by_id[case_id].select(loaded.modalities)
        first = Path(next(iter(case.channels.values())))
        target = pred_dir / f"{case_id}{image_suffix(first) or '.nii.gz'}"
        if target.exists():
            continue
        image, ref, _ = case.load(with_label=False)
        labels = segment_arrays(loaded, image, ref.affine, sliding_window=False)
        write_volume(ref.with_array(labels), target)
    evaluate(pred_dir, dataset_ref, loaded.scheme, out_csv=task.folder / "metrics.csv", progress=False)


def _run_task(task: Task, cases_by_id: dict[str, Case], dataset_ref: Path) -> dict:
    from ..train import train

    wall = {}
    cfg = train_config(task.overrides)
    if task.state in ("new", "resume"):
        cfg.resume = task.state == "resume"
        t0 = time.monotonic()
        task.folder.mkdir(parents=True, exist_ok=True)
        # the epoch lines of train() go to the run's own log; the console keeps the bar over runs
        with open(task.folder / "train.log", "a") as log, contextlib.redirect_stdout(log):
            train(cfg)
        wall["train_wall_seconds"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    _score_task(task, cfg, cases_by_id, dataset_ref)
    wall["score_wall_seconds"] = round(time.monotonic() - t0, 1)
    old = read_timing(task.folder)
    for key, value in wall.items():
        wall[key] = round(value + old.get(key, 0.0), 1)
    write_json_atomic(old | wall, task.folder / "timing.json")
    task.state = "done"
    return wall


def run_experiment(
    name: str,
    dataset,
    out,
    folds: int | None = None,
    budget_minutes: float | None = None,
    quick: bool = False,
    runs: list[str] | None = None,
    progress: bool = True,
    report: bool = True,
    epochs: int | None = None,
    precision: str | None = None,
    reuse: list | None = None,
    plan: bool = False,
) -> dict:
    """Run (or continue) experiment ``name`` on ``dataset`` into ``out``; returns a summary dict.

    Args:
        name: a key of :data:`EXPERIMENTS`.
        dataset: dataset folder (or CSV case list) with labels.
        out: experiment folder (see the module docstring for its layout).
        folds: cross-validation folds (default 5; 2 with ``quick``).
        budget_minutes: training minutes per run and fold (default: :func:`default_budget_minutes`), turned
            into a fixed number of epochs when the folder is made (:func:`budget_epochs`).
        quick: the 2-case smoke version.
        runs: only these runs of the experiment (default all).
        progress: print the time estimate and a progress bar over runs.
        report: write ``table.md``, ``table.csv`` and ``plot.png`` at the end.
        epochs: epochs per run and fold instead of ``budget_minutes``.
        precision: ``fp32`` or ``mixed`` (see :mod:`medseg3d.precision`), recorded with the budget.
        reuse: other experiment folders whose finished runs are copied instead of trained again where they
            trained exactly what a run here would (:func:`find_reusable`); the report names them.
        plan: only print what would run (each run's folds done, to resume, to copy, to train) and the time
            estimate; write nothing, not even the experiment folder.
    """
    from tqdm import tqdm

    _, tasks, record = plan_experiment(
        name, dataset, out, folds, budget_minutes, quick, runs, epochs, precision, write=not plan
    )
    out = Path(out)
    dataset_ref = Path(record["train_dataset"])
    if plan and not dataset_ref.exists():  # the quick subset's case list, not written by a plan
        dataset_ref = Path(dataset)
    cases_by_id = {c.case_id: c for c in find_cases(dataset_ref, require_label=True)}
    split = record["split"]
    sources = [Path(p) for p in reuse or []]
    for source in sources:
        if not source.is_dir():
            raise InputError(f"{source}: no such experiment folder; check --reuse")
        if source.resolve() == out.resolve():
            raise InputError(
                f"{source}: is the experiment folder itself; --reuse takes other experiment folders"
            )
    first = next(iter(cases_by_id.values()))
    reusable = find_reusable(tasks, sources, record, split, list(first.modalities))
    copies = {id(tasks[i]): folder for i, folder in reusable.items()}
    pending = [t for t in tasks if t.state != "done" and id(t) not in copies]
    n_train = len(fold_ids(split, 0)[0])
    say = print if progress else (lambda *a, **k: None)
    say(
        f"experiment {name}: {len({t.run.name for t in tasks})} runs x {record['folds']} folds = "
        f"{len(tasks)} trainings ({len(tasks) - len(pending) - len(copies)} complete, "
        f"{sum(t.state == 'resume' for t in tasks)} to resume)"
        + f"; {budget_text(record, n_train)}"
        + ("; QUICK smoke test, not a result" if quick else "")
    )
    if sources:
        say(
            f"reused: {len(copies)} training(s) identical to finished runs of "
            + ", ".join(str(s) for s in sources)
            + " are copied, not trained again"
        )
    rates, score_seconds = finished_rates(tasks, n_train) if not quick else ({}, 0.0)
    if pending and rates and all(t.overrides.get("epochs") for t in pending):
        # the finished trainings of this experiment, on this machine, say more than a micro-benchmark
        eta = estimate_from_finished(pending, rates, score_seconds, n_train)
        n_done = sum(t.state == "done" and (t.folder / "timing.json").is_file() for t in tasks)
        say(
            f"estimated time: {format_duration(eta)} for one invocation (at the {rates['']:.2f} s per "
            f"training iteration, validation included, of the {n_done} finished trainings; "
            "concurrent invocations share it)"
        )
    elif pending and plan:
        say(f"estimated time: {plan_estimate_text(pending, record, n_train)}")
    elif pending:
        eta, measured_text = 0.0, []
        for group in speed_groups(pending):
            t_iter, t_forward = timing.measure_iteration(train_config(group[0].overrides), cases_by_id)
            eta += estimate_seconds(group, t_iter, t_forward, n_train)
            names = sorted({t.run.name for t in group})
            measured_text.append(f"{t_iter:.2f} s ({', '.join(names)})")
        say(
            f"estimated time: {format_duration(eta)} (measured per training iteration: "
            + "; ".join(measured_text)
            + ")"
        )
    if plan:
        print(_plan_table(tasks, copies, record))
        return {
            "out": str(out),
            "tasks": len(tasks),
            "ran": 0,
            "reused": 0,
            "to_copy": len(copies),
            "to_train": sum(t.state in ("new", "resume") for t in pending),
            "to_score": sum(t.state == "score" for t in pending),
            "seconds": 0.0,
        }
    t_start = time.monotonic()
    for task in tasks:  # copies first: they take a moment
        if id(task) in copies and claim_task(task.folder):
            try:
                if run_state(task.folder) == "new":
                    adopt_run(task, copies[id(task)])
            finally:
                release_task(task.folder)
    bar = tqdm(
        total=len(tasks),
        initial=len(tasks) - len(pending),
        unit="run",
        disable=not progress,
        dynamic_ncols=True,
    )
    ran, held = 0, []
    try:
        for task in pending:
            bar.set_description(f"{task.run.name}/fold{task.fold}")
            if not claim_task(task.folder):
                held.append(task)  # another invocation is training it
                continue
            try:
                task.state = run_state(task.folder)  # it may have been finished meanwhile
                if task.state != "done":
                    _run_task(task, cases_by_id, dataset_ref)
                    ran += 1
            finally:
                release_task(task.folder)
            bar.update(1)
    finally:
        bar.close()
    # a run another invocation held when this one passed it may have finished since
    held = [t for t in held if run_state(t.folder) != "done"]
    if held:
        say(
            f"{len(held)} run(s) still being trained by another invocation, not run here: "
            + ", ".join(f"{t.run.name}/fold{t.fold}" for t in held)
            + "; once they end, '--report' writes the complete table"
        )
    summary = {
        "out": str(out),
        "tasks": len(tasks),
        "ran": ran,
        "reused": len(copies),
        "held_elsewhere": len(held),
        "seconds": time.monotonic() - t_start,
    }
    if report:
        summary["report"] = {k: str(v) for k, v in write_report(out).items()}
        say(
            f"wrote {summary['report']['table_md']}, table.csv, plot.png "
            f"({format_duration(summary['seconds'])} this session)"
        )
    return summary


def _plan_table(tasks: list[Task], copies: dict, record: dict) -> str:
    """What ``--plan`` prints: per run, its folds by what is left to do, and its budget."""
    rows = {}
    for task in tasks:
        state = "copy" if id(task) in copies else task.state
        rows.setdefault(task.run.name, {"done": 0, "resume": 0, "score": 0, "new": 0, "copy": 0})[state] += 1
    header = ("run", "done", "to copy", "to train", "to resume", "to score", "epochs")
    table = [header] + [
        (
            run,
            str(c["done"]),
            str(c["copy"]),
            str(c["new"]),
            str(c["resume"]),
            str(c["score"]),
            str(record["epochs"].get(run) or "-"),
        )
        for run, c in rows.items()
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join(lines + ["plan only (--plan): nothing was trained or written"])
