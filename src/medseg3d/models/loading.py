"""Finding and loading a model: a bundled name, a run folder, a ``.safetensors``, ONNX or TorchScript file.

Every path ends in a :class:`LoadedModel`: the network in eval mode on its device, its typed
:class:`~medseg3d.models.meta.ModelMeta`, label scheme and preprocessing, and for a bundled model its card.
Metadata and weights are checked before anything is built (:func:`medseg3d.checkpoint.validate_model`);
nothing in a model file can run code (safetensors; ONNX and TorchScript through their own loaders).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checkpoint import read_model_file, validate_model
from ..errors import InputError, ModelError
from ..labels import LabelScheme
from ..precision import check_precision
from ..preprocess import PrepConfig
from .meta import ModelMeta

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


@dataclass
class LoadedModel:
    """A network ready for inference, with the metadata it was saved with."""

    model: torch.nn.Module
    meta: ModelMeta
    scheme: LabelScheme
    prep: PrepConfig
    device: torch.device
    precision: str = "auto"  # what the user asked; "auto" = the model file's default (see compute_precision)
    card: dict = field(default_factory=dict)
    """The bundled model's card (``weights/<name>.json``: data, command, scores), else empty."""
    source: Path | None = None

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.meta.modalities

    @property
    def kind(self) -> str:
        return self.meta.kind

    @property
    def name(self) -> str:
        """The bundled name, else the file's stem, else the network's name."""
        if self.meta.name:
            return self.meta.name
        return self.source.name.split(".")[0] if self.source is not None else self.meta.network

    def inference_settings(self, sliding_window: bool | None, overlap: float | None) -> tuple[bool, float]:
        """(sliding_window, overlap): what the caller asked, else the model file's ``inference`` metadata
        (a model trained on patches may ask to be run in windows of its patch size), else whole volume."""
        defaults = self.meta.inference
        if sliding_window is None:
            sliding_window = bool(defaults.get("sliding_window", False))
        if overlap is None:
            overlap = float(defaults.get("overlap", 0.5))
        if not 0 <= overlap < 1:
            raise InputError(f"--overlap must be in [0, 1), got {overlap}")
        return sliding_window, overlap

    def compute_precision(self) -> str:
        """The precision to run in: what the user asked, else the model file's ``inference.precision``
        (set for a model whose cross-validation was scored in it), else ``auto``."""
        if self.precision != "auto":
            return self.precision
        return self.meta.inference.get("precision", "auto")


def loaded_model(net: torch.nn.Module, meta: dict, path: Path, device: torch.device, precision: str = "auto") -> LoadedModel:
    """A :class:`LoadedModel` from a built network and its checked metadata (any file format)."""
    typed = ModelMeta.from_dict(meta)
    scheme = typed.scheme()
    if scheme.n_outputs != typed.n_outputs:
        raise ModelError(f"{path}: label scheme has {scheme.n_outputs} outputs but the network {typed.n_outputs}")
    bundled = path.parent.resolve() == WEIGHTS_DIR
    card = model_card(path.name[: -len(".safetensors")]) if bundled and path.suffix == ".safetensors" else {}
    return LoadedModel(net, typed, scheme, typed.prep(), device, precision, card, path)


def bundled_models() -> dict[str, Path]:
    """Names of the models shipped inside the package -> their files."""
    return {p.name[: -len(".safetensors")]: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}


def model_card(name: str) -> dict:
    """The card of bundled model ``name`` (``weights/<name>.json``), or ``{}``."""
    path = WEIGHTS_DIR / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if name and path.is_file() else {}


def resolve_model_path(ref: str | os.PathLike) -> Path:
    """The model file a bundled name, run folder or file names (checked to exist)."""
    ref_s = str(ref)
    bundled = bundled_models()
    if ref_s in bundled and not Path(ref_s).exists():
        return bundled[ref_s]
    path = Path(ref_s)
    if path.is_dir():
        for name in ("model.safetensors", "best.safetensors", "last.safetensors"):
            if (path / name).is_file():
                return path / name
        raise ModelError(f"{path}: run folder holds no model (model.safetensors); train it first")
    if path.is_file():
        if path.suffix == ".onnx":
            return path
        if path.suffix != ".safetensors":
            raise ModelError(f"{path}: not a model file; give a .safetensors or .onnx file, a run folder or a bundled name")
        return path
    names = ", ".join(bundled) or "none installed"
    raise ModelError(f"{ref_s}: no such model file, run folder or bundled model (bundled: {names})")


def load_model(ref: str | os.PathLike, device: str = "auto", precision: str = "auto") -> LoadedModel:
    """Load a model by bundled name, run folder or file; metadata is checked before use.

    ``precision`` (``auto`` / ``fp32`` / ``mixed``, see :mod:`medseg3d.precision`) is the one inference runs
    in; ``auto`` takes the model file's own default."""
    check_precision(precision)
    from ..inference import pick_device
    from ..nets import build_network

    path = resolve_model_path(ref)
    if path.suffix == ".onnx":
        from .exported import load_onnx_model

        return load_onnx_model(path, device)
    meta, state = read_model_file(path)
    validate_model(meta, state, path)  # hostile or broken metadata and NaN weights: one clear line, no run
    try:
        model = build_network(meta["network"], int(meta["in_channels"]), int(meta["n_outputs"]), **meta.get("net_args", {}))
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: weights do not fit network '{meta['network']}' ({str(exc).splitlines()[0][:160]})") from exc
    dev = pick_device(device)
    model.to(dev).eval()
    return loaded_model(model, meta, path, dev, precision)


def as_loaded(model) -> LoadedModel:
    """``model`` if it is loaded already, else :func:`load_model` of it."""
    return model if isinstance(model, LoadedModel) else load_model(model)
