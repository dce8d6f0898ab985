"""Planning an experiment folder: the arguments checked against ``experiment.json``, the split, the budget in
epochs, and one :class:`Task` per run and fold."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from ..datasets import Case, find_cases, fold_ids, load_split, make_split, save_split
from ..errors import InputError
from ..io import write_json_atomic
from ..precision import check_precision
from . import timing  # timing.measure_iteration: one place for tests to replace the timing
from .catalogue import (
    BASE,
    DEFAULT_FOLDS,
    DEFAULT_PRECISION,
    QUICK,
    QUICK_CASES,
    Experiment,
    Run,
    default_budget_minutes,
    get_experiment,
    net_args,
    train_config,
)
from .task import RESULTS_ONLY_IGNORE, Task, fold_dir, run_state


def _write_subset(cases: list[Case], path: Path) -> Path:
    """A CSV case list of ``cases`` (absolute paths): a dataset of just these cases, whatever the layout."""
    names = list(cases[0].modalities)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case", *names, "label"])
        for c in cases:
            writer.writerow(
                [
                    c.case_id,
                    *(str(Path(c.channels[m]).resolve()) for m in names),
                    str(Path(c.label).resolve()) if c.label else "",
                ]
            )
    os.replace(tmp, path)
    return path


def read_record(out: Path) -> dict | None:
    """The experiment folder's ``experiment.json``, None if it has none; InputError if it cannot be read."""
    path = out / "experiment.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable ({exc}); delete it or choose another --out") from exc


def _check_record(out: Path, old: dict | None, record: dict, budget_minutes, epochs) -> None:
    """A second invocation on ``out`` must ask for the same experiment as the first (budget arguments may be
    left out: the recorded ones apply)."""
    if old is None:
        return
    for key, what in (
        ("experiment", "experiment"),
        ("dataset", "dataset"),
        ("quick", "--quick"),
        ("folds", "--folds"),
    ):
        if old.get(key) != record.get(key):
            raise InputError(
                f"{out}: was run with {what} {old.get(key)!r}, now {record.get(key)!r}; "
                "repeat the first command's settings or choose another --out"
            )
    if not isinstance(old.get("epochs"), dict):
        raise InputError(
            f"{out}: was made by an older medseg3d that gave each run a training time instead of a number of "
            "iterations; delete the folder or choose another --out"
        )
    if budget_minutes is not None and budget_minutes != old.get("budget_minutes"):
        raise InputError(
            f"{out}: was run with --budget-minutes {old.get('budget_minutes')!r}, now {budget_minutes!r}; "
            "leave the option out to continue, or choose another --out"
        )
    if epochs is not None and set(old["epochs"].values()) != {epochs}:
        raise InputError(
            f"{out}: was run with epochs {old['epochs']}, now --epochs {epochs}; "
            "leave the option out to continue, or choose another --out"
        )


def budget_epochs(
    experiment: Experiment,
    overrides: dict[str, dict],
    cases_by_id: dict[str, Case],
    minutes: float,
    n_train: int,
) -> tuple[dict[str, int], dict[str, float]]:
    """Turn a training-time budget per run and fold into a fixed number of epochs per run.

    The iteration time is measured once, here, in one process (so the runs' times are compared as ratios
    on one machine at one moment), and the resulting epochs are recorded: every fold of a run, on any
    machine and in any sitting, trains the same number of iterations, whatever else the machine is doing.
    With ``experiment.equal == "iterations"`` every run gets the reference run's epochs;
    with ``"time"`` each run gets as many as its own iteration time allows.

    Args:
        experiment: the grid.
        overrides: each run's training settings.
        cases_by_id: the dataset's cases (the first one sets the timed input size).
        minutes: the training budget per run and fold.
        n_train: training cases per fold (iterations per epoch).

    Returns:
        (epochs by run, at least 1; measured seconds per iteration by run).
    """
    names = [r.name for r in experiment.runs]
    ref = experiment.reference_run
    measure = names if experiment.equal == "time" else [ref]
    seconds = {
        name: timing.measure_iteration(train_config(overrides[name]), cases_by_id)[0] for name in measure
    }
    epochs = {}
    for name in names:
        t_iter = seconds.get(name, seconds[ref])
        per_epoch = timing.iterations_per_epoch(overrides[name], n_train)
        epochs[name] = max(1, round(minutes * 60 / (t_iter * per_epoch)))
    return epochs, seconds


