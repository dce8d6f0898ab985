"""The training loop: one readable place.

``train(TrainConfig(...))`` or ``medseg3d train DATASET --out RUN``:

1. prepare (or reuse) the cache of preprocessed cases; read or write the split file;
2. build network and loss from their registry names;
3. loop: sample (whole crop or patch) -> augment -> forward -> loss -> Adam step, with the learning rate set
   from the schedule at each step;
4. every ``val_every`` epochs score the validation cases (Dice per class and region, the metric of
   ``medseg3d evaluate``), keep the best model, write ``log.csv`` and ``curves.png``;
5. checkpoint ``last.pt`` atomically at the end of every epoch (keep epochs a few minutes long with
   ``iters_per_epoch``), the one before kept as ``previous.pt``, so ``--resume`` continues exactly where a
   killed run stopped (model, optimiser, counters, RNG states); a run killed mid-epoch repeats that epoch.
   ``--resume`` needs only the run folder: the settings come from its ``config.json`` (only the budget may
   change). A damaged ``last.pt`` (empty, truncated, of another network) falls back to ``previous.pt`` with
   a warning; a damaged ``config.json`` to the settings recorded in the run's model file; otherwise one
   line says what is damaged. Temporary files of a run killed mid-write are removed on the next start.

Distributed (``torchrun``, ``WORLD_SIZE`` > 1; docs/distributed.md): one global batch of
``batch x accumulate x world`` samples per optimiser step is drawn on every process from one shared random
stream (cases, patch boxes and one augmentation seed per sample); process ``r`` cuts out and trains on
micro-batches ``r, r + world, ...`` of it. DistributedDataParallel averages the gradients, so a run on N
processes takes the same steps as one process with ``accumulate`` N times larger (BatchNorm sees the same
micro-batches in both). The logged training loss is the mean over all processes; only rank 0 validates and
writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .cache import open_cache, prepare_dataset
from .checkpoint import save_checkpoint, save_model
from .datasets import fold_ids, load_split, make_split, normalise_modalities, save_split
from .errors import InputError
from .inference import pick_device, predict_probabilities, probabilities_to_classes
from .io import write_rows
from .labels import LabelScheme, get_scheme
from .plotting import save_figure
from .precision import autocast, autocast_dtype, check_precision
from .precision import describe as describe_precision
from .preprocess import PrepConfig
from .run_files import (
    PREVIOUS_CHECKPOINT,
    atomic_json,
    check_writable,
    load_resume_state,
    read_run_settings,
    remove_stale_temporaries,
    rng_state,
    warn,
    write_failed,
)
from .sampling import PatchSampler

PRESETS: dict[str, dict] = {
    # The paper as coded: whole 144x160x128 crops (x, y, z; the code's D x H x W = 128 x 160 x 144),
    # softmax classes, Jaccard loss, Adam 5e-5, the authors' augmentation.
    "paper": dict(net="kayalibay", loss="jaccard", lr=5e-5, schedule="constant", augment="paper",
                  crop="fixed", crop_size=(144, 160, 128), patch=None, labels="brats", val_every=5),
    # The bundled BraTS model (v1): the paper's network with instance norm (batch-norm running statistics
    # from one-patch batches failed on whole volumes), region (WT/TC/ET sigmoid) training with Dice+BCE
    # on 2 mm voxels (`downsample` 2: a brain crop is about 72 x 88 x 70), 64^3 patches (128 mm) with
    # foreground over-sampling, poly schedule, nnU-Net-like augmentation; 8,000 iterations, at most 2 hours.
    # Measured choices and their effects: docs/results.md.
    "brats": dict(net="kayalibay", net_args={"norm": "instance"}, loss="region-dice-bce", labels="regions",
                  lr=2e-3, schedule="poly",
                  augment="default", crop="bbox", downsample=2.0, patch=(64, 64, 64), foreground_p=0.5,
                  epochs=160, iters_per_epoch=50, minutes=120.0, val_every=5),
    # Version 0 of the bundled model: 1.5 mm voxels, 96^3 patches, 100 minutes (kept to reproduce it).
    "brats-v0": dict(net="kayalibay", loss="region-dice-bce", labels="regions", lr=2e-3, schedule="poly",
                     augment="default", crop="bbox", downsample=1.5, patch=(96, 96, 96), foreground_p=0.5,
                     minutes=100.0, val_every=5, iters_per_epoch=50),
    # A few seconds: for tests and smoke runs.
    "quick": dict(net="kayalibay", loss="jaccard-smooth", labels="brats", lr=1e-3, schedule="constant",
                  augment="none", crop="bbox", downsample=4.0, patch=None, epochs=2, val_every=1),
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
    # sampling and augmentation
    patch: tuple[int, int, int] | None = None
    foreground_p: float = 0.5
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
    skip_bad_cases: bool = False  # train without cases that cannot be read (named, and recorded in config.json)
    resume: bool = False
    progress: bool = True

    @classmethod
    def from_preset(cls, preset: str | None, **overrides) -> TrainConfig:
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
        return PrepConfig(crop=self.crop, crop_size=self.crop_size, downsample=self.downsample, spacing=self.spacing)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


# settings a resumed run may change: the budget (to extend it), and where and how verbosely it runs
RESUME_FREE = ("epochs", "minutes", "progress", "device", "compile", "cache", "skip_bad_cases")
_TUPLE_FIELDS = ("modalities", "crop_size", "spacing", "patch", "val_patch")


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

    ``given`` are settings the caller asked for: the budget (``epochs``, ``minutes``) and ``RESUME_FREE``
    settings replace the run's; a dataset is accepted if it is the run's (or the run's is gone, moved);
    any other setting must equal the run's, else one line names the differences.
    """
    out = Path(out)
    if not out.is_dir():
        raise InputError(f"{out}: no such run folder to resume; check --out, or start a new run without --resume")
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
        raise InputError(f"{out}: --resume with other settings ({', '.join(changed)}): "
                         f"{'; '.join(list(changed.values())[:4])}; a resumed run takes its settings from "
                         "config.json (only --epochs and --minutes may change): leave them out")
    if not settings.get("dataset"):
        raise InputError(f"{out}: the run's settings name no dataset; give it: medseg3d train DATASET --out {out} --resume")
    cfg = TrainConfig(**(settings | {"out": str(out), "resume": True}))
    cfg._from_run_folder = True  # not a setting: tells train() these were merged already
    return cfg


