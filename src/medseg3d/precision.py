"""Numeric precision of training and inference: float32, or mixed precision where the hardware runs it fast.

Three settings, for ``medseg3d train --precision`` and ``medseg3d predict --precision``:

* ``fp32``: float32 everywhere.
* ``mixed``: convolutions in a 16-bit type, losses and normalisation statistics in float32
  (``torch.autocast``): float16 with loss scaling on CUDA; bfloat16 on a CPU with native bfloat16 instructions
  (AVX-512 BF16 or AMX; faster than float32 per training step and inference pass, measured:
  docs/results.md#mixed-precision-bfloat16-on-this-cpu). A CPU without them emulates bfloat16 slowly, so
  there ``mixed`` falls back to float32.
* ``auto`` (default): ``mixed`` on CUDA, ``fp32`` on the CPU for training, so that CPU runs reproduce
  earlier float32 runs exactly; presets that were measured in mixed precision ask for it explicitly.

Example:
    >>> import torch
    >>> autocast_dtype("fp32", torch.device("cpu")) is None
    True
    >>> autocast_dtype("auto", torch.device("cuda"))
    torch.float16
"""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:  # torch is imported where it is used, so that the command line starts fast
    import torch

PRECISIONS = ("auto", "fp32", "mixed")


@functools.cache
def native_bf16() -> bool:
    """True if this CPU computes bfloat16 convolutions natively (oneDNN with AVX-512 BF16 or AMX)."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # builds without oneDNN, or an older torch without the probe
        return False


def check_precision(precision: str) -> str:
    """``precision`` itself if it is one of :data:`PRECISIONS`; InputError otherwise."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def autocast_dtype(precision: str, device: torch.device | str) -> torch.dtype | None:
    """The 16-bit type that ``precision`` runs in on ``device``, or ``None`` for float32.

    Args:
        precision: "auto", "fp32" or "mixed".
        device: the device; CUDA runs float16 unless fp32, a CPU bfloat16 only for "mixed" where it has native
            bfloat16.

    Raises:
        InputError: an unknown precision.
    """
    import torch

    check_precision(precision)
    kind = torch.device(device).type
    if precision == "fp32":
        return None
    if kind == "cuda":
        return torch.float16
    if kind == "cpu" and precision == "mixed" and native_bf16():
        return torch.bfloat16
    return None


def autocast(precision: str, device: torch.device | str):
    """A ``torch.autocast`` context for ``precision`` on ``device`` (a no-op context in float32).

    Args:
        precision, device: as :func:`autocast_dtype`.
    """
    import torch

    dtype = autocast_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def describe(precision: str, device: torch.device | str) -> str:
    """What ``precision`` resolves to on ``device``: ``"float32"``, ``"bfloat16"`` or ``"float16"``.

    Args:
        precision, device: as :func:`autocast_dtype`.
    """
    dtype = autocast_dtype(precision, device)
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")
