"""The paper's experiments as data: :class:`Run`, :class:`Experiment`, :data:`EXPERIMENTS` and the settings
they share (see :mod:`medseg3d.experiments` for why each default)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..datasets import Case, dataset_labels
from ..errors import InputError
from ..labels import get_scheme, scheme_from_labels

TRAIN_MINUTES = 260.0  # training time per experiment at default settings, shared by its runs and folds
DEFAULT_FOLDS = 5
# Normalisation of every network in every experiment (those that have a ``norm`` option). With one volume
# per batch, batch norm and instance norm train identically; at inference batch norm's running averages
# made a 10-minute ablation run of the paper's net score WT/TC/ET 0.318/0.202/0.186 on its held-out cases
# where the same weights with per-volume statistics score 0.674/0.519/0.437, and a binary tiny U-Net fold
# score WT 0.556 where per-volume statistics give 0.702 (docs/results.md); that would drown the differences
# being tested.
EXPERIMENT_NORM = {"norm": "instance"}


def net_args(net: str, *layers: dict) -> dict:
    """Network arguments: instance norm where the network has a norm option, then each layer's ``net_args``.

    Args:
        net: the registered network's name.
        layers: dicts (experiment, run) whose ``net_args`` entries are applied in order, later ones winning.
    """
    from ..nets import get_network_info

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
            raise ValueError(
                f"experiment {self.name}: reference run {self.reference!r} is not one of its runs"
            )

    def run(self, name: str) -> Run:
        """The run called ``name``; InputError (naming the runs) for an unknown one."""
        for r in self.runs:
            if r.name == name:
                return r
        raise InputError(
            f"experiment '{self.name}' has no run '{name}'; its runs: {', '.join(self.run_names)}"
        )

    @property
    def run_names(self) -> list[str]:
        """The runs' names, in order."""
        return [r.name for r in self.runs]

    @property
    def reference_run(self) -> str:
        """The run the others are compared with: ``reference``, else the first run."""
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


# the paper's Task 1 comparisons: `ablations` on BraTS, `task1` on any dataset with a dataset.json
TASK1_RUNS = (
    Run("concat-jaccard", {}, "paper's net (concat skips, multi-scale maps), Jaccard loss"),
    Run("concat-ce", {"loss": "ce"}, "same net, categorical cross-entropy"),
    Run("noskip", {"net": "kayalibay-noskip"}, "no long skip connections"),
    Run("single-map", {"net": "kayalibay-single"}, "one full-resolution map, no multi-scale maps"),
    Run("sum", {"net": "kayalibay-sum"}, "long skips merged by element-wise sum"),
)
# what the dataset's plan decides in `task1`; the runs decide network and loss, the experiment the budget
_PLANNED = ("crop", "spacing", "patch", "batch", "foreground_p", "normalize", "window", "labels", "net_args")


def _planned_settings(dataset: Path, cases: list[Case], quick: bool) -> dict:
    """The dataset's own preprocessing, patch, batch, depth and labels (``medseg3d plan``)."""
    from .planning import plan_dataset

    settings = plan_dataset(dataset).settings
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in settings.items() if k in _PLANNED}


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
            TASK1_RUNS,
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
        Experiment(
            "task1",
            "the paper's Task 1 comparisons (as `ablations`) on any dataset with a dataset.json, e.g. the "
            "hippocampus MRI: spacing, patch, batch, depth and labels from `medseg3d plan`",
            "the paper (hand MRI): multi-scale maps speed up convergence without hurting the final result; "
            "sum is slightly worse than concatenation; no long skips clearly hurts; cross-entropy detects "
            "rare classes far worse than the Jaccard loss.",
            TASK1_RUNS,
            adapt=_planned_settings,
            convergence=True,
        ),
    )
}


def get_experiment(name: str) -> Experiment:
    """The experiment grid called ``name``; InputError (naming the choices) for an unknown one."""
    if name not in EXPERIMENTS:
        raise InputError(f"unknown experiment '{name}'; choose one of {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def default_budget_minutes(experiment: Experiment, folds: int) -> float:
    """Training minutes per run and fold at default settings: :data:`TRAIN_MINUTES` shared by the grid.

    Args:
        experiment: the grid (its number of runs).
        folds: the number of folds.

    Returns:
        Minutes, rounded to 0.1.
    """
    return round(TRAIN_MINUTES / (len(experiment.runs) * folds), 1)


def train_config(overrides: dict):
    """The TrainConfig of one task: ``overrides`` over the defaults; without a ``cache``, the default cache
    folder's
    name under ``overrides["cache_root"]`` (if given), so the runs of an experiment share caches.
    """
    from ..train import TrainConfig, default_cache_dir, label_scheme

    settings = dict(overrides)
    cache_root = settings.pop("cache_root", None)
    cfg = TrainConfig.from_preset(None, **settings)
    if not cfg.cache:
        scheme = label_scheme(cfg)
        default = default_cache_dir(cfg, scheme, cfg.modalities)
        cfg.cache = str(Path(cache_root or default.parent) / default.name)
    return cfg