def default_cache_dir(cfg: TrainConfig, scheme: LabelScheme, modalities) -> Path:
    """A cache folder shared by runs with the same dataset, preprocessing, labels and channels."""
    if cfg.cache:
        return Path(cfg.cache)
    key = json.dumps([str(Path(cfg.dataset).resolve()), cfg.prep_config().to_dict(), scheme.name,
                      list(modalities) if modalities else None], sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    root = Path(os.environ.get("MEDSEG3D_CACHE", Path.home() / ".cache" / "medseg3d"))
    return root / f"{Path(cfg.dataset).resolve().name}-{digest}"


def software_versions() -> dict:
    import monai
    import numpy

    return {"medseg3d": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "monai": monai.__version__, "python": platform.python_version(), "platform": platform.platform()}


def learning_rate(cfg: TrainConfig, progress: float) -> float:
    progress = min(max(progress, 0.0), 1.0)
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "poly":
        return cfg.lr * (1 - progress) ** 0.9
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))
    raise InputError(f"unknown schedule '{cfg.schedule}'; choose constant, poly or cosine")


def region_targets(classes: torch.Tensor, scheme: LabelScheme) -> torch.Tensor:
    """(N, X, Y, Z) class indices -> (N, R, X, Y, Z) float region masks."""
    masks = []
    for members in scheme.regions.values():
        ks = torch.tensor([scheme.values.index(v) for v in members], device=classes.device)
        masks.append(torch.isin(classes, ks))
    return torch.stack(masks, 1).float()


