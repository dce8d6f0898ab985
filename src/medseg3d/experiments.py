"""The paper's experiments as data, and a resumable runner: ``medseg3d experiment NAME DATASET --out DIR``.

An experiment is a list of named runs; a run is a set of :class:`~medseg3d.train.TrainConfig` overrides on
top of the experiment's shared settings. Every run is trained once per cross-validation fold, its final
parameters segment the fold's validation cases on their original grid (``predict``), and those are scored
against their references (``evaluate``: per-case Dice per class and region, HD95 in mm).

Experiments (``EXPERIMENTS``):

* ``modalities``: the paper's Task 2 table: FLAIR, T1, T1c, T2 alone, FLAIR+T1c, FLAIR+T1c+T2, all four.
* ``ablations``: the paper's Task 1 comparisons on BraTS: Jaccard vs cross-entropy, no long skips,
  a single segmentation map instead of multi-scale maps, element-wise sum instead of concatenation; the
  plot adds validation Dice against epoch to test "multi-scale maps speed up convergence".
* ``losses``: Jaccard, Dice, cross-entropy, weighted cross-entropy, focal, Jaccard + cross-entropy.
* ``depth``: the paper's net against two convolutions per level (``kayalibay-deep``), twice the width
  (``base_channels=16``) and a fifth resolution level.
* ``binary``: tumour vs background: the course project's tiny U-Net with BCE (its output bias starting at
  0, and at the tumour's voxel share with ``--output-prior``) against the paper's net (with BCE on one
  sigmoid output, and with its Jaccard loss on two softmax classes).
* ``hand``: the paper's Task 1 configuration on any nnU-Net/MSD dataset: first channel only, five classes
  (``--labels hand``: 0 background, 1 metacarpals, 2 proximal, 3 middle, 4 distal phalanges), a fixed
  crop down-sampled to 120 x 120 x 64 voxels (crop and factor chosen from the first case's size).

Default settings (they keep each experiment under 6 hours on a 2-core CPU):

* the paper's network with instance norm (:data:`EXPERIMENT_NORM`, for every network that has the
  option: batch norm's running averages failed at inference) and Jaccard loss, BraTS classes, the brain's
  bounding box down-sampled 2x (about 72 x 88 x 72 voxels), whole crops (no patches), the paper's augmentation, Adam 1e-3 with a poly decay
  (the paper's 5e-5 is far too slow for a budget of minutes), validation every epoch;
* 5 folds; a training budget per run and fold of ``TRAIN_MINUTES / (runs x folds)`` minutes
  (``TRAIN_MINUTES`` = 260: 7.4 min for ``modalities``, 10.4 for ``ablations``, 8.7 for ``losses``, 13 for
  ``depth``, 13 for ``binary``, 52 for ``hand``), turned into a fixed number of epochs when the
  experiment folder is made (:func:`budget_epochs`: one training iteration is timed, and the epochs are
  recorded in ``experiment.json``). Every fold of a run then trains exactly that many iterations, in any
  sitting and on any machine: a time budget gave one run 582 to 853 iterations on different folds as the
  machine's load changed. Runs share the reference run's iterations (the paper compares at equal
  iterations), except in ``depth``, where each network gets the same time and so the larger ones fewer
  iterations. ``--budget-minutes`` sets the per-run time instead, ``--epochs`` the epochs directly; the
  rest of the 6 hours goes to caching, validation, checkpoints, prediction at full resolution and scoring;
* scoring uses the *final* parameters (``last.safetensors``), not ``model.safetensors`` (the best
  validation epoch), because the validation cases that pick the best epoch are the ones scored here.

``--quick`` is a smoke test, not a result: the first 2 cases (2 folds of 1 training + 1 validation case),
6x down-sampling (the hand task: 60 x 60 x 32), 2 epochs of 2 iterations, no augmentation; a whole
experiment takes a minute or two.

Layout of ``DIR``::

    experiment.json        what was asked; a later invocation must ask the same (or use another --out)
    split.json             the k-fold split shared by every run
    cases.csv, cache/      (--quick) the 2-case subset and its preprocessed cache
    <run>/fold<k>/         a training run folder (config.json, log.csv, last.pt, model.safetensors...),
                           train.log (epoch lines), pred/<case>.nii.gz, metrics.csv (per case), timing.json
    table.md, table.csv    mean +- std over folds of per-class and per-region Dice and per-region HD95
    plot.png               bar chart of the table (+ validation Dice against epoch for ``ablations``)

A run folder with ``metrics.csv`` is complete and skipped (its weights and predictions may be deleted: the
tables need only ``metrics.csv``, ``log.csv``, ``config.json`` and ``timing.json``; ``DIR/.gitignore`` lists
the rest, so committing ``DIR`` keeps an experiment's progress across machines and sittings); one with
``last.pt`` is resumed; a complete training without ``metrics.csv`` is only predicted and scored.

Several invocations of the same command may run at once (one per core or GPU, e.g. two shells with
``MEDSEG3D_THREADS=1`` on a 2-core machine): each takes the next run no other live process holds. A run in
progress holds ``<run>/fold<k>/claim.json`` (process id and host); a claim left by a process that has ended
on this host is taken over, one from another host must be deleted by hand if that host is gone.

Example:
    >>> from medseg3d.experiments import run_experiment
    >>> run_experiment("ablations", "../shared/data/brats2018", "runs/ablations", quick=True)
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .datasets import Case, dataset_labels, find_cases, fold_ids, load_split, make_split, save_split
from .errors import InputError
from .labels import LabelScheme, get_scheme, scheme_from_labels
from .plotting import save_figure
from .precision import check_precision

TRAIN_MINUTES = 260.0  # training time per experiment at default settings, shared by its runs and folds
DEFAULT_FOLDS = 5

# Normalisation of every network in every experiment (those that have a ``norm`` option). With one volume
# per batch, batch norm and instance norm train identically; at inference batch norm's running averages
# made a 10-minute ablation run of the paper's net score WT/TC/ET 0.318/0.202/0.186 on its held-out cases
# where the same weights with per-volume statistics score 0.674/0.519/0.437, and a binary tiny U-Net fold
# score WT 0.556 where per-volume statistics give 0.702 (docs/results.md); that would drown the differences
# being tested.
EXPERIMENT_NORM = {"norm": "instance"}


def _net_args(net: str, *layers: dict) -> dict:
    """Network arguments: instance norm where the network has a norm option, then each layer's ``net_args``."""
    from .nets import get_network_info

    args = dict(EXPERIMENT_NORM) if "norm" in get_network_info(str(net)).options() else {}
    for layer in layers:
        args.update(layer.get("net_args") or {})
    return args


