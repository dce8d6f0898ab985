"""One model file from several trained models of the same kind: ``medseg3d ensemble`` (:func:`make_ensemble`).

The members (typically the five fold models of a cross-validation, as nnU-Net ships them) must agree on
everything that decides what a network reads and writes: network and its arguments, channels and their
order, labels, preprocessing, output kind, patch. The file holds every member's weights (``members.<i>.``)
and the members' common metadata plus an ``ensemble`` entry: how many members, where each came from and the
cases each was trained on. ``train_cases`` becomes the union, so that nothing an ensemble saw counts as
unseen. The members' calibration is dropped (temperatures fitted on one model do not fit the mean of
several; run ``medseg3d calibrate`` on the ensemble). Loading it (:func:`medseg3d.models.load_model`) gives an
:class:`~medseg3d.nets.ensemble.EnsembleNet`, which every inference path runs like one network.

Example::

    make_ensemble([f"runs/cv/fold{k}" for k in range(5)], "ensemble.safetensors", sliding_window=False)
    medseg3d predict ensemble.safetensors CASE -o out/
"""

from __future__ import annotations

import os
from pathlib import Path

from ..checkpoint import MAX_MEMBERS, check_inference, read_model_file, save_model, validate_model
from ..errors import ModelError
from ..nets.ensemble import build_from_meta
from .loading import resolve_model_path

MUST_AGREE = (
    "network",
    "net_args",
    "in_channels",
    "n_outputs",
    "modalities",
    "labels",
    "preprocess",
    "kind",
    "patch",
    "size_multiple",
    "spatial_dims",
    "space",
)
"""Metadata every member must share: what the network reads, how, and what it writes."""
PER_MEMBER = ("train_cases", "val_cases", "epoch", "trained_with", "loss")
"""Provenance kept for each member in the ensemble's metadata."""


def make_ensemble(
    models: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    name: str | None = None,
    sliding_window: bool | None = None,
    overlap: float | None = None,
) -> Path:
    """Write the ensemble of ``models`` to ``out``.

    Every member is checked (metadata and weights) before anything is written, and the file is written
    atomically.

    Args:
        models: 2 to :data:`MAX_MEMBERS` bundled names, run folders or ``.safetensors`` files, trained alike.
        out: the ensemble's ``.safetensors`` file.
        name: the ensemble's name in its metadata (None: none).
        sliding_window, overlap: how the ensemble runs when the user does not say (None: as the first member's
            metadata says).

    Returns:
        ``out``.

    Raises:
        ModelError: too few or too many models, one given twice, an export, or members that disagree (the
            first disagreement named).
    """
    if len(models) < 2:
        raise ModelError(f"an ensemble needs at least 2 models, got {len(models)}")
    if len(models) > MAX_MEMBERS:
        raise ModelError(f"an ensemble takes at most {MAX_MEMBERS} models, got {len(models)}")
    paths = [resolve_model_path(m) for m in models]
    if len({p.resolve() for p in paths}) != len(paths):
        raise ModelError("the same model file is given twice; an ensemble of copies only costs time")
    metas, states = [], []
    for path in paths:
        if path.suffix != ".safetensors":
            raise ModelError(f"{path}: ensemble members must be .safetensors models (not exports)")
        meta, state = read_model_file(path)
        validate_model(meta, state, path)
        if meta.get("ensemble"):
            raise ModelError(f"{path}: is an ensemble already; give its members instead")
        if (meta.get("inference") or {}).get("refiner"):
            raise ModelError(f"{path}: names a refiner; an ensemble of cascades is not supported")
        metas.append(meta)
        states.append(state)
    first = metas[0]
    for path, meta in zip(paths[1:], metas[1:]):
        for key in MUST_AGREE:
            if meta.get(key) != first.get(key):
                raise ModelError(
                    f"{path}: its {key} ({meta.get(key)!r}) differs from {paths[0]}'s "
                    f"({first.get(key)!r}); ensemble members must be trained alike"
                )
    net = build_from_meta(first, len(paths))
    for i, state in enumerate(states):
        net.members[i].load_state_dict(state)
    meta = {k: v for k, v in first.items() if k not in (*PER_MEMBER, "calibration", "name", "format")}
    inference = dict(first.get("inference") or {})
    if sliding_window is not None:
        inference["sliding_window"] = bool(sliding_window)
    if overlap is not None:
        inference["overlap"] = float(overlap)
    check_inference(inference, Path(out))
    meta["inference"] = inference
    members = [
        {"source": _source_name(p), **{k: m[k] for k in PER_MEMBER if k in m}} for p, m in zip(paths, metas)
    ]
    meta["ensemble"] = {
        "members": len(paths),
        "combine": "mean of the members' probabilities",
        "sources": members,
    }
    meta["train_cases"] = sorted({c for m in metas for c in m.get("train_cases") or []})
    if name:
        meta["name"] = name
    return save_model(net, meta, out)


def _source_name(path: Path) -> str:
    """A member's origin as the metadata records it: its run folder and file, no absolute path."""
    return f"{path.parent.name}/{path.name}"
