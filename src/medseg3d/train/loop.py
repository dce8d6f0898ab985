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

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import save_checkpoint, save_model
from ..datasets import normalise_modalities, save_split
from ..errors import InputError
from ..io import write_json_atomic, write_rows
from ..precision import describe as describe_precision
from .config import (
    TrainConfig,
    check_budget_and_batch,
    given_settings,
    label_scheme,
    learning_rate,
    model_metadata,
    resume_config,
    software_versions,
)
from .data import TrainingData, label_fractions, load_training_data, micro_batch, plan_global_batch
from .distributed import all_agree, join_process_group, process_device
from .run_files import (
    PREVIOUS_CHECKPOINT,
    check_writable,
    load_resume_state,
    plot_curves,
    read_run_settings,
    remove_stale_temporaries,
    rng_state,
    warn,
    write_failed,
)
from .step import compile_for_training, make_grad_scaler, region_targets, training_step
from .validate import validation_scores


def train(
    cfg: TrainConfig,
    *,
    settings_merged: bool = False,
    on_step: Callable | None = None,
    on_end: Callable | None = None,
) -> dict:
    """Run (or resume) a training run.

    Args:
        cfg: every setting of the run; with ``cfg.resume`` the run in ``cfg.out`` continues, its settings
            taken from its ``config.json`` (:func:`~medseg3d.train.config.resume_config`; only the budget and
            ``RESUME_FREE`` settings may differ).
        settings_merged: ``cfg`` is already :func:`resume_config`'s result (``medseg3d train --resume`` merges
            what was typed itself): it is used as it is, not merged with the run folder's settings again.
        on_step: called after every optimiser step as ``on_step(iteration, loss, model)`` on every process,
            with the step's gradient (averaged over processes and micro-batches) still on ``model``'s
            parameters; to watch a run (the tests record its first step so).
        on_end: called once at the end as ``on_end(model, history)`` on every process, after rank 0 wrote
            ``model.safetensors`` and before the processes' last barrier; ``history`` is the rows of
            ``log.csv``.

    Returns:
        A summary dict: ``out``, ``epochs``, ``iterations``, ``seconds``, ``best_score``, ``best_epoch``,
        ``model`` (the path of ``model.safetensors``).

    Raises:
        InputError: no ``out``, settings that disagree with each other or with the resumed run, a folder that
            holds another run, unreadable data.
        MedsegError: a run folder that cannot be written (one line).
    """
    from tqdm import tqdm

    from ..augment import build_augment
    from ..losses import build_loss
    from ..nets import build_network, init_output_prior
    from ..sampling import PatchSampler

    if not cfg.out:
        raise InputError("no output folder given; add --out RUN_DIR")
    if cfg.resume and not settings_merged:  # the run's own settings, budget aside
        cfg = resume_config(cfg.out, given_settings(cfg))
    check_budget_and_batch(cfg)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = process_device(cfg.device, world)
    rank, world = join_process_group(device)
    out = Path(cfg.out)
    _open_run_folder(cfg, out, rank)
    scheme = label_scheme(cfg)
    torch.manual_seed(cfg.seed + rank)
    if device.type == "cpu" and world == 1:
        torch.set_num_threads(int(os.environ.get("MEDSEG3D_THREADS", os.cpu_count() or 1)))
    modalities = normalise_modalities(cfg.modalities) if cfg.modalities else None
    data = load_training_data(cfg, out, scheme, modalities, rank, world)

    # model, loss, optimiser
    model = build_network(cfg.net, len(data.modalities), scheme.n_outputs, **cfg.net_args).to(device)
    size_multiple = getattr(model, "size_multiple", None) or 1
    loss_fn = build_loss(cfg.loss, n_classes=scheme.n_outputs)
    kind = getattr(loss_fn, "kind", "multiclass")
    if (kind == "region") != scheme.region_training:
        raise InputError(
            f"loss '{cfg.loss}' is {kind}, but labels '{cfg.labels}' are "
            f"{'region' if scheme.region_training else 'class'}-based; "
            "use --labels regions with region losses"
        )
    sampler = PatchSampler(cfg.patch, cfg.foreground_p, size_multiple)
    prior_fractions = None
    if cfg.output_prior and not cfg.resume:
        prior_fractions = label_fractions(data.train_cases, sampler, scheme, kind, cfg.seed)
        init_output_prior(model, prior_fractions, kind)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last_3d) if model.spatial_dims == 3 else model
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = make_grad_scaler(cfg.precision, device)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        net = compile_for_training(net)
        if rank == 0 and cfg.progress:
            print(
                "compiling the network for training (torch.compile): "
                "the first iterations take minutes on a CPU"
            )
    augment = build_augment(cfg.augment)
    # one stream shared by all processes (same seed on every rank): see plan_global_batch
    np_rng = np.random.default_rng(cfg.seed * 1000)
    aug_gen = torch.Generator().manual_seed(cfg.seed * 1000)
    global_batch = cfg.batch * cfg.accumulate * world
    iters_per_epoch = cfg.iters_per_epoch or max(1, math.ceil(len(data.train_cases) / global_batch))
    total_iters = cfg.epochs * iters_per_epoch if cfg.epochs else None

    state = {"epoch": 0, "iteration": 0, "elapsed": 0.0, "best": -1.0, "best_epoch": None, "history": []}
    if cfg.resume:
        state = load_resume_state(out, model, optimizer, scaler, np_rng, aug_gen)
    if rank == 0:
        batching = {"iters_per_epoch": iters_per_epoch, "world_size": world, "global_batch": global_batch}
        _write_run_config(cfg, out, data, prior_fractions, device, batching)
    meta_out = model_metadata(
        cfg,
        scheme,
        data.modalities,
        len(data.modalities),
        kind,
        size_multiple,
        {"train_cases": data.train_ids, "val_cases": data.val_ids},
    )

    def progress() -> float:
        fractions = [state["iteration"] / total_iters] if total_iters else []
        if cfg.minutes:
            fractions.append(state["elapsed"] / (cfg.minutes * 60))
        return max(fractions)

    def timed_micro_batches(plan, timer: dict):
        """This process's micro-batches of the global batch ``plan``; adds the loading seconds to
        ``timer``."""
        for a in range(cfg.accumulate):
            t_data = time.monotonic()
            first = (a * world + rank) * cfg.batch  # this process's micro-batch of the global batch
            x, y = micro_batch(plan[first : first + cfg.batch], data.train_cases, sampler, augment, device)
            target = region_targets(y, scheme) if kind == "region" else y
            timer["data"] += time.monotonic() - t_data
            yield x, target

    bar = tqdm(
        total=total_iters,
        initial=state["iteration"],
        desc="train",
        unit="it",
        disable=not cfg.progress or rank != 0,
        dynamic_ncols=True,
    )
    while not all_agree(progress() >= 1.0, world):
        net.train()
        epoch_losses = []
        t_epoch, timer = time.monotonic(), {"data": 0.0}
        for _ in range(iters_per_epoch):
            t0 = time.monotonic()
            plan = plan_global_batch(data.train_cases, sampler, np_rng, aug_gen, global_batch)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, progress())
            loss = training_step(
                net,
                loss_fn,
                optimizer,
                scaler,
                timed_micro_batches(plan, timer),
                accumulate=cfg.accumulate,
                precision=cfg.precision,
                device=device,
                world=world,
                iteration=state["iteration"],
            )
            epoch_losses.append(loss)
            if on_step is not None:
                on_step(state["iteration"], loss, model)
            state["iteration"] += 1
            state["elapsed"] += time.monotonic() - t0
            bar.update(1)
            bar.set_postfix(
                epoch=state["epoch"] + 1,
                loss=f"{np.mean(epoch_losses):.4f}",
                lr=f"{optimizer.param_groups[0]['lr']:.2g}",
            )
            if all_agree(progress() >= 1.0, world):
                break
        state["epoch"] += 1
        row = {
            "epoch": state["epoch"],
            "iteration": state["iteration"],
            "seconds": round(state["elapsed"], 1),
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": float(np.mean(epoch_losses)),
            "epoch_seconds": round(time.monotonic() - t_epoch, 2),
            "data_seconds": round(timer["data"], 2),
        }
        done = all_agree(progress() >= 1.0, world)
        if rank == 0 and data.val_cases and (state["epoch"] % cfg.val_every == 0 or done):
            t_val = time.monotonic()
            scores = validation_scores(
                model, data.val_cases, scheme, kind, device, cfg.val_patch, cfg.precision
            )
            row.update(scores)
            row["val_seconds"] = round(time.monotonic() - t_val, 1)
            if scores["score"] > state["best"]:
                state["best"], state["best_epoch"] = scores["score"], state["epoch"]
                _save(
                    out,
                    save_model,
                    model,
                    meta_out | {"validation": scores, "epoch": state["epoch"]},
                    out / "best.safetensors",
                )
            bar.write(
                f"epoch {state['epoch']}: loss {row['train_loss']:.4f}  "
                + "  ".join(f"{k[5:]} {v:.3f}" for k, v in scores.items() if k.startswith("dice_"))
            )
        state["history"].append(row)
        if rank == 0:
            _write_epoch_files(
                out,
                model,
                meta_out,
                state,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng": rng_state(np_rng, aug_gen),
                },
            )
    bar.close()
    _finish(out, model, state, rank, world, on_end)
    return {
        "out": str(out),
        "epochs": state["epoch"],
        "iterations": state["iteration"],
        "seconds": state["elapsed"],
        "best_score": state["best"],
        "best_epoch": state["best_epoch"],
        "model": str(out / "model.safetensors"),
    }


