"""What a training run learns from: its cases and split, and the samples of each step.

One global batch of ``batch x accumulate x world`` samples per optimiser step is planned on every process from
one shared random stream (cases, patch boxes and one augmentation seed per sample); process ``r`` cuts out and
trains on micro-batches ``r, r + world, ...`` of it, so a run on N processes takes the same steps as one
process with ``accumulate`` N times larger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..cache import discard_prepared, open_cache, prepare_dataset
from ..datasets import fold_ids, load_split, make_split
from ..datasets.synthetic import variant_parent
from ..errors import InputError
from ..labels import LabelScheme
from ..sampling import PatchSampler
from .config import TrainConfig, default_cache_dir
from .run_files import warn
from .step import region_targets


@dataclass
class TrainingData:
    """A run's prepared cases: the cache they live in, their channels, the split and its two sides."""

    cache_dir: Path
    modalities: list[str]
    split: dict
    new_split: Path | None  # where a split made now is to be written, once every setting has been checked
    train_ids: list[str]
    val_ids: list[str]
    train_cases: list = field(default_factory=list)
    val_cases: list = field(default_factory=list)
    bad_cases: dict[str, str] = field(default_factory=dict)  # case -> why it is unusable (--skip-bad-cases)


def load_training_data(
    cfg: TrainConfig, out: Path, scheme: LabelScheme, modalities, rank: int = 0, world: int = 1
) -> TrainingData:
    """Prepare (or reuse) the cache of preprocessed cases (rank 0 only) and read or make the split.

    Args:
        cfg: the training settings.
        out: the run folder (the split is ``out/split.json`` unless ``cfg.split_file``).
        scheme: the label scheme.
        modalities: the channels in order (None: all).
        rank, world: this process and the number of processes; only rank 0 prepares, and every rank leaves
            out the same failed cases.

    Returns:
        The cache, channels, split (and where a new split is to be written) and the two sides' cases.

    Raises:
        InputError: a case cannot be used (without ``cfg.skip_bad_cases``), the split names cases not in the
            dataset, or no training case is left.
    """
    cache_dir = default_cache_dir(cfg, scheme, modalities)
    bad_cases: dict[str, str] = {}
    if rank == 0:
        prepared = prepare_dataset(
            cfg.dataset,
            cache_dir,
            cfg.prep_config(),
            scheme,
            modalities,
            cfg.layout,
            progress=cfg.progress,
            option="--cache" if cfg.cache else "--out",
        )
        bad_cases = prepared["failed"]
        if bad_cases and not cfg.skip_bad_cases:
            discard_prepared(cache_dir, prepared)  # a refusal leaves no cache behind
            raise InputError(
                f"{len(bad_cases)} case(s) cannot be used: "
                + "; ".join(f"{cid} ({reason})" for cid, reason in bad_cases.items())
                + "; fix or remove them, or add --skip-bad-cases to train without them"
            )
        for cid, reason in bad_cases.items():
            warn(f"training without case {cid} (--skip-bad-cases): {reason}")
    if world > 1:
        shared = [bad_cases]
        torch.distributed.broadcast_object_list(shared, src=0)  # every rank leaves out the same cases
        bad_cases = shared[0]
    meta, cases = open_cache(cache_dir)
    # a case that failed now is not used even if an earlier preparation of it is still in the cache
    cases = {cid: case for cid, case in cases.items() if cid not in bad_cases}
    split_path = Path(cfg.split_file) if cfg.split_file else out / "split.json"
    new_split = None
    originals = [cid for cid in cases if variant_parent(cid) is None]
    if split_path.exists():
        split = load_split(split_path)
    else:  # synthetic variants are never validated on: the split is of the original cases
        split = (
            make_split(originals, folds=cfg.folds, seed=cfg.seed)
            if cfg.fold is not None
            else make_split(originals, counts=holdout_counts(len(originals)), seed=cfg.seed)
        )
        new_split = split_path
    train_ids, val_ids = (sorted(cases), []) if cfg.all_cases else fold_ids(split, cfg.fold)
    if not cfg.all_cases:  # a variant trains when its parent does, so no validation case leaks in through it
        parents = set(train_ids)
        train_ids = train_ids + sorted(c for c in cases if variant_parent(c) in parents and c not in parents)
    if cfg.skip_bad_cases:  # a split made before the cases went bad: train and validate on the rest
        train_ids = [c for c in train_ids if c not in bad_cases]
        val_ids = [c for c in val_ids if c not in bad_cases]
    unknown = [c for c in train_ids + val_ids if c not in cases]
    if unknown:
        raise InputError(
            f"split lists case(s) not in the dataset ({unknown[:3]}); use a split made for this dataset"
        )
    # --oversample: a case listed k times is drawn k times as often (cases the dataset lacks are ignored, so
    # one preset serves datasets with and without them)
    train_cases = [cases[c] for c in train_ids for _ in range(max(1, int(cfg.oversample.get(c, 1))))]
    if not train_cases:
        raise InputError("no training cases; the dataset needs at least 2 labelled cases")
    return TrainingData(
        cache_dir,
        meta["settings"]["modalities"],
        split,
        new_split,
        train_ids,
        val_ids,
        train_cases,
        [cases[c] for c in val_ids],
        bad_cases,
    )