# Shared by every BraTS experiment (see the module docstring for why each value).
BASE: dict = {
    "net": "kayalibay",
    "loss": "jaccard",
    "labels": "brats",
    "crop": "bbox",
    "downsample": 2.0,
    "patch": None,
    "augment": "paper",
    "lr": 1e-3,
    "schedule": "poly",
    "val_every": 1,
    "seed": 0,
}
# --quick: strong down-sampling and a handful of iterations on 2 cases.
QUICK: dict = {
    "downsample": 6.0,
    "epochs": 2,
    "iters_per_epoch": 2,
    "val_every": 1,
    "augment": "none",
    "minutes": None,
}
QUICK_CASES = 2
# new experiment folders train in mixed precision (bfloat16 on CPUs that have it: about 2.2x faster per
# iteration on the build machine, with the same losses; docs/results.md); older folders keep their float32
DEFAULT_PRECISION = "mixed"
HAND_SHAPE = (120, 120, 64)
HAND_QUICK_SHAPE = (60, 60, 32)

# The paper's numbers (docs: kayalibay2017.md section 5). BRATS 2015 has five classes; BraTS 2017+ merges
# necrosis and non-enhancing tumour into one class (NCR/NET), so the class columns do not map one to one.
PAPER_MODALITIES = {
    "columns": ("necrosis", "edema", "enhancing", "non-enhancing"),
    "rows": {
        "flair": (0.19, 0.74, 0.28, 0.36),
        "t1": (0.27, 0.56, 0.26, 0.40),
        "t1ce": (0.47, 0.61, 0.38, 0.74),
        "t2": (0.34, 0.69, 0.29, 0.45),
        "flair+t1ce": (0.47, 0.81, 0.47, 0.78),
        "flair+t1ce+t2": (0.55, 0.82, 0.49, 0.80),
        "all": (0.49, 0.84, 0.50, 0.80),
    },
}
PAPER_REGIONS = {"WT": 0.85, "TC": 0.72, "ET": 0.61}  # BRATS 2015 test set, the paper's final network


@dataclass(frozen=True)
class Run:
    """One named variant: TrainConfig overrides and a short description."""

    name: str
    overrides: dict
    description: str


@dataclass(frozen=True)
class Experiment:
    """A grid of runs with shared settings.

    Attributes:
        name: registry name.
        description: one line.
        claim: what the paper says that this experiment tests (for the report).
        runs: the variants, in table order.
        reference: the run the others are compared with (paired differences, per-case order, the timed run
            of an ``"iterations"`` budget); default the first run.
        settings: overrides shared by every run (on top of :data:`BASE`).
        adapt: optional ``adapt(dataset, cases, quick) -> overrides`` for settings that depend on the data.
        convergence: plot validation Dice against epoch per run.
        equal: what the runs share: ``"iterations"`` (every run trains as many iterations as the reference
            run can in the budget) or ``"time"`` (each run as many as it can in the budget, so that larger
            networks train fewer iterations).
    """

    name: str
    description: str
    claim: str
    runs: tuple[Run, ...]
    settings: dict = field(default_factory=dict)
    adapt: Callable[[Path, list[Case], bool], dict] | None = None
    convergence: bool = False
    equal: str = "iterations"
    reference: str | None = None

    def __post_init__(self):
        if self.reference is not None and self.reference not in self.run_names:
            raise ValueError(f"experiment {self.name}: reference run {self.reference!r} is not one of its runs")

    def run(self, name: str) -> Run:
        for r in self.runs:
            if r.name == name:
                return r
        raise InputError(
            f"experiment '{self.name}' has no run '{name}'; its runs: {', '.join(self.run_names)}"
        )

    @property
    def run_names(self) -> list[str]:
        return [r.name for r in self.runs]

    @property
    def reference_run(self) -> str:
        return self.reference or self.runs[0].name