def _save(out: Path, write, *args, **kwargs) -> None:
    """``write(*args, **kwargs)``; a run folder that cannot be written becomes one line (write_failed)."""
    try:
        write(*args, **kwargs)
    except OSError as exc:
        raise write_failed(out, exc) from exc


def _write_epoch_files(out: Path, model, meta_out: dict, state: dict, training_state: dict) -> None:
    """After each epoch: ``last.safetensors``, the checkpoint to resume from (``last.pt``, the one before kept
    as ``previous.pt``), ``log.csv`` and ``curves.png``."""
    _save(out, save_model, model, meta_out | {"epoch": state["epoch"]}, out / "last.safetensors")
    checkpoint = training_state | {k: v for k, v in state.items() if k != "history"}
    _save(
        out,
        save_checkpoint,
        checkpoint | {"history": json.dumps(state["history"])},
        out / "last.pt",
        previous=out / PREVIOUS_CHECKPOINT,
    )
    _save(out, write_rows, state["history"], out / "log.csv")
    _save(out, plot_curves, state["history"], out / "curves.png")


def _open_run_folder(cfg: TrainConfig, out: Path, rank: int) -> None:
    """Refuse a folder that is a file, not writable, or holds a run not being resumed; clear leftovers."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; --out must be a folder")
    if rank == 0:  # the only process that writes there
        check_writable(out)
    has_checkpoint = (out / "last.pt").exists() or (out / PREVIOUS_CHECKPOINT).exists()
    if has_checkpoint and not cfg.resume:
        raise InputError(f"{out}: holds a run already; add --resume to continue it or choose another --out")
    if cfg.resume and not has_checkpoint:
        raise InputError(f"{out}: no checkpoint (last.pt) to resume; start without --resume")
    if rank == 0:
        for path in remove_stale_temporaries(out):  # left by a run killed while writing
            warn(f"removed {path}, a temporary file left by an interrupted run")


def _write_run_config(
    cfg: TrainConfig, out: Path, data: TrainingData, prior_fractions, device, batching: dict
) -> None:
    """The run folder, its new split and ``config.json``: the settings and what they resolved to."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        if data.new_split is not None:
            save_split(data.split, data.new_split)
    except OSError as exc:
        raise write_failed(out, exc) from exc
    cfg_dict = cfg.to_dict() | {
        "modalities": list(data.modalities),
        "cache": str(data.cache_dir),
        "train_cases": data.train_ids,
        "val_cases": data.val_ids,
        "software": software_versions(),
        **batching,
        "compute_dtype": describe_precision(cfg.precision, device),
    }
    if prior_fractions is not None:
        cfg_dict["output_prior_fractions"] = [round(f, 6) for f in prior_fractions]
    elif cfg.output_prior and cfg.resume:  # a resumed run keeps its first start's record
        first = read_run_settings(out)
        if "output_prior_fractions" in first:
            cfg_dict["output_prior_fractions"] = first["output_prior_fractions"]
    if data.bad_cases:
        cfg_dict["skipped_cases"] = data.bad_cases
    _save(out, write_json_atomic, cfg_dict, out / "config.json")


def _finish(out: Path, model, state: dict, rank: int, world: int, on_end: Callable | None = None) -> None:
    """``model.safetensors``: the best (else the last) model; then the caller's ``on_end``, the last
    barrier."""
    if rank == 0:
        best = out / "best.safetensors"
        final = best if best.exists() else out / "last.safetensors"
        tmp = out / ".model.safetensors.tmp"
        try:
            shutil.copyfile(final, tmp)
            os.replace(tmp, out / "model.safetensors")
        except OSError as exc:
            raise write_failed(out, exc) from exc
    if on_end is not None:
        on_end(model, state["history"])
    if world > 1:
        torch.distributed.barrier()
