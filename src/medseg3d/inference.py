"""Network inference on a preprocessed volume: whole-volume or sliding-window, optional mirroring.

Shared by validation during training and by ``medseg3d predict``. Whole-volume inference pads the volume to
the network's size multiple and crops the output back; sliding-window inference uses MONAI's
``sliding_window_inference`` with Gaussian weighting (a generic job MONAI does well).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from .nets.padding import pad_to_multiple, unpad
from .precision import autocast


def pick_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def activation(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Probabilities from logits: softmax over classes, or sigmoid per region channel."""
    return torch.sigmoid(logits) if kind == "region" else torch.softmax(logits, dim=1)


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
                from monai.inferers import sliding_window_inference

                # MONAI pads a volume smaller than the window; windows must fit the network's size rule
                win = tuple(int(np.ceil(w / multiple) * multiple) for w in patch)
                out = sliding_window_inference(t, win, 1, model, overlap=overlap, mode="gaussian")
        return activation(out.float(), kind)

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


def probabilities_to_classes(probs: torch.Tensor | np.ndarray, kind: str, threshold: float = 0.5) -> np.ndarray:
    """Class indices (multiclass: argmax) or boolean region masks (region: threshold) as NumPy."""
    probs = torch.as_tensor(probs)
    if kind == "region":
        return (probs > threshold).numpy()
    return probs.argmax(0).to(torch.uint8).numpy()
