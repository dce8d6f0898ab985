"""Network inference on a preprocessed volume: whole-volume or sliding-window, optional mirroring.

Shared by validation during training and by ``medseg3d predict``. Whole-volume inference pads the volume to
the network's size multiple and crops the output back; sliding-window inference blends overlapping windows
with Gaussian weights (:func:`sliding_window`, as MONAI's ``sliding_window_inference`` does in its gaussian
mode, without importing MONAI).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from .nets.padding import pad_to_multiple, unpad
from .precision import autocast

WINDOW_BATCH = 2
"""Windows per network call in sliding-window inference: pairs were the fastest on a 2-core CPU for little
more memory (measured in docs/results.md, "Windows in pairs")."""


def pick_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def activation(logits: torch.Tensor, kind: str, groups: int = 1) -> torch.Tensor:
    """Probabilities from logits (N, C, ...): softmax over classes, or sigmoid per region channel.

    Args:
        logits: the network output.
        kind: "multiclass" (softmax) or "region" (sigmoid).
        groups: the C channels are that many blocks of C / groups outputs (an ensemble's mean and each of
            its members, :meth:`medseg3d.nets.ensemble.EnsembleNet.forward_all`), each block activated on its
            own.
    """
    if kind == "region":
        return torch.sigmoid(logits)
    if groups == 1:
        return torch.softmax(logits, dim=1)
    n, c = logits.shape[:2]
    blocks = logits.reshape(n, groups, c // groups, *logits.shape[2:])
    return torch.softmax(blocks, dim=2).reshape(logits.shape)


@torch.no_grad()
def predict_probabilities(
    model: torch.nn.Module,
    image: np.ndarray | torch.Tensor,
    kind: str = "multiclass",
    patch: tuple[int, ...] | None = None,
    overlap: float = 0.5,
    mirror: bool = False,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    max_voxels: int = 24_000_000,
    groups: int = 1,
    window_batch: int = WINDOW_BATCH,
) -> torch.Tensor:
    """Probabilities (K, x, y, z) on the grid of ``image`` (C, x, y, z), as float32 on the CPU.

    Args:
        model: network in eval mode (switched here).
        image: preprocessed channels.
        kind: ``"multiclass"`` (softmax) or ``"region"`` (sigmoid).
        patch: sliding-window size; ``None`` = whole volume if it has at most ``max_voxels`` voxels,
            else windows of 128^3.
        overlap: sliding-window overlap fraction.
        mirror: average over the 8 mirrored copies (test-time augmentation).
        device: where to run; CUDA uses channels-last memory for 3D networks.
        precision: ``"auto"`` / ``"fp32"`` / ``"mixed"`` (see :mod:`medseg3d.precision`): ``auto`` runs in
            float16 on CUDA and float32 on the CPU.
        groups: the model's output channels are this many blocks of outputs, each activated on its own (see
            :func:`activation`); windows and mirrored copies are blended alike in every block.
        window_batch: windows per network call (:data:`WINDOW_BATCH`).
    """
    device = torch.device(device) if not isinstance(device, torch.device) else device
    model.eval()
    x = torch.as_tensor(np.asarray(image, dtype=np.float32) if not torch.is_tensor(image) else image).float()
    x = x[None].to(device)
    if device.type == "cuda" and x.ndim == 5:
        # channels-last (NDHWC) lets cuDNN pick its fastest 3D kernels, as in training
        model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    multiple = getattr(model, "size_multiple", None) or 1
    spatial = x.shape[2:]
    n_vox = int(np.prod(spatial))
    if patch is None and n_vox > max_voxels:
        patch = (128,) * len(spatial)

    def run(t: torch.Tensor) -> torch.Tensor:
        with autocast(precision, device):
            if patch is None:
                padded, pads = pad_to_multiple(t, multiple)
                out = unpad(model(padded), pads)
            else:
                # windows must fit the network's size rule
                win = tuple(int(np.ceil(w / multiple) * multiple) for w in patch)
                out = sliding_window(model, t, win, overlap, batch=window_batch)
        return activation(out.float(), kind, groups)

    if not mirror:
        probs = run(x)
    else:
        dims = list(range(2, x.ndim))
        probs = None
        count = 0
        for r in range(len(dims) + 1):
            for axes in itertools.combinations(dims, r):
                t = torch.flip(x, axes) if axes else x
                p = run(t)
                p = torch.flip(p, axes) if axes else p
                probs = p if probs is None else probs + p
                count += 1
        probs = probs / count
    return probs[0].float().cpu()


def gaussian_weights(window: tuple[int, ...], sigma_scale: float = 0.125) -> torch.Tensor:
    """Blending weights of a window: a separable Gaussian centred on the window, at least 1e-3 (or its
    smallest
    value if larger), float32.

    Args:
        window: the window's size in voxels per axis.
        sigma_scale: sigma as a fraction of the window's size along each axis.
    """
    weights = None
    for i, n in enumerate(window):
        x = torch.arange(start=-(n - 1) / 2.0, end=(n - 1) / 2.0 + 1, dtype=torch.float)
        x = torch.exp(x**2 / (-2 * (n * sigma_scale) ** 2))
        weights = x if i == 0 else weights.unsqueeze(-1) * x[(None,) * i]
    return torch.clamp(weights, min=max(float(weights.min()), 1e-3))


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Where windows start along one axis: every ``int(window * (1 - overlap))`` voxels (at least 1), the last
    one moved back to end at the border.

    Args:
        size: the axis length in voxels (>= ``window``).
        window: the window's length in voxels.
        overlap: the fraction of a window shared with the next, in [0, 1).
    """
    if window == size:
        return [0]
    step = max(int(window * (1 - overlap)), 1)
    count = next(d for d in range(size) if d * step + window >= size) + 1
    return [d * step - max(d * step + window - size, 0) for d in range(count)]


