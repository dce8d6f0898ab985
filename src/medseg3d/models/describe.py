"""``medseg3d models``: the bundled models, what each was trained on, its channels, labels, scores.

Each bundled model is ``weights/<name>.safetensors`` (weights + metadata) with ``weights/<name>.json`` beside
it: a human-readable card (training data, command, time, cross-validated scores, licence).
"""

from __future__ import annotations

import re

from ..checkpoint import read_model_file
from .loaded import bundled_models, model_aliases, model_card
from .meta import ModelMeta


def describe_models() -> str:
    """A readable list of the bundled models (for ``medseg3d models``)."""
    aliases = model_aliases()
    models = {name: path for name, path in bundled_models().items() if name not in aliases}
    # what the aliases name first (what `predict brats` runs), then the other versions, newest first
    order = sorted(
        models, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)], reverse=True
    )
    order.sort(key=lambda n: n not in aliases.values())  # stable: keeps newest first within each group
    models = {name: models[name] for name in order}
    if not models:
        return "no bundled model is installed"
    lines = [
        f"{alias} = {target} (what `medseg3d predict {alias}` runs)"
        for alias, target in aliases.items()
        if target in models
    ]
    for name, path in models.items():
        meta = ModelMeta.from_dict(read_model_file(path)[0])
        card = model_card(name)
        labels = meta.labels
        lines.append(f"{name}  ({path.stat().st_size / 1e6:.1f} MB)")
        lines.append(f"  network      {meta.network} {meta.net_args or ''}".rstrip())
        if meta.ensemble:
            lines.append(
                f"  ensemble     {meta.members} members, the mean of their probabilities (each member runs "
                "on every case)"
            )
        lines.append(f"  channels     {', '.join(meta.modalities)}")
        lines.append(
            f"  labels       {labels['name']} values {labels['values']}"
            + (
                " (trained on regions " + ", ".join(labels["regions"]) + ")"
                if labels.get("region_training")
                else ""
            )
        )
        lines.append(f"  preprocess   {meta.preprocess}")
        inference = meta.inference
        if inference.get("refiner"):
            lines.append(
                f"  refined by   {inference['refiner']} in the box around the tumour (--refine none: without)"
            )
        if inference.get("sliding_window") and meta.patch:
            window = "x".join(str(v) for v in meta.patch)
            lines.append(
                f"  inference    windows of {window} voxels, overlap {inference.get('overlap', 0.5)} "
                "(--whole-volume for one pass)"
            )
        else:
            lines.append("  inference    whole cropped volume in one pass (--sliding-window for windows)")
        if inference.get("mirror"):
            lines.append("  mirroring    mean of the 8 mirrored passes (--no-mirror for one pass)")
        if inference.get("max_distance_mm"):
            lines.append(
                f"  post-process tumour components farther than {inference['max_distance_mm']:g} mm from the "
                "largest one are removed (--max-distance 0 keeps them)"
            )
        if inference.get("min_enhancing_mm3"):
            lines.append(
                f"  post-process enhancing tumour under {inference['min_enhancing_mm3']:g} mm^3 in all "
                "becomes necrosis (--min-enhancing 0 keeps it)"
            )
        if inference.get("min_lesion_mm3"):
            sizes = ", ".join(f"{r} {v:g}" for r, v in inference["min_lesion_mm3"].items())
            lines.append(
                f"  post-process components under {sizes} mm^3 become the next outer region, the largest "
                "tumour component excepted (--min-lesion 0 keeps them)"
            )
        if inference.get("precision", "auto") != "auto":
            from ..precision import describe

            lines.append(
                f"  precision    {inference['precision']}: {describe(inference['precision'], 'cpu')} on this "
                "CPU (--precision fp32 for float32)"
            )
        if meta.temperatures:
            ece = (meta.calibration or {}).get("ece_leave_one_case_out") or {}
            fitted = len((meta.calibration or {}).get("fitted_on") or [])
            lines.append(
                f"  calibration  temperatures {', '.join(f'{t:g}' for t in meta.temperatures)} on {fitted} "
                f"held-out cases"
                + (
                    f"; tumour-zone ECE {ece['tumour_zone_before']:.3f} -> {ece['tumour_zone_after']:.3f}"
                    if "tumour_zone_after" in ece
                    else ""
                )
            )
        lines += card_lines(card)
    return "\n".join(lines)