def plan_experiment(
    name: str,
    dataset,
    out,
    folds: int | None = None,
    budget_minutes: float | None = None,
    quick: bool = False,
    runs: list[str] | None = None,
    epochs: int | None = None,
    precision: str | None = None,
    write: bool = True,
) -> tuple[Experiment, list[Task], dict]:
    """Check the arguments, write ``experiment.json`` / ``split.json`` (and the quick subset), list the tasks.

    With ``write=False`` nothing is written (``--plan``): the tasks and the record are what a run would use.
    The record carries the split under ``"split"`` (not saved in ``experiment.json``).

    The budget of each run and fold is a number of epochs, fixed when the experiment folder is made:
    ``epochs`` if given, else ``budget_minutes`` (default :func:`default_budget_minutes`) turned into epochs
    by :func:`budget_epochs`. Later invocations on the same folder use the recorded epochs. So with the
    numeric ``precision`` (default :data:`DEFAULT_PRECISION`; folders from before the setting trained in
    ``auto``, which is float32 on a CPU).

    Args:
        name: the experiment grid (:data:`EXPERIMENTS`).
        dataset: the dataset folder or file.
        out: the experiment folder (made or continued).
        folds: cross-validation folds (None: the grid's default; with ``quick``, the quick cases').
        budget_minutes, epochs: the budget per run and fold; at most one of them.
        quick: a smoke run on a few cases with a tiny budget.
        runs: the grid's runs to include (None: all).
        precision: the numeric precision (None: the folder's or the default).
        write: whether to write the folder's files.

    Returns:
        (experiment, tasks in fold-major order, record): every run's fold 0 first, then fold 1, ...,
        so that an experiment stopped part-way compares all its runs on the same folds.

    Raises:
        InputError: a missing dataset, ``out`` a file, conflicting or out-of-range budget and fold options, or
            settings that differ from those the folder was made with.
    """
    experiment = get_experiment(name)
    dataset, out = Path(dataset), Path(out)
    if not dataset.exists():
        raise InputError(f"{dataset}: no such dataset folder or file; check the path")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; --out must be a folder")
    selected = [experiment.run(r) for r in runs] if runs else list(experiment.runs)
    cases = find_cases(dataset, require_label=True)
    if quick:
        folds = QUICK_CASES if folds is None else folds
        if folds != QUICK_CASES:
            raise InputError(
                f"--quick uses {QUICK_CASES} cases, hence {QUICK_CASES} folds; leave out --folds"
            )
        if budget_minutes is not None or epochs is not None:
            raise InputError("--quick sets its own budget (2 epochs of 2 iterations); leave out the budget")
        if len(cases) < QUICK_CASES:
            raise InputError(
                f"{dataset}: --quick needs at least {QUICK_CASES} labelled cases, found {len(cases)}"
            )
        cases = sorted(cases, key=lambda c: c.case_id)[:QUICK_CASES]
    folds = DEFAULT_FOLDS if folds is None else int(folds)
    if not 2 <= folds <= len(cases):
        raise InputError(f"--folds must be between 2 and the number of cases ({len(cases)}), got {folds}")
    if budget_minutes is not None and not budget_minutes > 0:
        raise InputError(f"--budget-minutes must be > 0, got {budget_minutes}")
    if epochs is not None and (int(epochs) != epochs or epochs < 1):
        raise InputError(f"--epochs must be a whole number >= 1, got {epochs}")
    if epochs is not None and budget_minutes is not None:
        raise InputError("give one budget: --epochs or --budget-minutes, not both")
    record = {
        "experiment": name,
        "dataset": str(dataset.resolve()),
        "quick": quick,
        "folds": folds,
    }
    old = read_record(out)
    _check_record(out, old, record, budget_minutes, epochs)
    if precision is not None:
        check_precision(precision)
    if old is not None:
        recorded = old.get("precision", "auto")
        if precision is not None and precision != recorded:
            raise InputError(
                f"{out}: was run with --precision {recorded}, now {precision}; "
                "leave the option out to continue, or choose another --out"
            )
        precision = recorded
    precision = precision or DEFAULT_PRECISION
    record["precision"] = precision
    if write:
        out.mkdir(parents=True, exist_ok=True)

    train_dataset = dataset
    shared: dict = {}
    if quick:
        shared["cache_root"] = str(out / "cache")
        # a CSV of the 2 cases keeps preparation to those 2 (4D MSD files need the dataset itself)
        if not any("channel_index" in c.meta for c in cases):
            train_dataset = _write_subset(cases, out / "cases.csv") if write else out / "cases.csv"
    split_path = out / "split.json"
    ids = sorted(c.case_id for c in cases)
    if split_path.is_file():
        split = load_split(split_path)
        listed = sorted({c for f in split.get("folds", []) for c in f["train"] + f["val"]})
        if split["kind"] != "kfold" or len(split["folds"]) != folds or listed != ids:
            raise InputError(
                f"{split_path}: is not a {folds}-fold split of this dataset's {len(ids)} cases; "
                "delete it or choose another --out"
            )
    else:
        split = make_split(ids, folds=folds, seed=0)
        if write:
            save_split(split, split_path)
    adapted = experiment.adapt(dataset, cases, quick) if experiment.adapt else {}
    ignore = out / ".gitignore"
    # what is worth keeping (in git, across machines) is the small text files
    if write and not ignore.exists():
        ignore.write_text(RESULTS_ONLY_IGNORE, encoding="utf-8")

    def run_overrides(run: Run, k: int) -> dict:
        overrides = {**BASE, **experiment.settings, **run.overrides, **(QUICK if quick else {}), **adapted}
        overrides["net_args"] = net_args(overrides["net"], experiment.settings, run.overrides, adapted)
        overrides.update(
            dataset=str(train_dataset),
            out=str(fold_dir(out, run.name, k)),
            fold=k,
            folds=folds,
            split_file=str(split_path),
            progress=False,
            minutes=None,
            precision=precision,
            **shared,
        )
        return overrides

    measured: dict = {}
    if old is not None:
        budget_minutes, run_epochs = old.get("budget_minutes"), dict(old["epochs"])
        missing = [r for r in experiment.run_names if r not in run_epochs]
        if missing and epochs is not None and budget_minutes is None:
            # runs added to the experiment since the folder was made, which trained a fixed --epochs
            run_epochs |= {r: int(epochs) for r in missing}
        elif missing:
            raise InputError(
                f"{out}: records no budget for run(s) {', '.join(missing)}; choose another --out"
            )
    elif quick:
        run_epochs = {r: QUICK["epochs"] for r in experiment.run_names}
    elif epochs is not None:
        run_epochs = {r: int(epochs) for r in experiment.run_names}
    elif not write:
        # --plan prints in seconds: turning minutes into epochs takes timed iterations of every network on
        # whole crops (7.7 minutes for `depth` on a loaded 2-core CPU), left to the first real start
        budget_minutes = budget_minutes or default_budget_minutes(experiment, folds)
        run_epochs = {r: None for r in experiment.run_names}
    else:
        budget_minutes = budget_minutes or default_budget_minutes(experiment, folds)
        n_train = len(fold_ids(split, 0)[0])
        run_epochs, measured = budget_epochs(
            experiment,
            {r.name: run_overrides(r, 0) for r in experiment.runs},
            {c.case_id: c for c in cases},
            budget_minutes,
            n_train,
        )
    record |= {"budget_minutes": budget_minutes, "epochs": run_epochs, "runs": experiment.run_names}
    if old is None:
        record |= {
            "equal": experiment.equal,
            "measured_seconds_per_iteration": {k: round(v, 3) for k, v in measured.items()},
            "train_dataset": str(train_dataset),
            "adapted": _jsonable(adapted),
        }
        if write:
            write_json_atomic(record, out / "experiment.json")
    else:
        record = old | record
        if write and record != old:
            write_json_atomic(record, out / "experiment.json")
    record = record | {"split": split}

    tasks = []
    for k in range(folds):
        for run in selected:
            run_epoch = run_epochs[run.name]
            overrides = run_overrides(run, k) | {"epochs": int(run_epoch) if run_epoch is not None else None}
            folder = fold_dir(out, run.name, k)
            tasks.append(Task(run, k, folder, overrides, fold_ids(split, k)[1], run_state(folder)))
    return experiment, tasks, record


def _jsonable(d: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