def sliding_window(
    model, x: torch.Tensor, window: tuple[int, ...], overlap: float, batch: int = 1
) -> torch.Tensor:
    """``model``'s output for ``x`` in overlapping windows, blended with :func:`gaussian_weights`.

    The way MONAI's ``sliding_window_inference`` does with ``mode="gaussian"``, one window at a time; written
    here because importing MONAI costs a single case seconds (measured:
    docs/results.md#where-a-single-cases-seconds-go-profile-for-issue-22-this-cpu-no-bfloat16). A volume
    smaller than the window along an axis is padded with zeros, evenly on both sides, and the output cropped
    back.

    Args:
        model: the network (called on (B, C, *window) tensors).
        x: the input, (1, C, *spatial).
        window: the window size in voxels per spatial axis.
        overlap: the fraction of a window shared with its neighbour, in [0, 1).
        batch: windows that go through the network at once (as MONAI's ``sw_batch_size``; only for a single
            input, ``x.shape[0] == 1``), blended in the same order.

    Returns:
        The output, (1, K, *spatial).
    """
    spatial = x.shape[2:]
    pads = [max(w - n, 0) for w, n in zip(window, spatial)]
    if any(pads):
        flat = []
        for pad in reversed(pads):  # F.pad lists the last axis first
            flat += [pad // 2, pad - pad // 2]
        x = torch.nn.functional.pad(x, flat)
    size = x.shape[2:]
    weights = gaussian_weights(window).to(device=x.device, dtype=x.dtype)[None, None]
    boxes = [
        tuple(slice(s, s + w) for s, w in zip(starts, window))
        for starts in itertools.product(*(window_starts(n, w, overlap) for n, w in zip(size, window)))
    ]
    out = count = None
    batch = max(int(batch), 1) if x.shape[0] == 1 else 1
    for first in range(0, len(boxes), batch):
        chunk = boxes[first : first + batch]
        inputs = [x[(slice(None), slice(None), *box)] for box in chunk]
        logits = model(inputs[0] if len(inputs) == 1 else torch.cat(inputs))
        if out is None:
            out = torch.zeros((x.shape[0], logits.shape[1], *size), dtype=x.dtype, device=x.device)
            count = torch.zeros((1, 1, *size), dtype=x.dtype, device=x.device)
            for b in boxes:
                count[(slice(None), slice(None), *b)] += weights
        for i, box in enumerate(chunk):
            out[(slice(None), slice(None), *box)] += logits[i : i + 1] * weights
    out /= count
    if any(pads):
        out = out[(slice(None), slice(None), *(slice(p // 2, p // 2 + n) for p, n in zip(pads, spatial)))]
    return out


def probabilities_to_classes(
    probs: torch.Tensor | np.ndarray, kind: str, threshold: float = 0.5
) -> np.ndarray:
    """Class indices (multiclass: argmax, uint8) or boolean region masks (region: threshold) as NumPy.

    Args:
        probs: (K, X, Y, Z) probabilities.
        kind: "multiclass" or "region".
        threshold: the region threshold.
    """
    probs = torch.as_tensor(probs)
    if kind == "region":
        return (probs > threshold).numpy()
    return probs.argmax(0).to(torch.uint8).numpy()


def model_input(
    model,
    image: np.ndarray,
    affine: np.ndarray,
    *,
    sliding_window: bool | None = None,
    overlap: float | None = None,
):
    """Raw channels preprocessed as ``model`` was trained, ready for :func:`predict_probabilities`.

    Args:
        model: a :class:`~medseg3d.models.LoadedModel` (its preprocessing, patch, kind, device, precision).
        image: raw channels (C, X, Y, Z) in the model's channel order.
        affine: their grid's affine.
        sliding_window, overlap: as asked; None takes the model file's own
            (:meth:`LoadedModel.inference_settings`).

    Returns:
        ``(x, record, settings)``: the preprocessed channels, the :class:`~medseg3d.preprocess.PrepRecord`
        that undoes the preprocessing, and the keyword arguments of :func:`predict_probabilities` for this
        model.

    Raises:
        InputError: the image has another number of channels than the model takes, or ``overlap`` is outside
            [0, 1).
    """
    from .errors import InputError
    from .preprocess import preprocess

    if image.shape[0] != model.meta.in_channels:
        raise InputError(
            f"the model needs {model.meta.in_channels} channels ({', '.join(model.modalities)}), "
            f"the input has {image.shape[0]}"
        )
    sliding_window, overlap = model.inference_settings(sliding_window, overlap)
    x, _, record = preprocess(image, affine, model.prep)
    patch = model.meta.patch if sliding_window else None
    if sliding_window and patch is None:
        patch = (128, 128, 128)
    return (
        x,
        record,
        dict(
            kind=model.kind,
            patch=patch,
            overlap=overlap,
            device=model.device,
            precision=model.compute_precision(),
        ),
    )
