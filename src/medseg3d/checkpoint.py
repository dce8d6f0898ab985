"""Model files and training checkpoints, written atomically and loaded without running code.

* A **model** is ``<name>.safetensors`` (weights only) with its metadata stored inside the safetensors
  header (``medseg3d`` key, JSON): network name and arguments, input channels (modalities), label scheme,
  preprocessing and inference settings. Loading checks the metadata before building the network.
* A **training checkpoint** (``last.pt``) also holds the optimiser, scheduler, counters and RNG states; it is
  read with ``torch.load(..., weights_only=True)`` so a checkpoint from someone else cannot run code.

Every file is written to a temporary name in the same folder and renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from .errors import ModelError
from .precision import PRECISIONS

MODEL_FORMAT = 1
REQUIRED_META = ("network", "in_channels", "n_outputs", "labels", "preprocess", "modalities")


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes private (0600) files; give the result the permissions of any new file (umask)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_model(model: torch.nn.Module, meta: dict, path: str | Path) -> Path:
    """Write ``model``'s weights and ``meta`` to a safetensors file (atomic)."""

    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ModelError(f"model metadata lacks {missing}")
    module = model.module if hasattr(model, "module") else model
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    return _write_model_file(state, {"format": MODEL_FORMAT, **meta}, Path(path))


def _write_model_file(state: dict, meta: dict, path: Path) -> Path:
    from safetensors.torch import save_file

    header = {"medseg3d": json.dumps(meta)}
    return _atomic(path, lambda tmp: save_file(state, tmp, metadata=header))


def read_model_file(path: str | Path) -> tuple[dict, dict]:
    """(metadata, state_dict) of a model file, checked; never executes code from the file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get("medseg3d")
            state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ModelError(f"{path}: not a readable safetensors model file ({str(exc).splitlines()[0]})") from exc
    meta = check_metadata(raw, path)
    return meta, state


def rewrite_model_metadata(path: str | Path, updates: dict, out: str | Path | None = None) -> Path:
    """Write ``path``'s weights again with ``updates`` merged into its metadata (to ``out``, default in
    place; atomic). E.g. ``{"inference": {"sliding_window": True, "overlap": 0.5}}``."""
    meta, state = read_model_file(path)
    meta = meta | updates
    check_inference(meta.get("inference"), Path(path))
    return _write_model_file(state, meta, Path(out or path))


def check_inference(inference, path: Path) -> None:
    """The optional ``inference`` metadata: how the model is meant to be run when the user does not say."""
    if inference is None:
        return
    if not isinstance(inference, dict) or set(inference) - {"sliding_window", "overlap", "precision"}:
        raise ModelError(f"{path}: its inference metadata {inference!r} is not understood; "
                         "expected {{'sliding_window': bool, 'overlap': float, 'precision': str}}")
    if not isinstance(inference.get("sliding_window", False), bool):
        raise ModelError(f"{path}: inference.sliding_window must be true or false")
    overlap = inference.get("overlap", 0.5)
    if not isinstance(overlap, (int, float)) or not 0 <= overlap < 1:
        raise ModelError(f"{path}: inference.overlap must be a number in [0, 1), got {overlap!r}")
    if inference.get("precision", "auto") not in PRECISIONS:
        raise ModelError(f"{path}: inference.precision must be one of {', '.join(PRECISIONS)}, "
                         f"got {inference['precision']!r}")


def check_metadata(raw: str | None, path: Path, origin: str = "it was not written by medseg3d") -> dict:
    """Parse and check the medseg3d metadata JSON of a model file (safetensors, ONNX or TorchScript)."""
    if raw is None:
        raise ModelError(f"{path}: has no medseg3d metadata; {origin}")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: its medseg3d metadata is not valid JSON") from exc
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ModelError(f"{path}: model metadata lacks {missing}; the file is incomplete")
    if meta.get("format", 0) > MODEL_FORMAT:
        raise ModelError(f"{path}: made by a newer medseg3d (format {meta['format']}); upgrade medseg3d")
    check_inference(meta.get("inference"), path)
    return meta


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """``torch.save`` to a temporary file, then rename: an interrupted save never corrupts ``path``."""
    return _atomic(Path(path), lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found; nothing to resume")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: cannot read the checkpoint ({str(exc).splitlines()[0][:200]})") from exc