def _hand_settings(dataset: Path, cases: list[Case], quick: bool) -> dict:
    """One channel, the hand label scheme, a fixed crop that down-samples to 120 x 120 x 64 voxels."""
    labels = dataset_labels(dataset)
    if labels is not None:
        values = scheme_from_labels(labels).values
        if values != get_scheme("hand").values:
            raise InputError(
                f"{dataset}: dataset.json labels {list(values)}; the hand configuration needs five "
                "classes with values 0-4 (background and four bone groups)"
            )
    first = cases[0]
    modality = first.modalities[0]
    _, _, volume = next(first.select([modality]).read_channels())
    target = HAND_QUICK_SHAPE if quick else HAND_SHAPE
    shape = volume.array.shape[:3]
    # one factor for all axes (isotropic, as the paper's 480x480x280 -> 120x120x70); the axes with room to
    # spare are then cropped around the hand (280 / 4 = 70 -> 64 slices)
    factor = min(s / t for s, t in zip(shape, target))
    crop = tuple(round(t * factor) for t in target)
    return {
        "modalities": (modality,),
        "labels": "hand",
        "crop": "fixed",
        "crop_size": crop,
        "downsample": float(factor),
    }


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            "modalities",
            "the paper's Task 2 table: which MR sequences the network needs",
            "the paper's table: FLAIR+T1c+T2 and all four are best; T1 alone is worst; T1c carries the core.",
            (
                Run("flair", {"modalities": ("flair",)}, "FLAIR alone"),
                Run("t1", {"modalities": ("t1",)}, "T1 alone"),
                Run("t1ce", {"modalities": ("t1ce",)}, "T1c alone"),
                Run("t2", {"modalities": ("t2",)}, "T2 alone"),
                Run("flair+t1ce", {"modalities": ("flair", "t1ce")}, "FLAIR and T1c"),
                Run("flair+t1ce+t2", {"modalities": ("flair", "t1ce", "t2")}, "FLAIR, T1c and T2"),
                Run("all", {"modalities": ("flair", "t1", "t1ce", "t2")}, "all four"),
            ),
            reference="all",
        ),
        Experiment(
            "ablations",
            "the paper's Task 1 comparisons, on BraTS: loss, long skips, multi-scale maps, skip merge",
            "the paper: multi-scale maps speed up convergence without hurting the final result; "
            "element-wise sum is slightly worse than concatenation; removing long skips clearly hurts; "
            "cross-entropy detects rare classes far worse than the Jaccard loss.",
            (
                Run("concat-jaccard", {}, "paper's net (concat skips, multi-scale maps), Jaccard loss"),
                Run("concat-ce", {"loss": "ce"}, "same net, categorical cross-entropy"),
                Run("noskip", {"net": "kayalibay-noskip"}, "no long skip connections"),
                Run(
                    "single-map", {"net": "kayalibay-single"}, "one full-resolution map, no multi-scale maps"
                ),
                Run("sum", {"net": "kayalibay-sum"}, "long skips merged by element-wise sum"),
            ),
            convergence=True,
        ),
        Experiment(
            "losses",
            "the seed's proposed loss improvements on the paper's network",
            "the seed proposes focal loss and weighted cross-entropy as improvements over the paper's "
            "Jaccard loss.",
            (
                Run("jaccard", {"loss": "jaccard"}, "Tanimoto Jaccard as the paper coded it"),
                Run("dice", {"loss": "dice"}, "soft Dice, V-Net form"),
                Run("ce", {"loss": "ce"}, "categorical cross-entropy"),
                Run("wce", {"loss": "wce"}, "cross-entropy weighted by inverse class frequency"),
                Run("focal", {"loss": "focal"}, "focal loss (gamma 2)"),
                Run("jaccard+ce", {"loss": "jaccard+ce"}, "Jaccard + cross-entropy"),
            ),
        ),
        Experiment(
            "depth",
            "deeper and wider variants of the paper's network (the seed's 'deeper architectures')",
            "the seed expects deeper architectures with more contracting and expanding blocks to help.",
            (
                Run("paper", {}, "kayalibay: 4 levels, 8-64 channels, one conv per level (410k parameters)"),
                Run(
                    "deep",
                    {"net": "kayalibay-deep"},
                    "two convolutions per level, residual (690k parameters)",
                ),
                Run(
                    "wide",
                    {"net_args": {"base_channels": 16}},
                    "twice the width: 16-128 channels (1.63M parameters)",
                ),
                Run(
                    "five-levels",
                    {"net_args": {"levels": 5}},
                    "a fifth resolution level (1/16), 8-128 channels (1.67M parameters)",
                ),
            ),
            equal="time",
        ),
        Experiment(
            "binary",
            "the course project's set-up (tumour vs background, tiny U-Net, BCE) against the paper's net",
            "(ours, not the paper's) the paper's network should segment the whole tumour at least as well "
            "as a 70k-parameter binary U-Net.",
            (
                Run(
                    "tiny-unet-bce",
                    {"net": "tiny-unet", "labels": "binary-regions", "loss": "bce"},
                    "tiny 3D U-Net (70k parameters), one sigmoid output, binary cross-entropy",
                ),
                Run(
                    "tiny-unet-bce-prior",
                    {"net": "tiny-unet", "labels": "binary-regions", "loss": "bce", "output_prior": True},
                    "the same, its output bias started at the tumour's voxel share (--output-prior)",
                ),
                Run(
                    "kayalibay-bce",
                    {"labels": "binary-regions", "loss": "bce"},
                    "paper's net, one sigmoid output, binary cross-entropy",
                ),
                Run(
                    "kayalibay-jaccard",
                    {"labels": "binary", "loss": "jaccard"},
                    "paper's net, two softmax classes, Jaccard loss",
                ),
            ),
            # the course project's net, trained: with its output bias at 0 it did not learn in 640 iterations
            reference="tiny-unet-bce-prior",
        ),
        Experiment(
            "hand",
            "the paper's Task 1 configuration (hand MRI): one channel, five classes, 120 x 120 x 64 voxels",
            "none: the paper's Task 1 set-up, for any nnU-Net/MSD dataset with labels 0-4 (the hand MRI "
            "set is not public).",
            (Run("kayalibay", {}, "paper's net, Jaccard loss, one channel, five classes"),),
            adapt=_hand_settings,
        ),
    )
}


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise InputError(f"unknown experiment '{name}'; choose one of {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def default_budget_minutes(experiment: Experiment, folds: int) -> float:
    """Training minutes per run and fold at default settings: :data:`TRAIN_MINUTES` shared by the grid."""
    return round(TRAIN_MINUTES / (len(experiment.runs) * folds), 1)


# ------------------------------------------------------------------------------------------------ planning


@dataclass
class Task:
    """One run on one fold, with its training settings and state."""

    run: Run
    fold: int
    folder: Path
    overrides: dict
    val_ids: list[str]
    state: str = "new"  # new | resume | score | done


def _fold_dir(out: Path, run: str, fold: int) -> Path:
    return out / run / f"fold{fold}"


# Written as DIR/.gitignore: a run's tables need only its metrics.csv, log.csv, config.json and timing.json,
# so committing DIR keeps every finished run (a later invocation skips it) without weights or predictions.
RESULTS_ONLY_IGNORE = """# written by medseg3d experiment: keep the small text files of finished runs, not weights or images
*.pt
*.safetensors
*.onnx
pred/
cache/
claim.json
"""


def _state(folder: Path) -> str:
    if (folder / "metrics.csv").is_file():  # scored: the tables need nothing else of the run
        return "done"
    if (folder / "model.safetensors").is_file():
        return "score"
    if (folder / "last.pt").is_file():
        return "resume"
    return "new"


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


def _atomic_json(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _read_record(out: Path) -> dict | None:
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
    experiment: Experiment, overrides: dict[str, dict], cases_by_id: dict[str, Case], minutes: float, n_train: int
) -> tuple[dict[str, int], dict[str, float]]:
    """Turn a training-time budget per run and fold into a fixed number of epochs per run.

    The iteration time is measured once, here, in one process (so the runs' times are compared as ratios
    on one machine at one moment), and the resulting epochs are recorded: every fold of a run, on any
    machine and in any sitting, trains the same number of iterations, whatever else the machine is doing.
    With ``experiment.equal == "iterations"`` every run gets the reference run's epochs;
    with ``"time"`` each run gets as many as its own iteration time allows.

    Returns (epochs by run, measured seconds per iteration by run).
    """
    names = [r.name for r in experiment.runs]
    ref = experiment.reference_run
    measure = names if experiment.equal == "time" else [ref]
    seconds = {name: _measure_iteration(_train_config(overrides[name]), cases_by_id)[0] for name in measure}
    epochs = {}
    for name in names:
        t_iter = seconds.get(name, seconds[ref])
        per_epoch = overrides[name].get("iters_per_epoch") or n_train
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

    Returns (experiment, tasks in fold-major order, record): every run's fold 0 first, then fold 1, ...,
    so that an experiment stopped part-way compares all its runs on the same folds.
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
    old = _read_record(out)
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
    if write and not ignore.exists():  # what is worth keeping (in git, across machines) is the small text files
        ignore.write_text(RESULTS_ONLY_IGNORE, encoding="utf-8")

    def run_overrides(run: Run, k: int) -> dict:
        overrides = {**BASE, **experiment.settings, **run.overrides, **(QUICK if quick else {}), **adapted}
        overrides["net_args"] = _net_args(overrides["net"], experiment.settings, run.overrides, adapted)
        overrides.update(
            dataset=str(train_dataset),
            out=str(_fold_dir(out, run.name, k)),
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
            raise InputError(f"{out}: records no budget for run(s) {', '.join(missing)}; choose another --out")
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
            _atomic_json(record, out / "experiment.json")
    else:
        record = old | record
        if write and record != old:
            _atomic_json(record, out / "experiment.json")
    record = record | {"split": split}

    tasks = []
    for k in range(folds):
        for run in selected:
            run_epoch = run_epochs[run.name]
            overrides = run_overrides(run, k) | {"epochs": int(run_epoch) if run_epoch is not None else None}
            folder = _fold_dir(out, run.name, k)
            tasks.append(Task(run, k, folder, overrides, fold_ids(split, k)[1], _state(folder)))
    return experiment, tasks, record


def _jsonable(d: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def _train_config(overrides: dict):
    from .train import TrainConfig, default_cache_dir

    settings = dict(overrides)
    cache_root = settings.pop("cache_root", None)
    cfg = TrainConfig.from_preset(None, **settings)
    if not cfg.cache:
        scheme = get_scheme(cfg.labels)
        default = default_cache_dir(cfg, scheme, cfg.modalities)
        cfg.cache = str(Path(cache_root or default.parent) / default.name)
    return cfg


# ------------------------------------------------------------------------------------------------- timing


def _measure_iteration(cfg, cases_by_id: dict[str, Case]) -> tuple[float, float]:
    """Seconds of one training iteration and of one validation forward pass of ``cfg``'s network, timed on
    a random input of the size a case has after preprocessing (first case's grid, down-sampled)."""
    import torch

    from .io import read_volume
    from .losses import build_loss
    from .nets import build_network
    from .precision import autocast
    from .preprocess import bounding_box, foreground_mask, target_shape

    scheme = get_scheme(cfg.labels)
    case = next(iter(cases_by_id.values()))
    channels = list(cfg.modalities) if cfg.modalities else list(case.modalities)
    volume = read_volume(case.channels[channels[0]])
    shape = volume.array.shape[:3]
    if cfg.crop == "fixed" and cfg.crop_size:
        shape = cfg.crop_size
    elif cfg.crop == "bbox":  # the first case's own bounding box (a brain: about 140 x 170 x 140 mm)
        start, stop = bounding_box(foreground_mask(volume.array[None, ..., 0] if volume.array.ndim == 4
                                                   else volume.array[None]), cfg.prep_config().margin)
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
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for _ in range(4):  # the first iteration also pays for warm-up: the median of the next three
        t0 = time.monotonic()
        with autocast(cfg.precision, "cpu"):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.monotonic() - t0)
    t_iter = float(np.median(times[1:]))
    model.eval()
    t0 = time.monotonic()
    with torch.no_grad(), autocast(cfg.precision, "cpu"):
        model(x)
    return t_iter, time.monotonic() - t0


# the settings that decide the speed of a training iteration (one timing per distinct combination)
_SPEED_KEYS = ("net", "net_args", "labels", "modalities", "crop", "crop_size", "downsample", "spacing", "patch",
               "precision", "batch")
# per validation case, besides the network: reading the channels, resampling back, writing, scoring (HD95)
_SECONDS_PER_SCORED_CASE = 8.0
# per training run: start-up (cache check, network, split); per epoch: checkpoint, log and curves
_SECONDS_PER_RUN = 5.0
_SECONDS_PER_EPOCH = 1.0


def estimate_seconds(tasks: list[Task], t_iter: float, t_forward: float, n_train: int) -> float:
    """Rough wall time of the pending tasks: training budget (or epochs x iterations x ``t_iter``),
    validation passes, checkpoints, and prediction + scoring of the validation cases. Preparing a cache
    the first time (a few seconds per case) comes on top."""
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
        per_epoch = (o.get("iters_per_epoch") or n_train) * t_iter
        if o.get("minutes"):
            train_s = o["minutes"] * 60 - _trained_seconds(task.folder)
            epochs = train_s / max(per_epoch, 1e-6)
        else:
            epochs = o["epochs"] - _trained_epochs(task.folder)
            train_s = epochs * per_epoch
        epochs = max(epochs, 0.0)
        validation = epochs / max(o.get("val_every") or 1, 1) * n_val * t_forward
        total += max(train_s, 0.0) + validation + epochs * _SECONDS_PER_EPOCH + _SECONDS_PER_RUN + score
    return total


def _read_timing(folder: Path) -> dict:
    """A run's ``timing.json`` (wall seconds of training and scoring, summed over sittings); ``{}`` if none."""
    path = folder / "timing.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def finished_rates(tasks: list[Task], n_train: int) -> tuple[dict[str, float], float]:
    """From the finished trainings with a ``timing.json``: wall seconds per training iteration (validation
    and checkpoints included) per run name, key ``""`` over all of them, and the mean scoring seconds of a
    fold. ``({}, 0.0)`` if none has finished."""
    seconds: dict[str, float] = {}
    iterations: dict[str, float] = {}
    scoring = []
    for task in tasks:
        if task.state != "done" or not task.overrides.get("epochs"):
            continue
        try:
            timing = _read_timing(task.folder)
        except (OSError, json.JSONDecodeError):
            continue
        wall = float(timing.get("train_wall_seconds", 0.0))
        if wall <= 0:
            continue
        scoring.append(float(timing.get("score_wall_seconds", 0.0)))
        its = task.overrides["epochs"] * (task.overrides.get("iters_per_epoch") or n_train)
        for key in (task.run.name, ""):
            seconds[key] = seconds.get(key, 0.0) + wall
            iterations[key] = iterations.get(key, 0.0) + its
    rates = {k: seconds[k] / iterations[k] for k in seconds}
    return rates, (float(np.mean(scoring)) if scoring else 0.0)


def estimate_from_finished(tasks: list[Task], rates: dict[str, float], score_seconds: float, n_train: int) -> float:
    """Wall time of the pending fixed-epoch tasks at the pace of the finished ones (:func:`finished_rates`):
    a run's own pace where it has finished a fold, else the experiment's; plus scoring."""
    total = 0.0
    for task in tasks:
        if task.state == "done":
            continue
        if task.state != "score":
            epochs = task.overrides["epochs"] - (_trained_epochs(task.folder) if task.state == "resume" else 0)
            iterations = max(epochs, 0) * (task.overrides.get("iters_per_epoch") or n_train)
            total += iterations * rates.get(task.run.name, rates[""])
        total += score_seconds
    return total


def budget_text(record: dict, n_train: int) -> str:
    """The budget of a run and fold, in words, from ``experiment.json``."""
    if record["quick"]:
        return f"{QUICK['epochs']} epochs of {QUICK['iters_per_epoch']} iterations per run and fold"
    epochs = record["epochs"]
    minutes = record.get("budget_minutes")
    seconds = record.get("measured_seconds_per_iteration") or {}
    if None in epochs.values():  # a --plan of a new folder: not timed yet
        return (f"{minutes:g} training minutes per run and fold, turned into epochs by timing each network "
                "when the experiment starts")
    if len(set(epochs.values())) == 1:
        (e,) = set(epochs.values())
        text = f"{e} epochs of {n_train} iterations ({e * n_train} iterations) per run and fold"
        if minutes and seconds:
            text += (
                f", fixed from a {minutes:g}-minute budget at the {next(iter(seconds.values())):.2f} s per "
                "iteration measured when the experiment started"
            )
        return text
    per_run = ", ".join(f"{run} {e}" for run, e in epochs.items())
    text = f"epochs of {n_train} iterations per run and fold: {per_run}"
    if minutes:
        text += f" (the same {minutes:g} training minutes for each, at iteration times measured side by side)"
    return text


def _log_rows(folder: Path) -> list[dict]:
    path = folder / "log.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _trained_seconds(folder: Path) -> float:
    rows = _log_rows(folder)
    return float(rows[-1].get("seconds") or 0) if rows else 0.0


def _trained_epochs(folder: Path) -> int:
    rows = _log_rows(folder)
    return int(rows[-1].get("epoch") or 0) if rows else 0


def format_duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


# ---------------------------------------------------------------------------------------------- execution


def _score_task(task: Task, cfg, cases_by_id: dict[str, Case], dataset_ref: Path) -> None:
    """Segment the fold's validation cases with the final parameters and score them (metrics.csv)."""
    from .evaluate import evaluate
    from .io import image_suffix, write_volume
    from .predict import load_model, segment_arrays

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
    path = folder / "claim.json"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()


def _run_task(task: Task, cases_by_id: dict[str, Case], dataset_ref: Path) -> dict:
    from .train import train

    timing = {}
    cfg = _train_config(task.overrides)
    if task.state in ("new", "resume"):
        cfg.resume = task.state == "resume"
        t0 = time.monotonic()
        task.folder.mkdir(parents=True, exist_ok=True)
        # the epoch lines of train() go to the run's own log; the console keeps the bar over runs
        with open(task.folder / "train.log", "a") as log, contextlib.redirect_stdout(log):
            train(cfg)
        timing["train_wall_seconds"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    _score_task(task, cfg, cases_by_id, dataset_ref)
    timing["score_wall_seconds"] = round(time.monotonic() - t0, 1)
    old = _read_timing(task.folder)
    for key, value in timing.items():
        timing[key] = round(value + old.get(key, 0.0), 1)
    _atomic_json(old | timing, task.folder / "timing.json")
    task.state = "done"
    return timing


# ------------------------------------------------------------------------------------------------- reuse

# config.json entries that say where a run lived or what it cached, not what it trained
_PLACE_KEYS = frozenset({"out", "split_file", "cache", "resume", "progress", "software", "dataset"})
# copied from a reused run; metrics.csv last, because its presence marks a run as done (see _state)
_REUSED_FILES = ("config.json", "log.csv", "timing.json", "train.log", "curves.png", "metrics.csv")


def _training_settings(config: dict, modalities, train_ids, val_ids) -> dict:
    """What decides the outcome of a training: every :class:`TrainConfig` setting except where it lives
    (settings an older run did not record take their defaults), its channels, its cases and its batch."""
    from .datasets import normalise_modalities
    from .train import TrainConfig

    settings = TrainConfig().to_dict() | {k: v for k, v in config.items() if k in TrainConfig.__dataclass_fields__}
    settings = {k: v for k, v in settings.items() if k not in _PLACE_KEYS}
    global_batch = settings["batch"] * settings["accumulate"]
    settings["iters_per_epoch"] = settings["iters_per_epoch"] or max(1, math.ceil(len(train_ids) / global_batch))
    settings["modalities"] = list(normalise_modalities(settings["modalities"] or modalities))
    settings |= {"train_cases": sorted(train_ids), "val_cases": sorted(val_ids), "global_batch": global_batch}
    return json.loads(json.dumps(settings))  # tuples -> lists, as in a config.json


def find_reusable(tasks: list[Task], sources: list[Path], record: dict, split: dict, modalities) -> dict:
    """Finished runs in other experiment folders (``sources``) that trained exactly what a new task of this
    experiment would: same settings, channels, budget, dataset and fold cases. Returns {task index: run folder}.

    Training on a CPU is deterministic for a given configuration (seeded sampling and augmentation: the
    ``all`` run of ``modalities`` and ``concat-jaccard`` of ``ablations``, trained a day apart in
    bfloat16, logged the same loss and validation scores at every epoch and the same per-case scores on
    every fold), so training such a run again would only repeat it.
    """
    found: dict[int, Path] = {}
    if record["quick"] or not sources:
        return found
    candidates = []  # (settings, folder) of every finished run in the sources
    for source in sources:
        source_record = _read_record(source)
        if source_record is None:
            raise InputError(f"{source}: not an experiment folder (no experiment.json); check --reuse")
        if source_record["dataset"] != record["dataset"] or source_record.get("quick"):
            continue
        for config_path in sorted(source.glob("*/fold*/config.json")):
            folder = config_path.parent
            if _state(folder) != "done" or (folder / "reused.json").is_file():
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


def _adopt_run(task: Task, source: Path) -> None:
    """Copy the result files of ``source`` (a finished run with the same training) into ``task``'s folder."""
    import shutil

    task.folder.mkdir(parents=True, exist_ok=True)
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    _atomic_json(
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


def _reused_lines(out: Path) -> list[str]:
    lines = []
    for run, found in reused_sources(out).items():
        copies = "; ".join(
            f"fold{'s' if len(folds) > 1 else ''} {', '.join(map(str, sorted(folds)))} from `{name}`"
            for name, folds in found.items()
        )
        lines.append(
            f"- reused, not trained again: `{run}` {copies} (the same training settings, channels, budget and "
            "fold cases; `reused.json` in the fold folder)"
        )
    return lines


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
            raise InputError(f"{source}: is the experiment folder itself; --reuse takes other experiment folders")
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
            f"estimated time: {format_duration(eta)} for one invocation (at the {rates['']:.2f} s per training "
            f"iteration, validation included, of the {n_done} finished trainings; concurrent invocations share it)"
        )
    elif pending and plan:
        say(f"estimated time: {plan_estimate_text(pending, record, n_train)}")
    elif pending:
        eta, measured_text = 0.0, []
        for group in speed_groups(pending):
            t_iter, t_forward = _measure_iteration(_train_config(group[0].overrides), cases_by_id)
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
        return {"out": str(out), "tasks": len(tasks), "ran": 0, "reused": 0, "to_copy": len(copies),
                "to_train": sum(t.state in ("new", "resume") for t in pending),
                "to_score": sum(t.state == "score" for t in pending), "seconds": 0.0}
    t_start = time.monotonic()
    for task in tasks:  # copies first: they take a moment
        if id(task) in copies and claim_task(task.folder):
            try:
                if _state(task.folder) == "new":
                    _adopt_run(task, copies[id(task)])
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
                task.state = _state(task.folder)  # it may have been finished meanwhile
                if task.state != "done":
                    _run_task(task, cases_by_id, dataset_ref)
                    ran += 1
            finally:
                release_task(task.folder)
            bar.update(1)
    finally:
        bar.close()
    # a run another invocation held when this one passed it may have finished since
    held = [t for t in held if _state(t.folder) != "done"]
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
    minutes budget of each training, or the iteration times recorded when the folder was made."""
    to_train = [t for t in pending if t.state in ("new", "resume")]
    scoring = sum(len(t.val_ids) for t in pending) * _SECONDS_PER_SCORED_CASE
    minutes = record.get("budget_minutes")
    measured = record.get("measured_seconds_per_iteration") or {}
    if minutes and all(t.state == "new" for t in to_train):
        total = len(to_train) * (minutes * 60 + _SECONDS_PER_RUN) + scoring
        return (f"about {format_duration(total)} ({len(to_train)} trainings of {minutes:g} minutes, then scoring; "
                "nothing timed for --plan)")
    if measured and all(t.overrides.get("epochs") for t in to_train):
        reference = next(iter(measured.values()))
        total = scoring
        for task in to_train:
            epochs = task.overrides["epochs"] - (_trained_epochs(task.folder) if task.state == "resume" else 0)
            iterations = max(epochs, 0) * (task.overrides.get("iters_per_epoch") or n_train)
            total += iterations * measured.get(task.run.name, reference) + _SECONDS_PER_RUN
        return (f"about {format_duration(total)} (at the seconds per iteration measured when the experiment started; "
                "nothing timed for --plan)")
    return ("not estimated by --plan (it times nothing, to print at once); a run without --plan times one "
            "iteration per network first (minutes on a CPU) and prints its estimate")


def _plan_table(tasks: list[Task], copies: dict, record: dict) -> str:
    """What ``--plan`` prints: per run, its folds by what is left to do, and its budget."""
    rows = {}
    for task in tasks:
        state = "copy" if id(task) in copies else task.state
        rows.setdefault(task.run.name, {"done": 0, "resume": 0, "score": 0, "new": 0, "copy": 0})[state] += 1
    header = ("run", "done", "to copy", "to train", "to resume", "to score", "epochs")
    table = [header] + [
        (run, str(c["done"]), str(c["copy"]), str(c["new"]), str(c["resume"]), str(c["score"]),
         str(record["epochs"].get(run) or "-"))
        for run, c in rows.items()
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join(lines + ["plan only (--plan): nothing was trained or written"])


# ------------------------------------------------------------------------------------------------ report


def _fold_means(rows: list[dict], columns: list[str]) -> dict[str, float]:
    """Mean over cases of each column, NaN (e.g. HD95 with one empty mask) left out."""
    out = {}
    for c in columns:
        values = np.array([float(r[c]) for r in rows if r.get(c) not in (None, "")], dtype=float)
        values = values[~np.isnan(values)]
        out[c] = float(values.mean()) if values.size else math.nan
    return out


def _columns(scheme: LabelScheme) -> list[str]:
    return (
        [f"dice_{n}" for n in scheme.class_names[1:]]
        + [f"dice_{r}" for r in scheme.regions]
        + [f"hd95_{r}" for r in scheme.regions]
    )


def collect_results(out) -> tuple[dict, list[dict], dict, dict[str, dict[str, dict]]]:
    """Read an experiment folder: (record, one row per run with mean/std over folds, validation curves,
    per-case scores).

    Each row holds ``run``, ``description``, ``folds_done``, ``<metric>_mean`` and ``<metric>_std`` (sample
    standard deviation over folds; NaN with fewer than 2 folds), ``iterations`` and ``train_minutes`` (means
    over folds). Curves map run -> (epochs, mean validation score over folds), over the folds that every run
    with a curve has finished (so that the runs' curves average the same validation cases) and the epochs
    all those folds reached. Per-case scores map run -> case -> that case's row of ``metrics.csv`` (floats)
    plus ``fold``.
    """
    out = Path(out)
    path = out / "experiment.json"
    if not path.is_file():
        raise InputError(
            f"{out}: holds no experiment (no experiment.json); run `medseg3d experiment NAME "
            "DATASET --out DIR` first"
        )
    record = json.loads(path.read_text(encoding="utf-8"))
    experiment = get_experiment(record["experiment"])
    rows, fold_curves, cases = [], {}, {}
    for run in experiment.runs:
        per_fold, iters, minutes, columns = [], [], [], []
        for k in range(record["folds"]):
            folder = _fold_dir(out, run.name, k)
            if _state(folder) != "done":
                continue
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            scheme = get_scheme(config["labels"])
            columns += [c for c in _columns(scheme) if c not in columns]
            with open(folder / "metrics.csv", newline="") as fh:
                case_rows = list(csv.DictReader(fh))
            per_fold.append(_fold_means(case_rows, _columns(scheme)))
            for row in case_rows:
                values = {key: _float(v) for key, v in row.items() if key != "case"}
                cases.setdefault(run.name, {})[row["case"]] = values | {"fold": k}
            log = _log_rows(folder)
            if log:
                iters.append(float(log[-1]["iteration"]))
                minutes.append(float(log[-1]["seconds"]) / 60)
                curve = {int(r["epoch"]): float(r["score"]) for r in log if r.get("score")}
                if curve:
                    fold_curves.setdefault(run.name, {})[k] = curve
        row = {"run": run.name, "description": run.description, "folds_done": len(per_fold)}
        for c in columns:
            values = np.array([f[c] for f in per_fold], dtype=float)
            values = values[~np.isnan(values)]
            row[f"{c}_mean"] = float(values.mean()) if values.size else math.nan
            row[f"{c}_std"] = float(values.std(ddof=1)) if values.size > 1 else math.nan
        row["iterations"] = float(np.mean(iters)) if iters else math.nan
        row["train_minutes"] = float(np.mean(minutes)) if minutes else math.nan
        rows.append(row)
    curves = {}
    common = set.intersection(*(set(f) for f in fold_curves.values())) if fold_curves else set()
    for name, by_fold in fold_curves.items():
        chosen = [by_fold[k] for k in sorted(common)]
        epochs = sorted(set.intersection(*(set(c) for c in chosen))) if chosen else []
        if epochs:
            curves[name] = (epochs, [float(np.mean([c[e] for c in chosen])) for e in epochs])
    return record, rows, curves, cases


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def paired_comparison(reference: dict[str, dict], other: dict[str, dict], metric: str) -> dict:
    """``other`` against ``reference`` on the cases both scored (the same cases, the same folds): mean
    per-case difference, cases better / worse, and the two-sided Wilcoxon signed-rank p-value."""
    from scipy.stats import wilcoxon

    common = sorted(set(reference) & set(other))
    pairs = [(reference[c].get(metric, math.nan), other[c].get(metric, math.nan)) for c in common]
    diffs = np.array([b - a for a, b in pairs if not (math.isnan(a) or math.isnan(b))])
    result = {"n": int(diffs.size), "mean_diff": math.nan, "better": 0, "worse": 0, "p": math.nan}
    if diffs.size:
        result.update(
            mean_diff=float(diffs.mean()), better=int((diffs > 0).sum()), worse=int((diffs < 0).sum())
        )
        if np.count_nonzero(diffs) >= 2:
            result["p"] = float(wilcoxon(diffs).pvalue)
    return result


def paired_cells(
    reference: dict[str, dict], other: dict[str, dict], metrics: list[str], na: str = "-"
) -> tuple[int, list[str]]:
    """(cases paired, one cell per metric): ``other`` against ``reference`` as "mean difference (cases
    better/worse, p P)", ``na`` for a p-value that cannot be computed, "-" where no case pairs."""
    cells, n = [], 0
    for metric in metrics:
        c = paired_comparison(reference, other, metric)
        n = max(n, c["n"])
        if not c["n"]:
            cells.append("-")
            continue
        p = na if math.isnan(c["p"]) else f"{c['p']:.2f}"
        cells.append(f"{c['mean_diff']:+.3f} ({c['better']}/{c['worse']}, p {p})")
    return n, cells


def _paired_lines(experiment: Experiment, cases: dict[str, dict[str, dict]], metrics: list[str]) -> list[str]:
    """Each run against the reference run, case by case."""
    ref = experiment.reference_run
    others = [r.name for r in experiment.runs if r.name != ref and r.name in cases]
    dice = [m for m in metrics if m.startswith("dice_")]
    if ref not in cases or not others or not dice:
        return []
    lines = [
        "",
        f"## Paired against `{ref}`",
        "",
        (
            f"Per-case Dice of each run minus `{ref}`'s on the same cases (scored by models of the same fold): "
            "mean difference, then cases better / worse, then the two-sided Wilcoxon signed-rank p-value. "
            "With 20 cases, p < 0.05 needs a consistent difference; a difference of the mean with p > 0.2 is "
            "noise at this budget."
        ),
        "",
        "| run | cases | " + " | ".join(_header(m) for m in dice) + " |",
        "|---|---|" + "---|" * len(dice),
    ]
    for name in others:
        n, cells = paired_cells(cases[ref], cases[name], dice)
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return lines


def _per_case_lines(experiment: Experiment, cases: dict[str, dict[str, dict]]) -> list[str]:
    """Every scored case, worst first by the reference run's first region (or the first scored run's, until
    the reference has scores): each run's region Dice."""
    names = [r.name for r in experiment.runs if r.name in cases]
    if not names:
        return []
    order_by = experiment.reference_run if experiment.reference_run in names else names[0]
    first = cases[order_by]
    regions = [k[len("dice_"):] for k in next(iter(first.values())) if k.startswith("dice_")]
    regions = [r for r in ("WT", "TC", "ET") if r in regions] or regions[-1:]
    key = f"dice_{regions[0]}"
    all_cases = sorted({c for run in cases.values() for c in run},
                       key=lambda c: (first.get(c, {}).get(key, math.inf), c))
    vol = f"vol_ref_{regions[0]}"
    lines = [
        "",
        "## Per case",
        "",
        (
            f"Dice per case ({' / '.join(regions)}), worst `{order_by}` {regions[0]} first; each case was "
            f"scored by the model of the fold that held it out; reference {regions[0]} volume in ml."
        ),
        "",
        f"| case | fold | {regions[0]} ml | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for c in all_cases:
        any_row = next(cases[n][c] for n in names if c in cases[n])
        ml = any_row.get(vol, math.nan)
        cells = []
        for n in names:
            row = cases[n].get(c)
            cells.append(" / ".join(f"{row.get(f'dice_{r}', math.nan):.2f}" for r in regions) if row else "-")
        ml_text = "-" if math.isnan(ml) else f"{ml:.0f}"
        lines.append(f"| {c} | {any_row['fold']} | {ml_text} | " + " | ".join(cells) + " |")
    return lines


def _metric_columns(rows: list[dict]) -> list[str]:
    seen: list[str] = []
    for row in rows:
        seen += [k[: -len("_mean")] for k in row if k.endswith("_mean") and k[: -len("_mean")] not in seen]
    return seen


def _cell(row: dict, metric: str, digits: int) -> str:
    mean, std = row.get(f"{metric}_mean", math.nan), row.get(f"{metric}_std", math.nan)
    if mean is None or math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f}" + ("" if math.isnan(std) else f" ± {std:.{digits}f}")


def _header(metric: str) -> str:
    kind, name = metric.split("_", 1)
    return f"HD95 {name} (mm)" if kind == "hd95" else name


def _convergence_lines(curves: dict) -> list[str]:
    if not curves:
        return []
    last = min(max(e) for e, _ in curves.values())
    marks = sorted({max(1, math.ceil(last * q)) for q in (0.25, 0.5, 1.0)})
    lines = [
        "",
        "## Convergence",
        "",
        (
            "Validation score during training (mean of the region Dice on the fold's validation cases, at "
            "the training resolution), mean over the folds that every run has finished, at epochs every run "
            f"reached; the last column averages epochs 1-{last} (higher = faster)."
        ),
        "",
        "| run | " + " | ".join(f"epoch {m}" for m in marks) + f" | mean over epochs 1-{last} |",
        "|---|" + "---|" * (len(marks) + 1),
    ]
    for run, (epochs, scores) in curves.items():
        lookup = dict(zip(epochs, scores))
        cells = [f"{lookup[m]:.3f}" if m in lookup else "-" for m in marks]
        upto = [s for e, s in zip(epochs, scores) if e <= last]
        lines.append(f"| {run} | " + " | ".join(cells) + f" | {np.mean(upto):.3f} |")
    return lines


def _paper_lines(name: str) -> list[str]:
    lines = ["", "## The paper's numbers", ""]
    if name == "modalities":
        cols = PAPER_MODALITIES["columns"]
        lines += [
            (
                "Per-class Dice on BRATS 2015 by input modalities (the seed's table). BRATS 2015 keeps "
                "necrosis and non-enhancing tumour apart; BraTS 2017+ merges them into NCR/NET, so compare "
                "the edema and enhancing columns directly and NCR/NET only loosely."
            ),
            "",
            "| modalities | " + " | ".join(cols) + " |",
            "|---|" + "---|" * len(cols),
        ]
        lines += [
            f"| {run} | " + " | ".join(f"{v:.2f}" for v in vals) + " |"
            for run, vals in PAPER_MODALITIES["rows"].items()
        ]
    elif name == "hand":
        return [
            "",
            "## The paper's numbers",
            "",
            "The hand MRI results are not in the facts file (kayalibay2017.md); the data set is not public.",
        ]
    else:
        lines += [
            "BRATS 2015 test set, the paper's final network after full training (120,000 iterations): "
            + ", ".join(f"{k} {v:.2f}" for k, v in PAPER_REGIONS.items())
            + "."
        ]
    return lines


def write_report(out) -> dict[str, Path]:
    """Write ``table.md``, ``table.csv`` and ``plot.png`` from whatever runs of ``out`` are complete."""
    from .train import software_versions

    out = Path(out)
    record, rows, curves, cases = collect_results(out)
    experiment = get_experiment(record["experiment"])
    metrics = _metric_columns(rows)

    csv_path = out / "table.csv"
    keys = (
        ["run", "description", "folds_done"]
        + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
        + ["iterations", "train_minutes"]
    )
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k, math.nan)) for k in keys})
    os.replace(tmp, csv_path)

    wall, copied = 0.0, 0
    for run in experiment.runs:
        for k in range(record["folds"]):
            folder = _fold_dir(out, run.name, k)
            if (folder / "reused.json").is_file():  # trained (and timed) in the experiment it came from
                copied += 1
                continue
            wall += sum(_read_timing(folder).values())
    sw = software_versions()
    budget = budget_text(record, len(fold_ids(load_split(out / "split.json"), 0)[0]))
    lines = [f"# Experiment `{experiment.name}`: {experiment.description}", ""]
    if record["quick"]:
        lines += [
            (
                "**QUICK SMOKE RUN (`--quick`): 2 cases, a few iterations at strong down-sampling. These "
                "numbers test the machinery; they are not results.**"
            ),
            "",
        ]
    lines += [
        f"- dataset: `{record['dataset']}`; {record['folds']}-fold cross-validation (`split.json`); {budget}",
        f"- settings: {_settings_text(record)}",
        (
            "- scored: the final parameters of each fold on that fold's validation cases, on the original "
            "grid (per-case Dice and HD95 in mm; HD95 is left out where one mask is empty); cells are mean ± "
            "sample standard deviation over folds of the per-fold mean"
        ),
        (
            f"- machine: {os.cpu_count()} CPU cores, {sw['platform']}; torch {sw['torch']}, "
            f"medseg3d {sw['medseg3d']}"
        ),
        f"- wall time of the recorded runs (training + scoring): {format_duration(wall)}"
        + (f", not counting the {copied} copied with `--reuse`" if copied else ""),
        f"- claim tested: {experiment.claim}",
    ]
    lines += _reused_lines(out)
    lines += [
        "",
        "| run | what | folds | " + " | ".join(_header(m) for m in metrics) + " | iterations | minutes |",
        "|---|---|---|" + "---|" * (len(metrics) + 2),
    ]
    for row in rows:
        if not row["folds_done"]:
            lines.append(
                f"| {row['run']} | {row['description']} | 0 | "
                + " | ".join("not yet run" for _ in metrics)
                + " | - | - |"
            )
            continue
        cells = [_cell(row, m, 1 if m.startswith("hd95") else 3) for m in metrics]
        its = "-" if math.isnan(row["iterations"]) else f"{row['iterations']:.0f}"
        mins = "-" if math.isnan(row["train_minutes"]) else f"{row['train_minutes']:.1f}"
        lines.append(
            f"| {row['run']} | {row['description']} | {row['folds_done']}/{record['folds']} | "
            + " | ".join(cells)
            + f" | {its} | {mins} |"
        )
    lines += _paired_lines(experiment, cases, metrics)
    lines += _convergence_lines(curves if experiment.convergence else {})
    lines += _per_case_lines(experiment, cases)
    lines += _paper_lines(experiment.name)
    md_path = out / "table.md"
    tmp = md_path.with_name(md_path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, md_path)
    plot_path = _plot(
        out / "plot.png", experiment, rows, metrics, curves if experiment.convergence else {}, record["quick"]
    )
    return {"table_md": md_path, "table_csv": csv_path, "plot": plot_path}