REGIONS = ("WT", "TC", "ET")


def card_lines(card: dict) -> list[str]:
    """The model card's training record and held-out scores as ``medseg3d models`` prints them."""
    lines = []
    for key in (
        "trained_on",
        "command",
        "training_time",
        "total_training",
        "held_out_scores",
        "cross_validation",
        "worst_cases",
        "note",
        "licence",
        "provenance",
    ):
        if key not in card:
            continue
        value = card[key]
        if key == "held_out_scores":
            value = _scores(value, card.get("held_out_cases"))
        elif key == "cross_validation":
            value = _cross_validation(value)
        elif key == "worst_cases":
            value = "; ".join(f"{region} {', '.join(cases)}" for region, cases in value.items())
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        lines.append(f"  {key.replace('_', ' '):<12} {value}")
    return lines


def _scores(scores: dict, cases: list | None) -> str:
    """``Dice WT 0.839 / TC 0.748 / ET 0.627, HD95 15.5 / 11.8 / 12.0 mm (20 cases)``, with the BraTS 2023
    lesion-wise Dice after the whole-case one where the card has it (``lesion_dice_<region>``)."""

    def values(metric, digits):
        return " / ".join(
            "n/a" if scores.get(f"{metric}_{r}") is None else f"{scores[f'{metric}_{r}']:.{digits}f}"
            for r in REGIONS
        )

    lesion_wise = (
        f", lesion-wise Dice {values('lesion_dice', 3)}"
        if any(f"lesion_dice_{r}" in scores for r in REGIONS)
        else ""
    )
    return f"Dice WT / TC / ET {values('dice', 3)}{lesion_wise}, HD95 {values('hd95', 1)} mm" + (
        f" ({len(cases)} cases, each scored by a model that never saw it)" if cases else ""
    )


def _cross_validation(cv: dict) -> str:
    """Folds done (of those planned), the weights scored, mean +- SD over folds, the pooled lesion-wise Dice
    where scored, and each fold's Dice per region (BraTS: WT / TC / ET; a ``medseg3d bundle`` card of another
    anatomy: its classes)."""
    done, planned = cv.get("folds"), cv.get("folds_planned")
    folds = f"{done} of {planned} folds (incomplete)" if planned and done != planned else f"{done} folds"
    summary = cv.get("mean_sd_over_folds", {})
    per_fold = cv.get("per_fold", {})
    first = next(iter(per_fold.values()), {})
    regions = REGIONS if all(r in first for r in REGIONS) or not first else tuple(first)
    means = {r: summary.get(f"dice_{r}", summary.get(r)) for r in regions}
    text = (
        f"{folds}, {cv.get('weights') or cv.get('variant')} weights: "
        + ", ".join(f"{r} {m}" for r, m in means.items() if m is not None)
        + " (mean +- SD over folds)"
    )
    # lesion-wise scores are a tumour measure (BraTS 2023): shown for tumour regions, not anatomy
    lesion_wise = {r: v for r, v in (cv.get("lesion_wise") or {}).items() if v is not None and r in REGIONS}
    if lesion_wise:
        text += (
            "; lesion-wise Dice " + ", ".join(f"{r} {v:.3f}" for r, v in lesion_wise.items()) + " (pooled)"
        )
    if per_fold:
        text += f"; {' / '.join(regions)} per fold: " + "; ".join(
            f"{fold} " + " / ".join(f"{v[r]:.3f}" for r in regions) for fold, v in per_fold.items()
        )
    return text
