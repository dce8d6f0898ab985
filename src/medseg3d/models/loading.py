"""Finding and loading a model: a bundled name, a run folder, a ``.safetensors``, ONNX or TorchScript file.

Every path ends in a :class:`LoadedModel`: the network in eval mode on its device, its typed
:class:`~medseg3d.models.meta.ModelMeta`, label scheme and preprocessing, and for a bundled model its card.
Metadata and weights are checked before anything is built (:func:`medseg3d.checkpoint.validate_model`);
nothing in a model file can run code (safetensors; ONNX and TorchScript through their own loaders).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from ..checkpoint import ensemble_members, read_model_file, validate_model
from ..errors import ModelError
from ..precision import check_precision
from .exported import load_onnx_model
from .loaded import LoadedModel, bundled_models, loaded_model


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
            raise ModelError(
                f"{path}: not a model file; give a .safetensors or .onnx file, a run folder or a bundled name"
            )
        return path
    names = ", ".join(bundled) or "none installed"
    raise ModelError(f"{ref_s}: no such model file, run folder or bundled model (bundled: {names})")


def load_model(
    ref: str | os.PathLike,
    device: str = "auto",
    precision: str = "auto",
    refine: str | os.PathLike | None = "auto",
) -> LoadedModel:
    """Load a model by bundled name, run folder or file; metadata is checked before use.

    Args:
        ref: a bundled name, a run folder, or a ``.safetensors``, ``.onnx`` or ``.pt`` file.
        device: "auto", "cpu" or "cuda".
        precision: the one inference runs in (``auto`` / ``fp32`` / ``mixed``, see :mod:`medseg3d.precision`);
            ``auto`` takes the model file's own default.
        refine: attaches a refiner (:mod:`medseg3d.cascade`): ``auto`` the one the model's metadata names
            (``inference.refiner``, a bundled model), ``None`` or ``"none"`` none, else a bundled name, run
            folder or file.

    Raises:
        ModelError: the model cannot be found or read, its metadata is invalid, or the refiner does not fit.
    """
    return with_refiner(_load_one(ref, device, precision), refine)


def with_refiner(loaded: LoadedModel, refine: str | os.PathLike | None) -> LoadedModel:
    """``loaded`` with the refiner ``refine`` names, on the same device and in the same precision; ``loaded``
    itself is not changed.

    Args:
        loaded: the model.
        refine: as :func:`load_model`'s; ``auto`` keeps a refiner ``loaded`` has already, else loads the one
            its metadata names.

    Raises:
        ModelError: the metadata names a refiner that is not bundled, or the refiner does not fit the model.
    """
    if refine is None or str(refine) == "none":
        return replace(loaded, refiner=None) if loaded.refiner is not None else loaded
    if str(refine) == "auto":
        if loaded.refiner is not None:
            return loaded
        refine = loaded.meta.inference.get("refiner")
        if not refine:
            return loaded
        if str(refine) not in bundled_models():
            raise ModelError(
                f"{loaded.source}: its metadata names refiner {refine!r}, which is not a bundled "
                "model; reinstall medseg3d or pass --refine none"
            )
    from ..cascade import check_refiner

    refiner = _load_one(refine, str(loaded.device), loaded.precision)
    if refiner.meta.inference.get("refiner"):
        raise ModelError(
            f"{refiner.source}: a refiner must not name a refiner of its own; give its coarse model"
        )
    check_refiner(loaded, refiner)
    return replace(loaded, refiner=refiner)


def _load_one(ref: str | os.PathLike, device: str, precision: str) -> LoadedModel:
    check_precision(precision)
    from ..inference import pick_device
    from ..nets.ensemble import build_from_meta

    path = resolve_model_path(ref)
    if path.suffix == ".onnx":
        return load_onnx_model(path, device)
    meta, state = read_model_file(path)
    validate_model(meta, state, path)  # hostile or broken metadata and NaN weights: one clear line, no run
    try:
        model = build_from_meta(meta, ensemble_members(meta, path))
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{path}: weights do not fit network '{meta['network']}' ({str(exc).splitlines()[0][:160]})"
        ) from exc
    dev = pick_device(device)
    model.to(dev).eval()
    return loaded_model(model, meta, path, dev, precision)


def as_loaded(model) -> LoadedModel:
    """``model`` if it is loaded already, else :func:`load_model` of it."""
    return model if isinstance(model, LoadedModel) else load_model(model)