def _csv_value(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def _settings_text(record: dict) -> str:
    settings = {**BASE, **(QUICK if record["quick"] else {}), **record.get("adapted", {}),
                "precision": record.get("precision", "auto")}
    keep = (
        "net",
        "loss",
        "labels",
        "crop",
        "crop_size",
        "downsample",
        "augment",
        "lr",
        "schedule",
        "epochs",
        "iters_per_epoch",
        "precision",
    )
    return (
        ", ".join(
            f"{k}={settings[k]:.4g}" if isinstance(settings[k], float) else f"{k}={settings[k]}"
            for k in keep
            if settings.get(k) is not None
        )
        + ", norm=instance (every network that has the option)"
        + " (each run changes some of these, as its description says)"
    )


def _plot(
    path: Path, experiment: Experiment, rows: list[dict], metrics: list[str], curves: dict, quick: bool
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dice = [m for m in metrics if m.startswith("dice_")]
    done = [r for r in rows if r["folds_done"]]
    fig, axes = plt.subplots(1, 2 if curves else 1, figsize=(13 if curves else 9, 4.5), squeeze=False)
    ax = axes[0][0]
    width = 0.8 / max(len(done), 1)
    x = np.arange(len(dice))
    for i, row in enumerate(done):
        means = [row.get(f"{m}_mean", math.nan) for m in dice]
        stds = [0.0 if math.isnan(row.get(f"{m}_std", math.nan)) else row[f"{m}_std"] for m in dice]
        ax.bar(x - 0.4 + width * (i + 0.5), means, width, yerr=stds, capsize=2, label=row["run"])
    ax.set_xticks(x)
    ax.set_xticklabels([m[len("dice_") :] for m in dice])
    ax.set_ylim(0, 1)
    ax.set_ylabel("Dice (mean ± std over folds)")
    ax.set_title(f"{experiment.name}" + (" (QUICK SMOKE RUN: not a result)" if quick else ""))
    if done:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no run complete yet", ha="center", va="center", transform=ax.transAxes)
    if curves:
        ax = axes[0][1]
        for run, (epochs, scores) in curves.items():
            ax.plot(epochs, scores, marker=".", label=run)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation score (mean region Dice)")
        ax.set_ylim(0, 1)
        ax.set_title("convergence (mean over folds)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def report_only(name: str, out) -> dict[str, Path]:
    """``--report``: tables and plot from the complete runs, without training anything."""
    out = Path(out)
    path = out / "experiment.json"
    if path.is_file():
        recorded = json.loads(path.read_text(encoding="utf-8")).get("experiment")
        if recorded != name:
            raise InputError(
                f"{out}: holds experiment '{recorded}', not '{name}'; give that name or another --out"
            )
    return write_report(out)