def label_fractions(cases, sampler: PatchSampler, scheme: LabelScheme, kind: str, seed: int,
                    samples_per_case: int = 2) -> list[float]:
    """Fraction of training voxels in each output (region or class), over samples drawn like training's.

    Draws ``samples_per_case`` patches (or whole crops) per case with their own random stream, so the
    training stream is unchanged. Used by ``--output-prior`` (:func:`medseg3d.nets.init_output_prior`).
    """
    rng = np.random.default_rng(seed * 1000 + 7)
    counts = torch.zeros(scheme.n_outputs, dtype=torch.float64)
    total = 0
    for case in cases:
        for _ in range(samples_per_case if sampler.patch is not None else 1):
            _, label = sampler.sample(case, rng)
            y = torch.from_numpy(label)[None]
            if kind == "region":
                counts += region_targets(y, scheme).sum(dim=(0, *range(2, y.dim() + 1))).double()
            else:
                counts += torch.bincount(y.ravel(), minlength=scheme.n_outputs)[: scheme.n_outputs].double()
            total += y.numel()
    return (counts / max(total, 1)).tolist()


def validation_scores(model, cases, scheme: LabelScheme, kind: str, device, patch=None,
                      precision: str = "auto") -> dict[str, float]:
    """Mean Dice per class and region over prepared validation cases, on the preprocessed grid."""
    from .metrics import dice

    sums: dict[str, list[float]] = {}
    for case in cases:
        probs = predict_probabilities(model, np.asarray(case.image, dtype=np.float32), kind=kind, patch=patch,
                                      device=device, precision=precision)
        pred = probabilities_to_classes(probs, kind)
        ref = np.asarray(case.label)
        if kind == "region":
            pred_values = scheme.regions_to_values(pred)
        else:
            pred_values = scheme.to_values(pred)
        ref_values = scheme.to_values(ref)
        for k, name in enumerate(scheme.class_names[1:], start=1):
            v = scheme.values[k]
            sums.setdefault(f"dice_{name}", []).append(dice(pred_values == v, ref_values == v))
        for rname, members in scheme.regions.items():
            sums.setdefault(f"dice_{rname}", []).append(dice(np.isin(pred_values, members), np.isin(ref_values, members)))
    scores = {k: float(np.mean(v)) for k, v in sums.items()}
    region_keys = [f"dice_{r}" for r in scheme.regions] or list(scores)
    scores["score"] = float(np.mean([scores[k] for k in region_keys]))
    return scores


def _plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    ep = [h["epoch"] for h in history]
    a.plot(ep, [h["train_loss"] for h in history], label="train loss")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    keys = [k for k in history[-1] if k.startswith("dice_")] if history else []
    for k in keys:
        pts = [(h["epoch"], h[k]) for h in history if h.get(k) not in (None, "")]
        if pts:
            b.plot(*zip(*pts), marker=".", label=k[5:])
    b.set_xlabel("epoch")
    b.set_ylabel("validation Dice")
    b.set_ylim(0, 1)
    if keys:
        b.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


def _distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); joins the ``torchrun`` process group: NCCL for CUDA devices, else gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        # rank 0 validates while the others wait in a collective: allow long validations
        minutes = float(os.environ.get("MEDSEG3D_DIST_TIMEOUT_MIN", "120"))
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                             timeout=datetime.timedelta(minutes=minutes))
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def _process_device(name: str, world: int) -> torch.device:
    """The device of this process: under torchrun, CUDA process k uses GPU ``LOCAL_RANK``."""
    device = pick_device(name)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def plan_global_batch(cases: list, sampler: PatchSampler, np_rng: np.random.Generator, aug_gen: torch.Generator,
                      size: int) -> list[tuple[int, tuple, int]]:
    """(case index, patch box, augmentation seed) for each sample of one global batch.

    Every process draws the whole plan from the same streams (cheap: no voxel is read), so the streams stay
    in step across processes and a single-process run with gradient accumulation draws the same samples.
    """
    plan = []
    for _ in range(size):
        k = int(np_rng.integers(len(cases)))
        box = sampler.box_for(cases[k], np_rng)
        plan.append((k, box, int(torch.randint(0, 2**62, (), generator=aug_gen))))
    return plan


def _mean_across(values: list[float], world: int) -> list[float]:
    """Element-wise mean of a few numbers over all processes."""
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return (t / world).tolist()


