"""The paper's experiments as data, and a resumable runner: ``medseg3d experiment NAME DATASET --out DIR``.

Modules: :mod:`~medseg3d.experiments.catalogue` (the grids as data), :mod:`~medseg3d.experiments.plan`
(``experiment.json``, split, budget, tasks), :mod:`~medseg3d.experiments.timing` (estimates),
:mod:`~medseg3d.experiments.runner` (claims, training, scoring), :mod:`~medseg3d.experiments.reuse`
(finished runs of other folders) and :mod:`~medseg3d.experiments.tables` (tables, statistics, plots).

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
* ``task1``: the runs of ``ablations`` on any dataset with a ``dataset.json`` (e.g. the hippocampus MRI), its
  spacing, patch, batch, depth and classes planned from the data (:mod:`~medseg3d.experiments.planning`).

Default settings (they keep each experiment under 6 hours on a 2-core CPU):

* the paper's network with instance norm (:data:`EXPERIMENT_NORM`, for every network that has the
  option: batch norm's running averages failed at inference) and Jaccard loss, BraTS classes, the brain's
  bounding box down-sampled 2x (about 72 x 88 x 72 voxels), whole crops (no patches), the paper's
  augmentation, Adam 1e-3 with a poly decay (the paper's 5e-5 is far too slow for a budget of minutes),
  validation every epoch;
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

from .catalogue import (
    BASE,
    DEFAULT_FOLDS,
    DEFAULT_PRECISION,
    EXPERIMENT_NORM,
    EXPERIMENTS,
    HAND_QUICK_SHAPE,
    HAND_SHAPE,
    PAPER_MODALITIES,
    PAPER_REGIONS,
    QUICK,
    QUICK_CASES,
    TRAIN_MINUTES,
    Experiment,
    Run,
    default_budget_minutes,
    get_experiment,
    net_args,
    train_config,
)
from .plan import budget_epochs, plan_experiment, read_record
from .reuse import adopt_run, find_reusable, reused_lines, reused_sources
from .runner import run_experiment
from .tables import (
    collect_results,
    paired_cells,
    paired_comparison,
    paired_lines,
    per_case_lines,
    report_only,
    settings_text,
    write_report,
)
from .task import RESULTS_ONLY_IGNORE, Task, claim_task, fold_dir, release_task, run_state
from .timing import (
    budget_text,
    estimate_from_finished,
    estimate_seconds,
    finished_rates,
    format_duration,
    log_rows,
    measure_iteration,
    plan_estimate_text,
    read_timing,
    speed_groups,
    trained_epochs,
    trained_seconds,
)

__all__ = [
    "BASE",
    "DEFAULT_FOLDS",
    "DEFAULT_PRECISION",
    "EXPERIMENTS",
    "EXPERIMENT_NORM",
    "HAND_QUICK_SHAPE",
    "HAND_SHAPE",
    "PAPER_MODALITIES",
    "PAPER_REGIONS",
    "QUICK",
    "QUICK_CASES",
    "RESULTS_ONLY_IGNORE",
    "TRAIN_MINUTES",
    "Experiment",
    "Run",
    "Task",
    "adopt_run",
    "budget_epochs",
    "budget_text",
    "claim_task",
    "collect_results",
    "default_budget_minutes",
    "estimate_from_finished",
    "estimate_seconds",
    "find_reusable",
    "finished_rates",
    "fold_dir",
    "format_duration",
    "get_experiment",
    "log_rows",
    "measure_iteration",
    "net_args",
    "paired_cells",
    "paired_comparison",
    "paired_lines",
    "per_case_lines",
    "plan_estimate_text",
    "plan_experiment",
    "read_record",
    "read_timing",
    "release_task",
    "report_only",
    "reused_lines",
    "reused_sources",
    "run_experiment",
    "run_state",
    "settings_text",
    "speed_groups",
    "train_config",
    "trained_epochs",
    "trained_seconds",
    "write_report",
]
