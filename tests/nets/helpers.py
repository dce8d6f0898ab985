"""Shared helpers for the network tests: small inputs per registered network and batch-norm calibration."""

from __future__ import annotations

import torch
from torch import nn

# Small but valid inputs and narrow widths for every registered network, so that the default test run
# stays fast. The full-width defaults of the big networks are covered by tests marked slow.
SMALL_CASES: dict[str, tuple[dict, tuple[int, ...]]] = {
    "kayalibay": ({}, (1, 4, 16, 16, 16)),
    "kayalibay-sum": ({}, (1, 4, 16, 16, 16)),
    "kayalibay-noskip": ({}, (1, 4, 16, 16, 16)),
    "kayalibay-single": ({}, (1, 4, 16, 16, 16)),
    "kayalibay-deep": ({}, (1, 4, 16, 16, 16)),
    "kayalibay-deep-sum": ({}, (1, 4, 16, 16, 16)),
    "unet3d": ({"base_channels": 4, "max_channels": 32}, (1, 4, 32, 32, 32)),
    "unet2d": ({"base_channels": 4}, (1, 4, 188, 204)),
    "twopath": ({"local_channels": (8, 8), "global_channels": 16}, (1, 4, 40, 45)),
    "inputcascade": ({"local_channels": (8, 8), "global_channels": 16}, (1, 4, 72, 70)),
    "tiny-unet": ({}, (1, 4, 16, 16, 24)),
}


def n_classes_for(name: str) -> int:
    return 1 if name == "tiny-unet" else 5


def calibrate_batch_norm(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set batch-norm running statistics to those of ``x`` and switch to eval mode.

    Freshly initialised networks have running mean 0 / variance 1, which lets activations of the deep
    residual variants grow to ~100 in eval mode; calibrated statistics keep outputs at a realistic scale
    for the float comparisons of the export tests.
    """
    batch_norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in batch_norms]
    for module in batch_norms:
        module.reset_running_stats()
        module.momentum = None  # cumulative average: one pass gives exactly the batch statistics
    model.train()
    with torch.no_grad():
        model(x)
    for module, momentum in zip(batch_norms, saved):
        module.momentum = momentum
    return model.eval()