def inference_defaults(cfg: TrainConfig) -> dict | None:
    """How a trained model asks to be run when the user does not say (the ``inference`` metadata).

    A network trained on patches runs in windows of its patch (overlap 0.5): with instance norm it saw
    only patch statistics, and in the bundled preset's 5-fold cross-validation windows beat one whole-volume
    pass by 0.033 WT Dice and 8.5 mm WT HD95 (docs/results.md). A network trained in mixed precision runs in
    it. ``None`` (whole volume, ``auto`` precision) otherwise.
    """
    inference = {}
    if cfg.patch:
        inference |= {"sliding_window": True, "overlap": 0.5}
    if cfg.precision == "mixed":
        inference["precision"] = "mixed"
    return inference or None


def model_metadata(cfg: TrainConfig, scheme: LabelScheme, modalities, in_channels: int, kind: str,
                   size_multiple, extra: dict | None = None) -> dict:
    inference = inference_defaults(cfg)
    return {
        "network": cfg.net,
        "net_args": cfg.net_args,
        "in_channels": in_channels,
        "n_outputs": scheme.n_outputs,
        "kind": kind,
        "labels": scheme.to_dict(),
        "modalities": list(modalities),
        "preprocess": cfg.prep_config().to_dict(),
        "patch": list(cfg.val_patch or cfg.patch) if (cfg.val_patch or cfg.patch) else None,
        "size_multiple": size_multiple,
        "loss": cfg.loss,
        "trained_with": cfg.to_dict(),
        "software": software_versions(),
        **({"inference": inference} if inference else {}),
        **(extra or {}),
    }


