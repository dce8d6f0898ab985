"""What a model file says about itself, typed: :class:`ModelMeta`.

Every model medseg3d writes (``.safetensors`` from ``train``, ONNX and TorchScript from ``export``) carries
one JSON object of metadata. Its keys are checked by :func:`medseg3d.checkpoint.validate_model` before
anything is built from them; :class:`ModelMeta` then gives them names and types, so that predict, export,
calibrate and ``medseg3d models`` read ``meta.in_channels`` instead of ``meta["in_channels"]``. Keys it has no
field for (provenance: ``trained_with``, ``train_cases``, ``software``, ``export``...) are kept in ``extra``,
and :meth:`ModelMeta.to_dict` gives back exactly the object that was read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..errors import ModelError
from ..labels import LabelScheme
from ..preprocess import PrepConfig

_ALWAYS = ("network", "in_channels", "n_outputs", "modalities", "labels", "preprocess", "kind")


@dataclass
class ModelMeta:
    """A model's metadata: what it needs, what it outputs and how it is meant to be run."""

    network: str
    """Registry name of the network (``medseg3d nets``)."""
    in_channels: int
    n_outputs: int
    modalities: tuple[str, ...]
    """The input channels in order (``flair``, ``t1``, ...)."""
    labels: dict
    """The label scheme as stored (:meth:`scheme` builds it)."""
    preprocess: dict
    """The preprocessing as stored (:meth:`prep` builds it)."""
    kind: str = "multiclass"
    """``multiclass`` (softmax over classes) or ``region`` (a sigmoid per region, e.g. BraTS WT/TC/ET)."""
    net_args: dict = field(default_factory=dict)
    patch: tuple[int, ...] | None = None
    """The training patch, in voxels (sliding windows run in it), or None for whole crops."""
    size_multiple: int | None = None
    spatial_dims: int = 3
    inference: dict = field(default_factory=dict)
    """How to run it when the user does not say: ``sliding_window``, ``overlap``, ``precision``."""
    calibration: dict | None = None
    """Temperature scaling fitted by ``medseg3d calibrate`` (``temperatures``, where and how it was
    fitted)."""
    space: dict | None = None
    """The grid it was trained on (spacing, axcodes, shape) when not BraTS's."""
    name: str | None = None
    ensemble: dict | None = None
    """For an ensemble file (:mod:`medseg3d.models.ensemble`): ``members`` (how many), ``combine`` and each
    member's ``sources`` (run, training cases), else None."""
    extra: dict = field(default_factory=dict)
    """Every other key of the stored metadata (provenance), kept as read."""

    @classmethod
    def from_dict(cls, meta: dict) -> ModelMeta:
        """The typed view of a stored metadata object (checked beforehand by ``validate_model``)."""
        from ..checkpoint import REQUIRED_META

        missing = [k for k in REQUIRED_META if k not in meta]
        if missing:
            raise ModelError(f"model metadata lacks {', '.join(missing)}; it was not written by medseg3d")
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in meta.items() if k in known}
        values["modalities"] = tuple(values["modalities"])
        if values.get("patch") is not None:
            values["patch"] = tuple(int(v) for v in values["patch"])
        values["in_channels"], values["n_outputs"] = int(values["in_channels"]), int(values["n_outputs"])
        values["net_args"] = dict(values.get("net_args") or {})
        values["inference"] = dict(values.get("inference") or {})
        self = cls(**values, extra={k: v for k, v in meta.items() if k not in known})
        self._stored = dict(meta)  # for an exact round trip (key order, absent optional keys)
        return self

    def to_dict(self) -> dict:
        """The metadata as stored: what :meth:`from_dict` read, with any field changed since written back."""
        out = dict(getattr(self, "_stored", {}))
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            # what every model states is always written; optional fields only when set
            if f.name in out or f.name in _ALWAYS or value not in (None, {}, f.default):
                out[f.name] = value
        out.update(self.extra)
        return out

    def scheme(self) -> LabelScheme:
        """The label scheme the metadata stores."""
        return LabelScheme.from_dict(self.labels)

    def prep(self) -> PrepConfig:
        """The preprocessing settings the metadata stores."""
        return PrepConfig.from_dict(self.preprocess)

    @property
    def temperatures(self) -> list[float] | None:
        """The calibration temperatures (one per output, or one for a softmax), if the model was
        calibrated."""
        temps = (self.calibration or {}).get("temperatures")
        return [float(t) for t in temps] if temps else None

    @property
    def train_cases(self) -> list[str]:
        """The cases the model was trained on, as its metadata lists them ([] when it does not say)."""
        return list(self.extra.get("train_cases") or [])

    @property
    def members(self) -> int:
        """How many networks the file holds: 1, or an ensemble's member count."""
        return int((self.ensemble or {}).get("members", 1))

    @property
    def display_name(self) -> str:
        """The model's name, else its network's."""
        return self.name or self.network
