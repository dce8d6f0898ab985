"""A training run's settings: the presets and :class:`TrainConfig` (saved as ``config.json``), how
``--resume`` merges them, the cache folder they share, the learning-rate schedule and the model metadata
they produce."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import __version__
from ..datasets import dataset_labels, normalise_modalities
from ..errors import InputError
from ..labels import LabelScheme, get_scheme, scheme_from_labels
from ..precision import check_precision
from ..preprocess import PrepConfig
from .run_files import PREVIOUS_CHECKPOINT, read_run_settings

# The bundled BraTS model (v1): the paper's network with instance norm (batch-norm running statistics
# from one-patch batches failed on whole volumes), region (WT/TC/ET sigmoid) training with Dice+BCE
# on 2 mm voxels (`downsample` 2: a brain crop is about 72 x 88 x 70), 64^3 patches (128 mm) with
# foreground over-sampling, poly schedule, nnU-Net-like augmentation; 8,000 iterations, at most 2 hours.
# Measured choices and their effects: docs/results.md.
_BRATS = dict(
    net="kayalibay",
    net_args={"norm": "instance"},
    loss="region-dice-bce",
    labels="regions",
    lr=2e-3,
    schedule="poly",
    augment="default",
    crop="bbox",
    downsample=2.0,
    patch=(64, 64, 64),
    foreground_p=0.5,
    epochs=160,
    iters_per_epoch=50,
    minutes=120.0,
    val_every=5,
)

LOW_GRADE_2018 = ("Brats18_TCIA10_628_1", "Brats18_TCIA10_637_1", "Brats18_TCIA13_623_1")
"""The low-grade cases of the shared BraTS 2018 development set (../shared/data/README.md)."""

PRESETS: dict[str, dict] = {
    # The paper as coded: whole 144x160x128 crops (x, y, z; the code's D x H x W = 128 x 160 x 144),
    # softmax classes, Jaccard loss, Adam 5e-5, the authors' augmentation.
    "paper": dict(
        net="kayalibay",
        loss="jaccard",
        lr=5e-5,
        schedule="constant",
        augment="paper",
        crop="fixed",
        crop_size=(144, 160, 128),
        patch=None,
        labels="brats",
        val_every=5,
    ),
    # The bundled BraTS model (v1), above.
    "brats": _BRATS,
    # The refiner of a cascade (medseg3d.cascade): the bundled preset at 1 mm (no downsampling) on 64^3
    # patches (64 mm) that are mostly centred on tumour, as it only ever sees the box around the coarse
    # model's tumour. Validation windows the whole brain at 1 mm (minutes per case on a CPU), so only once, at
    # the end; the cascade is scored by archive/v2/crossval_cascade.py. Experimental: on fold 0 of the 27-case
    # CV its 64 mm field of view relabelled large tumour cores as oedema (TC 0.758 -> 0.47-0.59,
    # docs/results.md).
    "brats-refine": _BRATS | dict(downsample=1.0, foreground_p=0.9, val_every=160),
    # Version 0 of the bundled model: 1.5 mm voxels, 96^3 patches, 100 minutes (kept to reproduce it).
    "brats-v0": dict(
        net="kayalibay",
        loss="region-dice-bce",
        labels="regions",
        lr=2e-3,
        schedule="poly",
        augment="default",
        crop="bbox",
        downsample=1.5,
        patch=(96, 96, 96),
        foreground_p=0.5,
        minutes=100.0,
        val_every=5,
        iters_per_epoch=50,
    ),
    # v3 (issue #40), its two members as v2's (the v1 recipe, and the same with strong augmentation), 8,000
    # iterations each whatever the machine's speed (no minutes budget), for a dataset made by
    # `medseg3d synth-nonenhancing DATA --out V3DATA --with-originals --cases ...`: synthetic non-enhancing
    # variants train beside their parent case only (medseg3d.datasets.synthetic); the 3 low-grade cases of the
    # shared BraTS 2018 set are drawn 3 times as often (ids another dataset lacks are ignored). The plan and
    # its cost: docs/results.md, issue #40.
    "brats-v3": _BRATS | dict(minutes=None, oversample=dict.fromkeys(LOW_GRADE_2018, 3)),
    "brats-v3-strong": _BRATS
    | dict(minutes=None, augment="strong", oversample=dict.fromkeys(LOW_GRADE_2018, 3)),
    # lever 5 of #40, a candidate member not yet measured: the strong member with simulated thick slices
    "brats-v3-thick": _BRATS
    | dict(minutes=None, augment="strong-thick", oversample=dict.fromkeys(LOW_GRADE_2018, 3)),
    # A few seconds: for tests and smoke runs.
    "quick": dict(
        net="kayalibay",
        loss="jaccard-smooth",
        labels="brats",
        lr=1e-3,
        schedule="constant",
        augment="none",
        crop="bbox",
        downsample=4.0,
        patch=None,
        epochs=2,
        val_every=1,
    ),
}


@dataclass
class TrainConfig:
    """Every setting of a training run (saved as ``config.json``)."""

    dataset: str = ""
    out: str = ""
    preset: str | None = None
    net: str = "kayalibay"
    net_args: dict = field(default_factory=dict)
    loss: str = "jaccard"
    labels: str = "brats"
    modalities: tuple[str, ...] | None = None
    layout: str | None = None
    # preprocessing
    crop: str = "bbox"
    crop_size: tuple[int, int, int] | None = None
    downsample: float = 1.0
    spacing: tuple[float, float, float] | None = None
    normalize: str = "zscore"  # zscore (MRI) | window (CT: see PrepConfig) | none
    window: tuple[float, float, float, float] | None = None
    # sampling and augmentation
    patch: tuple[int, int, int] | None = None
    foreground_p: float = 0.5
    oversample: dict = field(
        default_factory=dict
    )  # case id -> how many times as often it is drawn (default 1)
    augment: str = "default"
    # optimisation
    lr: float = 5e-5
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant | poly | cosine
    batch: int = 1
    accumulate: int = 1  # micro-batches per optimiser step (global batch = batch x accumulate x processes)
    epochs: int | None = None
    minutes: float | None = None
    iters_per_epoch: int | None = None  # default: one pass over the training cases
    # validation, splits, bookkeeping
    folds: int = 5
    fold: int | None = None
    all_cases: bool = False  # train on every case, no validation (the final model after cross-validation)
    split_file: str | None = None
    val_every: int = 1
    val_patch: tuple[int, int, int] | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | mixed (see medseg3d.precision)
    compile: bool = False  # torch.compile the training step (see compile_for_training)
    output_prior: bool = False  # start the output biases at the training labels' frequencies (nets.prior)
    cache: str | None = None
    skip_bad_cases: bool = (
        False  # train without cases that cannot be read (named, and recorded in config.json)
    )
    resume: bool = False
    progress: bool = True

    @classmethod
    def from_preset(cls, preset: str | None, **overrides) -> TrainConfig:
        """The settings of a preset with ``overrides`` on top.

        Args:
            preset: a name of :data:`PRESETS` (None: the defaults).
            overrides: settings that replace the preset's (None values are ignored); ``net_args`` are merged
                into the preset's.

        Raises:
            InputError: an unknown preset or setting.
        """
        base = {}
        if preset:
            if preset not in PRESETS:
                raise InputError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
            base = dict(PRESETS[preset])
        preset_net_args = dict(base.get("net_args") or {})
        base.update({k: v for k, v in overrides.items() if v is not None})
        if overrides.get("net_args") is not None:  # e.g. --net-arg base_channels=16 keeps the preset's norm
            base["net_args"] = preset_net_args | dict(overrides["net_args"])
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(base) - names
        if unknown:
            raise InputError(f"unknown training setting(s) {sorted(unknown)}")
        return cls(preset=preset, **base)

    def prep_config(self) -> PrepConfig:
        """The preprocessing settings of this training."""
        return PrepConfig(
            crop=self.crop,
            crop_size=self.crop_size,
            downsample=self.downsample,
            spacing=self.spacing,
            normalize=self.normalize,
            window=self.window,
        )

    def to_dict(self) -> dict:
        """The settings as a JSON-ready dict (tuples as lists), as ``config.json`` stores them."""
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


# settings a resumed run may change: the budget (to extend it), and where and how verbosely it runs
RESUME_FREE = ("epochs", "minutes", "progress", "device", "compile", "cache", "skip_bad_cases")
_TUPLE_FIELDS = ("modalities", "crop_size", "spacing", "patch", "val_patch", "window")


def _plain(value):
    """JSON-comparable form of a setting (tuples and lists alike)."""
    return json.dumps(list(value) if isinstance(value, tuple) else value, sort_keys=True)


def given_settings(cfg: TrainConfig) -> dict:
    """The settings of ``cfg`` that differ from the defaults: what a caller asked for."""
    given = {}
    for f in dataclasses.fields(cfg):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        value = getattr(cfg, f.name)
        if f.name not in ("out", "resume") and _plain(value) != _plain(default):
            given[f.name] = value
    return given


def resume_config(out, given: dict | None = None) -> TrainConfig:
    """The configuration of the run in ``out``, for ``--resume``: its own settings (``config.json``).

    Args:
        out: the run folder.
        given: settings the caller asked for (None values are ignored): the budget (``epochs``, ``minutes``)
            and ``RESUME_FREE`` settings replace the run's; a dataset is accepted if it is the run's (or the
            run's is gone, moved); any other setting must equal the run's.

    Returns:
        The run's TrainConfig with ``out`` and ``resume=True``.

    Raises:
        InputError: ``out`` is no folder or holds no checkpoint, a given setting differs from the run's (one
            line names the differences), or the settings name no dataset.
    """
    out = Path(out)
    if not out.is_dir():
        raise InputError(
            f"{out}: no such run folder to resume; check --out, or start a new run without --resume"
        )
    if not (out / "last.pt").exists() and not (out / PREVIOUS_CHECKPOINT).exists():
        raise InputError(f"{out}: no checkpoint (last.pt) to resume; start without --resume")
    saved = read_run_settings(out)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    settings = {k: v for k, v in saved.items() if k in names}
    for key in _TUPLE_FIELDS:
        if isinstance(settings.get(key), list):
            settings[key] = tuple(settings[key])
    changed: dict[str, str] = {}
    for key, value in (given or {}).items():
        if value is None or key in ("out", "resume"):
            continue
        if key in RESUME_FREE:
            settings[key] = value
        elif key == "dataset":
            old = settings.get("dataset")
            if not old or not Path(old).exists() or Path(old).resolve() == Path(value).resolve():
                settings["dataset"] = value
            else:
                changed["dataset"] = f"dataset {old} -> {value}"
        else:
            if key == "modalities" and value:
                value = normalise_modalities(value)
            old = settings.get(key)
            if key == "precision" and old is None:  # runs from before the setting trained as "auto"
                old = "auto"
            if _plain(value) != _plain(old):
                changed[key] = f"{key} {old!r} -> {value!r}"
    if changed:
        raise InputError(
            f"{out}: --resume with other settings ({', '.join(changed)}): "
            f"{'; '.join(list(changed.values())[:4])}; a resumed run takes its settings from "
            "config.json (only --epochs and --minutes may change): leave them out"
        )
    if not settings.get("dataset"):
        raise InputError(
            f"{out}: the run's settings name no dataset; give it: medseg3d train DATASET --out {out} --resume"
        )
    return TrainConfig(**(settings | {"out": str(out), "resume": True}))


def label_scheme(cfg: TrainConfig) -> LabelScheme:
    """The label scheme ``cfg.labels`` names; ``"dataset"``: the classes of the dataset's ``dataset.json``.
    ``cfg`` is a :class:`TrainConfig` or anything with its ``labels`` and ``dataset`` (a run's config.json).

    Raises:
        InputError: an unknown scheme, or ``"dataset"`` for a dataset without a ``dataset.json`` labels entry.
    """
    if cfg.labels != "dataset":
        return get_scheme(cfg.labels)
    labels = dataset_labels(cfg.dataset) if cfg.dataset else None
    if labels is None:
        raise InputError(
            f"{cfg.dataset}: --labels dataset needs a dataset.json with a 'labels' entry; "
            "name a scheme (brats, regions, binary...) instead"
        )
    return scheme_from_labels(labels, name="dataset")


def default_cache_dir(cfg: TrainConfig, scheme: LabelScheme, modalities) -> Path:
    """A cache folder shared by runs with the same dataset, preprocessing, labels and channels.

    Args:
        cfg: the training settings; ``cfg.cache``, when set, is the answer.
        scheme: the label scheme (its name is part of the key).
        modalities: the channels in order (None: all).

    Returns:
        ``cfg.cache``, else ``$MEDSEG3D_CACHE`` (default ``~/.cache/medseg3d``) / ``<dataset name>-<12 hex
            digits>``.
    """
    if cfg.cache:
        return Path(cfg.cache)
    key = json.dumps(
        [
            str(Path(cfg.dataset).resolve()),
            cfg.prep_config().to_dict(),
            scheme.name,
            list(modalities) if modalities else None,
        ],
        sort_keys=True,
    )
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    root = Path(os.environ.get("MEDSEG3D_CACHE", Path.home() / ".cache" / "medseg3d"))
    return root / f"{Path(cfg.dataset).resolve().name}-{digest}"


def software_versions() -> dict:
    """The versions of medseg3d, torch, numpy, monai, Python, the platform and torch's thread count, for a
    model card."""
    import monai
    import numpy

    # of the process's last start: MEDSEG3D_THREADS when training
    return {
        "medseg3d": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "monai": monai.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
    }


def learning_rate(cfg: TrainConfig, progress: float) -> float:
    """The learning rate of ``cfg.schedule`` at a point of the training.

    Args:
        cfg: the settings (``lr`` the peak, ``schedule`` constant, poly (power 0.9) or cosine).
        progress: the fraction of the training done, clipped to [0, 1].

    Returns:
        The learning rate (0 at the end for poly and cosine).

    Raises:
        InputError: an unknown schedule.
    """
    progress = min(max(progress, 0.0), 1.0)
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "poly":
        return cfg.lr * (1 - progress) ** 0.9
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))
    raise InputError(f"unknown schedule '{cfg.schedule}'; choose constant, poly or cosine")


def inference_defaults(cfg: TrainConfig) -> dict | None:
    """How a trained model asks to be run when the user does not say (the ``inference`` metadata).

    A network trained on patches runs in windows of its patch (overlap 0.5): with instance norm it saw
    only patch statistics, and in the bundled preset's 5-fold cross-validation windows beat one whole-volume
    pass (measured: docs/results.md, "Inference in windows of the training patch"). A network trained in
    mixed precision runs in it. ``None`` (whole volume, ``auto`` precision) otherwise.
    """
    inference = {}
    if cfg.patch:
        inference |= {"sliding_window": True, "overlap": 0.5}
    if cfg.precision == "mixed":
        inference["precision"] = "mixed"
    return inference or None


def model_metadata(
    cfg: TrainConfig,
    scheme: LabelScheme,
    modalities,
    in_channels: int,
    kind: str,
    size_multiple,
    extra: dict | None = None,
) -> dict:
    """What the model file says about the model (a :class:`~medseg3d.models.ModelMeta`), as stored.

    Args:
        cfg: the training settings (network, preprocessing, patch, inference defaults; stored whole).
        scheme: the label scheme.
        modalities: the channels in order.
        in_channels: the network's input channels.
        kind: "region" (sigmoid outputs) or "multiclass" (softmax).
        size_multiple: what each input size must be a multiple of.
        extra: more entries for the metadata's ``extra`` (beside loss, settings and software versions).

    Returns:
        ``ModelMeta.to_dict()``.
    """
    from ..models.meta import ModelMeta

    patch = cfg.val_patch or cfg.patch
    meta = ModelMeta(
        network=cfg.net,
        net_args=dict(cfg.net_args),
        in_channels=in_channels,
        n_outputs=scheme.n_outputs,
        kind=kind,
        labels=scheme.to_dict(),
        modalities=tuple(modalities),
        preprocess=cfg.prep_config().to_dict(),
        patch=tuple(patch) if patch else None,
        size_multiple=size_multiple,
        inference=inference_defaults(cfg) or {},
        extra={
            "loss": cfg.loss,
            "trained_with": cfg.to_dict(),
            "software": software_versions(),
            **(extra or {}),
        },
    )
    return meta.to_dict()


def check_budget_and_batch(cfg: TrainConfig) -> None:
    """The settings :func:`~medseg3d.train.train` refuses before it touches any file."""
    if not cfg.dataset:
        raise InputError("no dataset given; e.g. medseg3d train ../shared/data/brats2018 --out runs/a")
    if cfg.epochs is None and cfg.minutes is None:
        raise InputError("give a budget: --epochs N or --minutes M")
    if cfg.batch < 1 or cfg.accumulate < 1:
        raise InputError(f"--batch and --accumulate must be at least 1, got {cfg.batch} and {cfg.accumulate}")
    check_precision(cfg.precision)
    if cfg.compile and cfg.patch is None and cfg.crop != "fixed":
        raise InputError(
            "--compile needs inputs of one size: add --patch X Y Z or a fixed --crop; whole crops "
            "of different sizes would recompile for every case"
        )
