"""A loaded model: the network ready for inference with its typed metadata and, if bundled, its card.

:func:`loaded_model` is where every loader (``.safetensors`` in :mod:`.loading`, ONNX and TorchScript in
:mod:`.exported`) ends; the bundled models and their cards live in ``weights/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import InputError, ModelError
from ..labels import LabelScheme
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
    refiner: LoadedModel | None = None
    """A model that refines this one's tumour at a finer resolution (:mod:`medseg3d.cascade`), or None."""

    @property
    def modalities(self) -> tuple[str, ...]:
        """The channels the model reads, in order."""
        return self.meta.modalities

    @property
    def kind(self) -> str:
        """ "region" (sigmoid outputs) or "multiclass" (softmax)."""
        return self.meta.kind

    @property
    def runnable_members(self) -> int:
        """How many members this model can run one by one: an ensemble's count when its network is an
        :class:`~medseg3d.nets.ensemble.EnsembleNet` (a ``.safetensors`` ensemble), else 1 (one network, or an
        ensemble exported to ONNX or TorchScript, which runs as one graph)."""
        from medseg3d.nets.ensemble import EnsembleNet

        return len(self.model.members) if isinstance(self.model, EnsembleNet) else 1

    @property
    def name(self) -> str:
        """The bundled name, else the file's stem, else the network's name."""
        if self.meta.name:
            return self.meta.name
        return self.source.name.split(".")[0] if self.source is not None else self.meta.network

    @property
    def pipeline_name(self) -> str:
        """The name to record with a result: the model's, and its refiner's if it has one."""
        return f"{self.name} refined by {self.refiner.name}" if self.refiner is not None else self.name

    def inference_settings(self, sliding_window: bool | None, overlap: float | None) -> tuple[bool, float]:
        """(sliding_window, overlap): what the caller asked, else the model file's ``inference`` metadata (a
        model trained on patches may ask to be run in windows of its patch size), else whole volume.

        Args:
            sliding_window: the caller's choice (None: the model's).
            overlap: the caller's window overlap in [0, 1) (None: the model's, else 0.5).

        Raises:
            InputError: an overlap outside [0, 1).
        """
        defaults = self.meta.inference
        if sliding_window is None:
            sliding_window = bool(defaults.get("sliding_window", False))
        if overlap is None:
            overlap = float(defaults.get("overlap", 0.5))
        if not 0 <= overlap < 1:
            raise InputError(f"--overlap must be in [0, 1), got {overlap}")
        return sliding_window, overlap

    def mirror(self, asked: bool | None) -> bool:
        """Whether to average the 8 mirrored passes: what the caller asked, else the model file's
        ``inference.mirror`` (set for a model whose cross-validation chose it), else one pass."""
        if asked is not None:
            return bool(asked)
        return bool(self.meta.inference.get("mirror", False))

    def max_distance(self, asked: float | None) -> float:
        """The far-component distance in mm (:func:`medseg3d.postprocess.remove_far_components`): what the
        caller asked (0: off), else the model file's ``inference.max_distance_mm`` (set for a model whose
        cross-validation chose it), else 0 (off)."""
        if asked is not None:
            return float(asked)
        return float(self.meta.inference.get("max_distance_mm", 0.0))

    def min_enhancing_mm3(self, asked_voxels: int | None) -> float:
        """The "no enhancing tumour" rule's threshold in mm^3
        (:func:`medseg3d.postprocess.relabel_small_enhancing`): 0 when the caller gave a voxel count
        (``--min-enhancing``, 0: off), else the model file's ``inference.min_enhancing_mm3`` (set for a model
        whose cross-validation chose it), else 0 (off)."""
        if asked_voxels is not None:
            return 0.0
        return float(self.meta.inference.get("min_enhancing_mm3", 0.0))

    def min_lesion_mm3(self) -> dict:
        """The model file's per-region component thresholds in mm^3 (``inference.min_lesion_mm3``, set for a
        model whose cross-validation chose them), else ``{}`` (off)."""
        return dict(self.meta.inference.get("min_lesion_mm3") or {})

    def compute_precision(self) -> str:
        """The precision to run in: what the user asked, else the model file's ``inference.precision``
        (set for a model whose cross-validation was scored in it), else ``auto``."""
        if self.precision != "auto":
            return self.precision
        return self.meta.inference.get("precision", "auto")


def loaded_model(
    net: torch.nn.Module, meta: dict, path: Path, device: torch.device, precision: str = "auto"
) -> LoadedModel:
    """A :class:`LoadedModel` from a built network and its checked metadata (any file format).

    Args:
        net: the network, weights loaded.
        meta: its checked metadata.
        path: the model file (a bundled one gets its model card).
        device: where it runs.
        precision: the inference precision ("auto", "fp32", "mixed").

    Raises:
        ModelError: the label scheme's output count differs from the network's.
    """
    typed = ModelMeta.from_dict(meta)
    scheme = typed.scheme()
    if scheme.n_outputs != typed.n_outputs:
        raise ModelError(
            f"{path}: label scheme has {scheme.n_outputs} outputs but the network {typed.n_outputs}"
        )
    bundled = path.parent.resolve() == WEIGHTS_DIR
    card = model_card(path.name[: -len(".safetensors")]) if bundled and path.suffix == ".safetensors" else {}
    return LoadedModel(net, typed, scheme, typed.prep(), device, precision, card, path)


def bundled_models() -> dict[str, Path]:
    """Names of the models shipped inside the package -> their files, aliases included (``brats`` -> the file
    of the version it stands for, see :func:`model_aliases`)."""
    files = {p.name[: -len(".safetensors")]: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}
    return files | {alias: files[target] for alias, target in model_aliases().items() if target in files}


def model_aliases() -> dict[str, str]:
    """Short names -> the bundled model they stand for (``weights/aliases.json``): ``brats`` names the current
    version, while every version stays selectable by its own name (``brats-v1``)."""
    path = WEIGHTS_DIR / "aliases.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def model_card(name: str) -> dict:
    """The card of bundled model ``name`` (``weights/<name>.json``, an alias's target's), or ``{}``."""
    name = model_aliases().get(name, name)
    path = WEIGHTS_DIR / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if name and path.is_file() else {}