def compile_for_training(net):
    """``net`` compiled with ``torch.compile`` for the training step; validation and saving use the original.

    Measured on this project's 2-core CPU with ``benchmarks/compile.py`` (one thread, the ``brats`` network
    and loss on a 64^3 patch, eager and compiled alternating beside two trainings): 1.2 to 1.3 times faster
    per step in bfloat16, 1.1 times in float32, but only 1.02 times per epoch in a real 4,000-iteration
    training (docs/results.md); compiling took 3 to 4 minutes the first time under load and seconds once
    torch's on-disk kernel cache holds it. An opt-in for other machines, not a preset default.

    The inputs must all have one size (patches, or a fixed crop): with whole crops of different sizes,
    torch 2.13's dynamic shapes failed to compile this network. If compilation fails (no C++ compiler, an
    unsupported platform), the step runs uncompiled, as without ``--compile``; this sets torch's
    process-wide ``suppress_errors`` switch.
    """
    import torch
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True  # a backend failure falls back to eager, with a warning
    return torch.compile(net, dynamic=False)


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) a training run; returns a summary dict (best score, epochs, seconds, paths)."""
    from tqdm import tqdm

    from .augment import build_augment
    from .losses import build_loss
    from .nets import build_network, init_output_prior

    if not cfg.out:
        raise InputError("no output folder given; add --out RUN_DIR")
    if cfg.resume and not getattr(cfg, "_from_run_folder", False):  # the run's own settings, budget aside
        cfg = resume_config(cfg.out, given_settings(cfg))
    if not cfg.dataset:
        raise InputError("no dataset given; e.g. medseg3d train ../shared/data/brats2018 --out runs/a")
    if cfg.epochs is None and cfg.minutes is None:
        raise InputError("give a budget: --epochs N or --minutes M")
    if cfg.batch < 1 or cfg.accumulate < 1:
        raise InputError(f"--batch and --accumulate must be at least 1, got {cfg.batch} and {cfg.accumulate}")
    check_precision(cfg.precision)
    if cfg.compile and cfg.patch is None and cfg.crop != "fixed":
        raise InputError("--compile needs inputs of one size: add --patch X Y Z or a fixed --crop; whole crops "
                         "of different sizes would recompile for every case")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = _process_device(cfg.device, world)
    rank, world = _distributed(device)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; --out must be a folder")
    if rank == 0:  # the only process that writes there
        check_writable(out)
    last_path = out / "last.pt"
    has_checkpoint = last_path.exists() or (out / PREVIOUS_CHECKPOINT).exists()
    if has_checkpoint and not cfg.resume:
        raise InputError(f"{out}: holds a run already; add --resume to continue it or choose another --out")
    if cfg.resume and not has_checkpoint:
        raise InputError(f"{out}: no checkpoint (last.pt) to resume; start without --resume")
    if rank == 0:
        for path in remove_stale_temporaries(out):  # left by a run killed while writing
            warn(f"removed {path}, a temporary file left by an interrupted run")
    scheme = get_scheme(cfg.labels)
    modalities = normalise_modalities(cfg.modalities) if cfg.modalities else None
    torch.manual_seed(cfg.seed + rank)
    if device.type == "cpu" and world == 1:
        torch.set_num_threads(int(os.environ.get("MEDSEG3D_THREADS", os.cpu_count() or 1)))

    # data: cache and split
    cache_dir = default_cache_dir(cfg, scheme, modalities)
    bad_cases: dict[str, str] = {}
    if rank == 0:
        prepared = prepare_dataset(cfg.dataset, cache_dir, cfg.prep_config(), scheme, modalities, cfg.layout,
                                   progress=cfg.progress, option="--cache" if cfg.cache else "--out")
        bad_cases = prepared["failed"]
        if bad_cases and not cfg.skip_bad_cases:
            raise InputError(f"{len(bad_cases)} case(s) cannot be used: "
                             + "; ".join(f"{cid} ({reason})" for cid, reason in bad_cases.items())
                             + "; fix or remove them, or add --skip-bad-cases to train without them")
        for cid, reason in bad_cases.items():
            warn(f"training without case {cid} (--skip-bad-cases): {reason}")
    if world > 1:
        shared = [bad_cases]
        torch.distributed.broadcast_object_list(shared, src=0)  # every rank leaves out the same cases
        bad_cases = shared[0]
    meta, cases = open_cache(cache_dir)
    # a case that failed now is not used even if an earlier preparation of it is still in the cache
    cases = {cid: case for cid, case in cases.items() if cid not in bad_cases}
    modalities = meta["settings"]["modalities"]
    split_path = Path(cfg.split_file) if cfg.split_file else out / "split.json"
    new_split = None
    if split_path.exists():
        split = load_split(split_path)
    else:
        split = make_split(list(cases), folds=cfg.folds, seed=cfg.seed) if cfg.fold is not None else \
            make_split(list(cases), counts=_holdout_counts(len(cases)), seed=cfg.seed)
        new_split = split_path  # written with the run's first files, once every setting has been checked
    train_ids, val_ids = (sorted(cases), []) if cfg.all_cases else fold_ids(split, cfg.fold)
    if cfg.skip_bad_cases:  # a split made before the cases went bad: train and validate on the rest
        train_ids = [c for c in train_ids if c not in bad_cases]
        val_ids = [c for c in val_ids if c not in bad_cases]
    unknown = [c for c in train_ids + val_ids if c not in cases]
    if unknown:
        raise InputError(f"split lists case(s) not in the dataset ({unknown[:3]}); use a split made for this dataset")
    train_cases = [cases[c] for c in train_ids]
    val_cases = [cases[c] for c in val_ids]
    if not train_cases:
        raise InputError("no training cases; the dataset needs at least 2 labelled cases")

    # model, loss, optimiser
    in_channels = len(modalities)
    model = build_network(cfg.net, in_channels, scheme.n_outputs, **cfg.net_args).to(device)
    size_multiple = getattr(model, "size_multiple", None) or 1
    loss_fn = build_loss(cfg.loss, n_classes=scheme.n_outputs)
    kind = getattr(loss_fn, "kind", "multiclass")
    if (kind == "region") != scheme.region_training:
        raise InputError(
            f"loss '{cfg.loss}' is {kind}, but labels '{cfg.labels}' are "
            f"{'region' if scheme.region_training else 'class'}-based; use --labels regions with region losses"
        )
    sampler = PatchSampler(cfg.patch, cfg.foreground_p, size_multiple)
    prior_fractions = None
    if cfg.output_prior and not cfg.resume:
        prior_fractions = label_fractions(train_cases, sampler, scheme, kind, cfg.seed)
        init_output_prior(model, prior_fractions, kind)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last_3d) if model.spatial_dims == 3 else model
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # float16 needs loss scaling; bfloat16 (mixed precision on a CPU) has float32's range and does not
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype(cfg.precision, device) == torch.float16)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = compile_for_training(net)
        if rank == 0 and cfg.progress:
            print("compiling the network for training (torch.compile): the first iterations take minutes on a CPU")
    augment = build_augment(cfg.augment)
    # one stream shared by all processes (same seed on every rank): see plan_global_batch
    np_rng = np.random.default_rng(cfg.seed * 1000)
    aug_gen = torch.Generator().manual_seed(cfg.seed * 1000)
    global_batch = cfg.batch * cfg.accumulate * world
    iters_per_epoch = cfg.iters_per_epoch or max(1, math.ceil(len(train_cases) / global_batch))
    total_iters = cfg.epochs * iters_per_epoch if cfg.epochs else None

    state = {"epoch": 0, "iteration": 0, "elapsed": 0.0, "best": -1.0, "best_epoch": None, "history": []}
    if cfg.resume:
        state = load_resume_state(out, model, optimizer, scaler, np_rng, aug_gen)
    if rank == 0:
        try:
            out.mkdir(parents=True, exist_ok=True)
            if new_split is not None:
                save_split(split, new_split)
        except OSError as exc:
            raise write_failed(out, exc) from exc
        cfg_dict = cfg.to_dict() | {"modalities": list(modalities), "cache": str(cache_dir),
                                    "train_cases": train_ids, "val_cases": val_ids, "software": software_versions(),
                                    "iters_per_epoch": iters_per_epoch, "world_size": world,
                                    "global_batch": global_batch,
                                    "compute_dtype": describe_precision(cfg.precision, device)}
        if prior_fractions is not None:
            cfg_dict["output_prior_fractions"] = [round(f, 6) for f in prior_fractions]
        elif cfg.output_prior and cfg.resume:  # a resumed run keeps its first start's record
            first = read_run_settings(out)
            if "output_prior_fractions" in first:
                cfg_dict["output_prior_fractions"] = first["output_prior_fractions"]
        if bad_cases:
            cfg_dict["skipped_cases"] = bad_cases
        try:
            atomic_json(cfg_dict, out / "config.json")
        except OSError as exc:
            raise write_failed(out, exc) from exc
    meta_out = model_metadata(cfg, scheme, modalities, in_channels, kind, size_multiple,
                              {"train_cases": train_ids, "val_cases": val_ids})

    def progress() -> float:
        fractions = []
        if total_iters:
            fractions.append(state["iteration"] / total_iters)
        if cfg.minutes:
            fractions.append(state["elapsed"] / (cfg.minutes * 60))
        return max(fractions)

    def checkpoint() -> None:
        if rank != 0:
            return
        save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scaler": scaler.state_dict(), **{k: v for k, v in state.items() if k != "history"},
                         "history": json.dumps(state["history"]), "rng": rng_state(np_rng, aug_gen)}, last_path,
                        previous=out / PREVIOUS_CHECKPOINT)

    bar = tqdm(total=total_iters, initial=state["iteration"], desc="train", unit="it",
               disable=not cfg.progress or rank != 0, dynamic_ncols=True)
    while not _all_agree(progress() >= 1.0, world):
        net.train()
        epoch_losses = []
        t_epoch = time.monotonic()
        data_seconds = 0.0
        for _ in range(iters_per_epoch):
            t0 = time.monotonic()
            plan = plan_global_batch(train_cases, sampler, np_rng, aug_gen, global_batch)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, progress())
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for a in range(cfg.accumulate):
                t_data = time.monotonic()
                first = (a * world + rank) * cfg.batch  # this process's micro-batch of the global batch
                x, y = _micro_batch(plan[first:first + cfg.batch], train_cases, sampler, augment, device)
                target = region_targets(y, scheme) if kind == "region" else y
                data_seconds += time.monotonic() - t_data
                # DDP averages gradients only on the last micro-batch of the step
                sync = net.no_sync() if world > 1 and a < cfg.accumulate - 1 else contextlib.nullcontext()
                with sync:
                    with autocast(cfg.precision, device):
                        logits = net(x)
                        loss = loss_fn(logits.float(), target)
                    scaler.scale(loss / cfg.accumulate if cfg.accumulate > 1 else loss).backward()
                step_loss += loss.item() / cfg.accumulate
            # every process learns whether any loss was not finite, before any weight changes
            step_loss, bad = _mean_across([step_loss, 0.0 if math.isfinite(step_loss) else 1.0], world)
            if bad > 0:
                raise InputError(f"the loss became {step_loss} at iteration {state['iteration']}; lower --lr "
                                 "or check the data (NaN inputs)")
            scaler.step(optimizer)
            scaler.update()
            epoch_losses.append(step_loss)
            state["iteration"] += 1
            state["elapsed"] += time.monotonic() - t0
            bar.update(1)
            bar.set_postfix(epoch=state["epoch"] + 1, loss=f"{np.mean(epoch_losses):.4f}",
                            lr=f"{optimizer.param_groups[0]['lr']:.2g}")
            if _all_agree(progress() >= 1.0, world):
                break
        state["epoch"] += 1
        row = {"epoch": state["epoch"], "iteration": state["iteration"], "seconds": round(state["elapsed"], 1),
               "lr": optimizer.param_groups[0]["lr"], "train_loss": float(np.mean(epoch_losses)),
               "epoch_seconds": round(time.monotonic() - t_epoch, 2), "data_seconds": round(data_seconds, 2)}
        done = _all_agree(progress() >= 1.0, world)
        if rank == 0 and val_cases and (state["epoch"] % cfg.val_every == 0 or done):
            t_val = time.monotonic()
            scores = validation_scores(model, val_cases, scheme, kind, device, cfg.val_patch, cfg.precision)
            row.update(scores)
            row["val_seconds"] = round(time.monotonic() - t_val, 1)
            if scores["score"] > state["best"]:
                state["best"], state["best_epoch"] = scores["score"], state["epoch"]
                try:
                    save_model(model, meta_out | {"validation": scores, "epoch": state["epoch"]},
                               out / "best.safetensors")
                except OSError as exc:
                    raise write_failed(out, exc) from exc
            bar.write(f"epoch {state['epoch']}: loss {row['train_loss']:.4f}  "
                      + "  ".join(f"{k[5:]} {v:.3f}" for k, v in scores.items() if k.startswith("dice_")))
        state["history"].append(row)
        if rank == 0:
            try:
                save_model(model, meta_out | {"epoch": state["epoch"]}, out / "last.safetensors")
                checkpoint()
                write_rows(state["history"], out / "log.csv")
                _plot_curves(state["history"], out / "curves.png")
            except OSError as exc:
                raise write_failed(out, exc) from exc
    bar.close()
    if rank == 0:
        best = out / "best.safetensors"
        final = best if best.exists() else out / "last.safetensors"
        import shutil

        tmp = out / ".model.safetensors.tmp"
        try:
            shutil.copyfile(final, tmp)
            os.replace(tmp, out / "model.safetensors")
        except OSError as exc:
            raise write_failed(out, exc) from exc
    dump = os.environ.get("MEDSEG3D_DEBUG_DUMP")
    if dump:  # test hook: each process's final weights and logged losses
        Path(dump).mkdir(parents=True, exist_ok=True)
        torch.save({"state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "losses": [h["train_loss"] for h in state["history"]]}, Path(dump) / f"rank{rank}.pt")
    if world > 1:
        torch.distributed.barrier()
    return {"out": str(out), "epochs": state["epoch"], "iterations": state["iteration"],
            "seconds": state["elapsed"], "best_score": state["best"], "best_epoch": state["best_epoch"],
            "model": str(out / "model.safetensors")}


def _micro_batch(plan, cases, sampler: PatchSampler, augment, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut out and augment the samples of ``plan`` -> (images, class maps) on ``device``."""
    images, targets = [], []
    for k, box, seed in plan:
        image, label = sampler.crop(cases[k], box)
        image_t, label_t, _ = augment(torch.from_numpy(image), torch.from_numpy(label),
                                      torch.Generator().manual_seed(seed))
        images.append(image_t)
        targets.append(label_t)
    x = torch.stack(images).to(device)
    if device.type == "cuda" and x.ndim == 5:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return x, torch.stack(targets).to(device).long()


def _all_agree(flag: bool, world: int) -> bool:
    """True on every process once any process says True (time budgets differ slightly between ranks)."""
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item() > 0)


def _holdout_counts(n: int) -> tuple[int, int, int]:
    """Train/validation/test counts for a hold-out split without --fold: 80/20/0, at least one of each."""
    n_val = max(1, round(0.2 * n)) if n > 1 else 0
    return n - n_val, n_val, 0
