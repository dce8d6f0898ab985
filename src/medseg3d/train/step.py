"""The one training step: forward, loss, backward, optimiser, with micro-batch accumulation and precision.

The training loop (:mod:`medseg3d.train.loop`), the experiments' timing estimates
(:mod:`medseg3d.experiments.timing`) and ``benchmarks/run.py`` all call :func:`training_step`, so what is
timed is what is trained.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable

import torch

from ..errors import InputError
from ..labels import LabelScheme
from ..precision import autocast, autocast_dtype
from .distributed import mean_across


def region_targets(classes: torch.Tensor, scheme: LabelScheme) -> torch.Tensor:
    """(N, X, Y, Z) class indices -> (N, R, X, Y, Z) float region masks.

    Args:
        classes: class indices into ``scheme.values``.
        scheme: the label scheme; R is the number of its regions, in its order.
    """
    masks = []
    for members in scheme.regions.values():
        ks = torch.tensor([scheme.values.index(v) for v in members], device=classes.device)
        masks.append(torch.isin(classes, ks))
    return torch.stack(masks, 1).float()


def make_grad_scaler(precision: str, device) -> torch.amp.GradScaler:
    """The gradient scaler of a training: float16 needs loss scaling; bfloat16 (mixed precision on a CPU)
    has float32's range and does not, and a disabled scaler passes losses and steps through unchanged.

    Args:
        precision, device: the autocast settings (:func:`medseg3d.precision.autocast_dtype`).
    """
    return torch.amp.GradScaler("cuda", enabled=autocast_dtype(precision, device) == torch.float16)


def training_step(
    net,
    loss_fn,
    optimizer,
    scaler: torch.amp.GradScaler,
    micro_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    accumulate: int = 1,
    precision: str = "auto",
    device="cpu",
    world: int = 1,
    iteration: int = 0,
) -> float:
    """One optimiser step over ``accumulate`` micro-batches; returns the mean loss (over processes too).

    Args:
        net: the network in training mode (wrapped in DistributedDataParallel when ``world`` > 1).
        loss_fn: ``loss_fn(logits, target)``; it sees float32 logits whatever the compute precision.
        optimizer, scaler: the optimiser (learning rate already set) and :func:`make_grad_scaler`'s scaler.
        micro_batches: ``accumulate`` pairs (inputs, target), drawn lazily, so a generator can load each
            micro-batch only when it is needed (and the caller can time the loading).
        precision, device: the autocast settings (:func:`medseg3d.precision.autocast`).
        world: processes taking this step together; each passes its own micro-batches.
        iteration: the step's number, for the message of a loss that is not finite.

    Raises:
        InputError: the loss is not finite on some process; every process raises it before any weight
            changes.
    """
    optimizer.zero_grad(set_to_none=True)
    step_loss = 0.0
    for a, (x, target) in enumerate(micro_batches):
        # DDP averages gradients only on the last micro-batch of the step
        sync = net.no_sync() if world > 1 and a < accumulate - 1 else contextlib.nullcontext()
        with sync:
            with autocast(precision, device):
                logits = net(x)
                loss = loss_fn(logits.float(), target)
            scaler.scale(loss / accumulate if accumulate > 1 else loss).backward()
        step_loss += loss.item() / accumulate
    step_loss, bad = mean_across([step_loss, 0.0 if math.isfinite(step_loss) else 1.0], world)
    if bad > 0:
        raise InputError(
            f"the loss became {step_loss} at iteration {iteration}; lower --lr or check the data (NaN inputs)"
        )
    scaler.step(optimizer)
    scaler.update()
    return step_loss


def compile_for_training(net):
    """``net`` compiled with ``torch.compile`` for the training step; validation and saving use the original.

    Faster per step on a 2-core CPU but hardly per epoch of a real training, after minutes of compilation the
    first time (docs/results.md, "Compiled training step"): an opt-in for other machines, not a preset
    default.

    The inputs must all have one size (patches, or a fixed crop): with whole crops of different sizes,
    torch 2.13's dynamic shapes failed to compile this network. If compilation fails (no C++ compiler, an
    unsupported platform), the step runs uncompiled, as without ``--compile``; this sets torch's
    process-wide ``suppress_errors`` switch.
    """
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True  # a backend failure falls back to eager, with a warning
    return torch.compile(net, dynamic=False)
