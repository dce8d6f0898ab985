"""Scoring a network during training: mean Dice per class and region over the validation cases."""

from __future__ import annotations

import numpy as np

from ..inference import predict_probabilities, probabilities_to_classes
from ..labels import LabelScheme
from ..metrics import dice


def validation_scores(
    model, cases, scheme: LabelScheme, kind: str, device, patch=None, precision: str = "auto"
) -> dict[str, float]:
    """Mean Dice per class and region over prepared validation cases, on the preprocessed grid.

    Args:
        model: the network (in eval mode).
        cases: prepared cases (image (C, X, Y, Z), label class indices (X, Y, Z)).
        scheme: the label scheme.
        kind: "region" or "multiclass" outputs.
        device: where inference runs.
        patch: sliding-window patch size (None: whole volume).
        precision: the autocast setting.

    Returns:
        ``dice_<class>`` and ``dice_<region>`` in [0, 1] (mean over cases), and ``score``: the mean of the
            region
        Dice scores (of all entries when the scheme has no regions).
    """
    sums: dict[str, list[float]] = {}
    for case in cases:
        probs = predict_probabilities(
            model,
            np.asarray(case.image, dtype=np.float32),
            kind=kind,
            patch=patch,
            device=device,
            precision=precision,
        )
        pred = probabilities_to_classes(probs, kind)
        ref = np.asarray(case.label)
        if kind == "region":
            pred_values = scheme.regions_to_values(pred)
        else:
            pred_values = scheme.to_values(pred)
        ref_values = scheme.to_values(ref)
        for k, name in enumerate(scheme.class_names[1:], start=1):
            v = scheme.values[k]
            sums.setdefault(f"dice_{name}", []).append(dice(pred_values == v, ref_values == v))
        for rname, members in scheme.regions.items():
            sums.setdefault(f"dice_{rname}", []).append(
                dice(np.isin(pred_values, members), np.isin(ref_values, members))
            )
    scores = {k: float(np.mean(v)) for k, v in sums.items()}
    region_keys = [f"dice_{r}" for r in scheme.regions] or list(scores)
    scores["score"] = float(np.mean([scores[k] for k in region_keys]))
    return scores