def label_fractions(
    cases, sampler: PatchSampler, scheme: LabelScheme, kind: str, seed: int, samples_per_case: int = 2
) -> list[float]:
    """Fraction of training voxels in each output (region or class), over samples drawn like training's.

    Draws ``samples_per_case`` patches (or whole crops) per case with their own random stream, so the
    training stream is unchanged. Used by ``--output-prior`` (:func:`medseg3d.nets.init_output_prior`).

    Args:
        cases: the prepared training cases.
        sampler: the training's patch sampler.
        scheme: the label scheme.
        kind: "region" (overlapping regions) or "multiclass".
        seed: the training's seed (the stream is derived from it).
        samples_per_case: patches per case (one whole crop when the sampler has no patch).

    Returns:
        One fraction in [0, 1] per output, in the scheme's order.
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


def plan_global_batch(
    cases: list, sampler: PatchSampler, np_rng: np.random.Generator, aug_gen: torch.Generator, size: int
) -> list[tuple[int, tuple, int]]:
    """(case index, patch box, augmentation seed) for each sample of one global batch.

    Every process draws the whole plan from the same streams (cheap: no voxel is read), so the streams stay
    in step across processes and a single-process run with gradient accumulation draws the same samples.

    Args:
        cases: the training cases.
        sampler: where patches are cut (:meth:`PatchSampler.box_for`).
        np_rng, aug_gen: the case/patch stream and the augmentation-seed stream; both advance.
        size: samples in the global batch (all processes and micro-batches).

    Returns:
        ``size`` tuples.
    """
    plan = []
    for _ in range(size):
        k = int(np_rng.integers(len(cases)))
        box = sampler.box_for(cases[k], np_rng)
        plan.append((k, box, int(torch.randint(0, 2**62, (), generator=aug_gen))))
    return plan


def micro_batch(plan, cases, sampler: PatchSampler, augment, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut out and augment the samples of ``plan`` -> (images, class maps) on ``device``.

    Args:
        plan: this micro-batch's part of :func:`plan_global_batch`'s list.
        cases: the training cases the plan's indices refer to.
        sampler: cuts each box out of its case.
        augment: ``augment(image, label, generator) -> (image, label, _)``.
        device: where the tensors go (channels-last memory on CUDA).

    Returns:
        Float images (N, C, X, Y, Z) and long class maps (N, X, Y, Z).
    """
    images, targets = [], []
    for k, box, seed in plan:
        image, label = sampler.crop(cases[k], box)
        image_t, label_t, _ = augment(
            torch.from_numpy(image), torch.from_numpy(label), torch.Generator().manual_seed(seed)
        )
        images.append(image_t)
        targets.append(label_t)
    x = torch.stack(images).to(device)
    if device.type == "cuda" and x.ndim == 5:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return x, torch.stack(targets).to(device).long()


def holdout_counts(n: int) -> tuple[int, int, int]:
    """Train/validation/test counts for a hold-out split without --fold: 80/20/0, at least one of each."""
    n_val = max(1, round(0.2 * n)) if n > 1 else 0
    return n - n_val, n_val, 0
