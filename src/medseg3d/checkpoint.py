"""Model files and training checkpoints, written atomically and loaded without running code.

* A **model** is ``<name>.safetensors`` (weights only) with its metadata stored inside the safetensors
  header (``medseg3d`` key, JSON): network name and arguments, input channels (modalities), label scheme,
  preprocessing and inference settings. Loading checks the metadata before building the network.
* A **training checkpoint** (``last.pt``) also holds the optimiser, scheduler, counters and RNG states; it is
  read with ``torch.load(..., weights_only=True)`` so a checkpoint from someone else cannot run code.

Every file is written to a temporary name in the same folder and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import torch

from .errors import MedsegError, ModelError
from .io import atomic_write
from .precision import PRECISIONS

MODEL_FORMAT = 1
REQUIRED_META = ("network", "in_channels", "n_outputs", "labels", "preprocess", "modalities")


def save_model(model: torch.nn.Module, meta: dict, path: str | Path) -> Path:
    """Write ``model``'s weights and ``meta`` to a safetensors file (atomic).

    Args:
        model: the network (a DDP wrapper's module is taken).
        meta: the metadata (:func:`medseg3d.train.config.model_metadata`).
        path: the file.

    Returns:
        The path.

    Raises:
        ModelError: the metadata lacks a required entry.
    """

    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ModelError(f"model metadata lacks {missing}")
    module = model.module if hasattr(model, "module") else model
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    return _write_model_file(state, {"format": MODEL_FORMAT, **meta}, Path(path))


def _write_model_file(state: dict, meta: dict, path: Path) -> Path:
    from safetensors.torch import save_file

    header = {"medseg3d": json.dumps(meta)}
    return atomic_write(path, lambda tmp: save_file(state, tmp, metadata=header))


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
        raise ModelError(
            f"{path}: not a readable safetensors model file ({str(exc).splitlines()[0]})"
        ) from exc
    meta = check_metadata(raw, path)
    return meta, state


def rewrite_model_metadata(path: str | Path, updates: dict, out: str | Path | None = None) -> Path:
    """Write ``path``'s weights again with ``updates`` merged into its metadata (atomic).

    Args:
        path: the model file.
        updates: top-level metadata entries to replace, e.g. ``{"inference": {"sliding_window": True}}``.
        out: the file to write (None: ``path``, in place).

    Returns:
        The file written.

    Raises:
        ModelError: the file is not a valid model, or the new ``inference`` entry is not understood.
    """
    meta, state = read_model_file(path)
    meta = meta | updates
    check_inference(meta.get("inference"), Path(path))
    return _write_model_file(state, meta, Path(out or path))


INFERENCE_KEYS = {
    "sliding_window",
    "overlap",
    "precision",
    "refiner",
    "max_distance_mm",
    "min_enhancing_mm3",
    "min_lesion_mm3",
    "mirror",
}
"""What a model file's ``inference`` metadata may say: how the model is run, and post-processed, by
default."""


def _non_negative(value) -> bool:
    """A finite number >= 0 (not a bool, not a string): a distance or volume a model file may carry."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value < float("inf")


def check_inference(inference, path: Path) -> None:
    """Check the optional ``inference`` metadata: how the model is meant to be run when the user does not say.

    Args:
        inference: the entry (None: none, accepted).
        path: the model file, for the message.

    Raises:
        ModelError: unknown keys, values of the wrong type or range, or a refiner that is not a bundled name.
    """
    if inference is None:
        return
    if not isinstance(inference, dict) or set(inference) - INFERENCE_KEYS:
        raise ModelError(
            f"{path}: its inference metadata {inference!r} is not understood; expected "
            "{'sliding_window': bool, 'overlap': float, 'precision': str, 'refiner': str, "
            "'max_distance_mm': float, 'min_enhancing_mm3': float, 'min_lesion_mm3': {region: float}, "
            "'mirror': bool}"
        )
    refiner = inference.get("refiner")
    # a bundled model's name only: metadata travels with the file and must not point at other files
    if refiner is not None and not (
        isinstance(refiner, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", refiner)
    ):
        raise ModelError(f"{path}: inference.refiner must be the name of a bundled model, got {refiner!r}")
    for flag in ("sliding_window", "mirror"):
        if not isinstance(inference.get(flag, False), bool):
            raise ModelError(f"{path}: inference.{flag} must be true or false")
    overlap = inference.get("overlap", 0.5)
    if not isinstance(overlap, (int, float)) or not 0 <= overlap < 1:
        raise ModelError(f"{path}: inference.overlap must be a number in [0, 1), got {overlap!r}")
    distance = inference.get("max_distance_mm", 0.0)
    if not _non_negative(distance):
        raise ModelError(
            f"{path}: inference.max_distance_mm must be a distance in mm >= 0 (0: off), got {distance!r}"
        )
    enhancing = inference.get("min_enhancing_mm3", 0.0)
    if not _non_negative(enhancing):
        raise ModelError(
            f"{path}: inference.min_enhancing_mm3 must be a volume in mm^3 >= 0 (0: off), got {enhancing!r}"
        )
    lesion = inference.get("min_lesion_mm3", {})
    if (
        not isinstance(lesion, dict)
        or set(lesion) - {"WT", "TC", "ET"}
        or not all(_non_negative(v) for v in lesion.values())
    ):
        raise ModelError(
            f"{path}: inference.min_lesion_mm3 must map regions WT, TC, ET to volumes in mm^3 >= 0, "
            f"got {lesion!r}"
        )
    if inference.get("precision", "auto") not in PRECISIONS:
        raise ModelError(
            f"{path}: inference.precision must be one of {', '.join(PRECISIONS)}, "
            f"got {inference['precision']!r}"
        )


def check_metadata(raw: str | None, path: Path, origin: str = "it was not written by medseg3d") -> dict:
    """Parse and check the medseg3d metadata JSON of a model file (safetensors, ONNX or TorchScript).

    Args:
        raw: the metadata text (None: the file has none).
        path: the model file, for the message.
        origin: the end of the message for a file without metadata.

    Returns:
        The metadata dict.

    Raises:
        ModelError: no metadata, invalid JSON, a required entry missing, a newer format, or bad inference
            settings.
    """
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


def state_digest(obj) -> str:
    """SHA-256 of a checkpoint's contents: every tensor's dtype, shape and bytes, and every other value."""
    digest = hashlib.sha256()

    def feed(value) -> None:
        if torch.is_tensor(value):
            flat = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"T{flat.dtype}{tuple(value.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            digest.update(b"{")
            for key in sorted(value, key=repr):
                feed(key)
                feed(value[key])
            digest.update(b"}")
        elif isinstance(value, (list, tuple)):
            digest.update(b"[")
            for item in value:
                feed(item)
            digest.update(b"]")
        else:
            digest.update(f"{type(value).__name__}:{value!r};".encode())

    feed(obj)
    return digest.hexdigest()


def save_checkpoint(state: dict, path: str | Path, previous: str | Path | None = None) -> Path:
    """``torch.save`` to a temporary file, then rename: an interrupted save never corrupts ``path``.

    The file carries a checksum of its contents (``sha256``): ``torch.load`` reads flipped bits inside
    tensor data as other numbers without a word, :func:`load_checkpoint` does not.

    Args:
        state: the training state (weights, optimiser, random streams, history).
        path: the checkpoint file.
        previous: where the checkpoint being replaced is kept (e.g. ``previous.pt``), so a resume can fall
            back to it if ``path`` is later damaged (a copy, a disk error); None: not kept.

    Returns:
        The path.
    """
    state = dict(state) | {"sha256": state_digest(state)}
    return atomic_write(Path(path), lambda tmp: torch.save(state, tmp), Path(previous) if previous else None)


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by :func:`save_checkpoint`, its checksum verified (older ones have none)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found; nothing to resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: cannot read the checkpoint ({str(exc).splitlines()[0][:200]})") from exc
    if isinstance(state, dict) and "sha256" in state:
        stored = state.pop("sha256")
        if state_digest(state) != stored:
            raise ModelError(
                f"{path}: the checkpoint is damaged (its contents do not match the checksum saved with it)"
            )
    return state


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


MAX_MEMBERS = 16
"""The most networks one ensemble file may hold (:mod:`medseg3d.models.ensemble`)."""


def ensemble_members(meta: dict, path: str | Path) -> int:
    """The number of networks an ensemble file's metadata declares (its ``ensemble.members``), checked.

    Args:
        meta: the model's metadata.
        path: the model file, for the message.

    Returns:
        The count (2 to :data:`MAX_MEMBERS`), 0 for a single model.

    Raises:
        ModelError: the entry is not a whole number in that range.
    """
    entry = meta.get("ensemble")
    if entry is None:
        return 0
    count = entry.get("members") if isinstance(entry, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or not 2 <= count <= MAX_MEMBERS:
        raise ModelError(
            f"{path}: its ensemble metadata must give 'members' as a whole number from 2 to "
            f"{MAX_MEMBERS}, got {count!r}; the model file is broken"
        )
    return count


def validate_model(meta: dict, state: dict | None, path: str | Path) -> None:
    """Refuse a model whose metadata or weights would run but give a wrong or empty result.

    Checked before the network is built (one :class:`ModelError` line each): a network this medseg3d does
    not know; channels and modalities that disagree; label values outside 0..255 (label files are written
    as bytes) or repeated; an output kind (``region``/``multiclass``) or output count that disagrees with the
    label scheme; a patch or size multiple that is not positive; preprocessing settings out of range; and
    weights holding NaN or infinite values, which turn every output into NaN and the segmentation into
    background.

    Args:
        meta: the model's metadata.
        state: its weights (None for exported files, checked elsewhere).
        path: the model file, for the message.

    Raises:
        ModelError: as said.
    """
    from .labels import LabelScheme
    from .nets import network_names
    from .preprocess import PrepConfig

    path = Path(path)
    network = meta["network"]
    if network not in network_names():
        raise ModelError(
            f"{path}: unknown network {network!r} (this medseg3d has {', '.join(network_names())}); "
            "update medseg3d or use a model made by it"
        )
    in_channels, n_outputs, modalities = meta["in_channels"], meta["n_outputs"], meta["modalities"]
    if not _whole(in_channels) or in_channels < 1:
        raise ModelError(f"{path}: in_channels must be a whole number >= 1, got {in_channels!r}")
    if not _whole(n_outputs) or n_outputs < 1:
        raise ModelError(f"{path}: n_outputs must be a whole number >= 1, got {n_outputs!r}")
    if (
        not isinstance(modalities, list)
        or len(modalities) != in_channels
        or not all(isinstance(m, str) and m for m in modalities)
    ):
        raise ModelError(f"{path}: modalities {modalities!r} do not name its {in_channels} input channels")
    labels = meta["labels"]
    values = labels.get("values") if isinstance(labels, dict) else None
    if not isinstance(values, list) or len(values) < 2 or not all(_whole(v) for v in values):
        raise ModelError(f"{path}: label values {values!r} are not a list of at least 2 whole numbers")
    if not all(0 <= v <= 255 for v in values) or len(set(values)) != len(values):
        raise ModelError(
            f"{path}: label values {values} must be distinct and within 0..255 (label files "
            "hold bytes); the model metadata is broken"
        )
    try:
        scheme = LabelScheme.from_dict(labels)
        region_values = [v for members in scheme.regions.values() for v in members]
    except MedsegError as exc:
        raise ModelError(f"{path}: its label scheme is malformed ({exc})") from exc
    if any(v not in values for v in region_values) or len(scheme.class_names) != len(values):
        raise ModelError(f"{path}: its label regions or class names do not match the label values {values}")
    kind = meta.get("kind", "multiclass")
    if kind not in ("multiclass", "region"):
        raise ModelError(f"{path}: output kind {kind!r} is not 'multiclass' or 'region'")
    if (kind == "region") != scheme.region_training:
        trained = "regions (sigmoid outputs)" if scheme.region_training else "classes (softmax outputs)"
        raise ModelError(
            f"{path}: declared {kind}, but its labels say it was trained on {trained}; "
            "the model metadata is inconsistent"
        )
    if scheme.n_outputs != n_outputs:
        raise ModelError(
            f"{path}: its label scheme has {scheme.n_outputs} outputs but the network {n_outputs}"
        )
    members = ensemble_members(meta, path)
    patch = meta.get("patch")
    if patch is not None and (
        not isinstance(patch, list) or len(patch) not in (2, 3) or not all(_whole(v) and v > 0 for v in patch)
    ):
        raise ModelError(f"{path}: patch {patch!r} is not 3 positive whole numbers (voxels per axis)")
    multiple = meta.get("size_multiple")
    if multiple is not None and (not _whole(multiple) or multiple < 1):
        raise ModelError(f"{path}: size_multiple {multiple!r} is not a whole number >= 1")
    calibration = meta.get("calibration")
    if calibration is not None:
        temps = calibration.get("temperatures") if isinstance(calibration, dict) else None
        allowed = (1, n_outputs) if kind == "region" else (1,)
        if (
            not isinstance(temps, list)
            or len(temps) not in allowed
            or not all(
                isinstance(t, (int, float)) and not isinstance(t, bool) and 0.05 <= t <= 20 for t in temps
            )
        ):
            raise ModelError(
                f"{path}: calibration temperatures {temps!r} are not {' or '.join(map(str, allowed))} "
                "numbers in [0.05, 20]; recalibrate with `medseg3d calibrate` or remove 'calibration'"
            )
        reference = calibration.get("confidence")
        if reference is not None:
            values = reference.get("held_out") if isinstance(reference, dict) else None
            source = reference.get("source", "mirrored") if isinstance(reference, dict) else None
            passes_ok = (
                reference.get("passes") in (2, 4, 8)
                if source == "mirrored"
                else source == "members" and members >= 2 and reference.get("passes") == members
            )
            if (
                not isinstance(values, list)
                or not passes_ok
                or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in values
                )
            ):
                raise ModelError(
                    f"{path}: calibration confidences are not held-out values in [0, 1] for 2, 4 or 8 "
                    "mirrored passes or for the ensemble's members; recalibrate with `medseg3d "
                    "calibrate` or remove 'calibration'"
                )
    try:
        PrepConfig.from_dict(meta["preprocess"])
    except (MedsegError, TypeError, KeyError, AttributeError) as exc:
        raise ModelError(
            f"{path}: its preprocessing settings are invalid ({str(exc).splitlines()[0][:160]})"
        ) from exc
    if state:
        broken = [k for k, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
        if broken:
            raise ModelError(
                f"{path}: {len(broken)} of its {len(state)} weight tensors hold NaN or infinite values "
                f"(first: {broken[0]}); the model is broken: use an earlier checkpoint or retrain"
            )
