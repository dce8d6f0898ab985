"""``medseg3d models``: the bundled models, what each was trained on, its channels, labels, scores.

Each bundled model is ``weights/<name>.safetensors`` (weights + metadata) with ``weights/<name>.json`` beside
it: a human-readable card (training data, command, time, cross-validated scores, licence).
"""

from __future__ import annotations

from ..checkpoint import read_model_file
from .loaded import bundled_models, model_aliases, model_card
from .meta import ModelMeta


def describe_models() -> str:
    """A readable list of the bundled models (for ``medseg3d models``)."""
    aliases = model_aliases()
    models = {name: path for name, path in bundled_models().items() if name not in aliases}
    if not models:
        return "no bundled model is installed"
    lines = [f"{alias} = {target} (what `medseg3d predict {alias}` runs)" for alias, target in aliases.items()
             if target in models]
    for name, path in models.items():
        meta = ModelMeta.from_dict(read_model_file(path)[0])
        card = model_card(name)
        labels = meta.labels
        lines.append(f"{name}  ({path.stat().st_size / 1e6:.1f} MB)")
        lines.append(f"  network      {meta.network} {meta.net_args or ''}".rstrip())
        if meta.ensemble:
            lines.append(f"  ensemble     {meta.members} members, the mean of their probabilities (each member runs "
                         "on every case)")
        lines.append(f"  channels     {', '.join(meta.modalities)}")
        lines.append(f"  labels       {labels['name']} values {labels['values']}"
                     + (" (trained on regions " + ", ".join(labels['regions']) + ")" if labels.get("region_training") else ""))
        lines.append(f"  preprocess   {meta.preprocess}")
        inference = meta.inference
        if inference.get("refiner"):
            lines.append(f"  refined by   {inference['refiner']} in the box around the tumour (--refine none: "
                         "without)")
        if inference.get("sliding_window") and meta.patch:
            window = "x".join(str(v) for v in meta.patch)
            lines.append(f"  inference    windows of {window} voxels, overlap {inference.get('overlap', 0.5)} "
                         "(--whole-volume for one pass)")
        else:
            lines.append("  inference    whole cropped volume in one pass (--sliding-window for windows)")
        if inference.get("precision", "auto") != "auto":
            from ..precision import describe

            lines.append(f"  precision    {inference['precision']}: {describe(inference['precision'], 'cpu')} on this "
                         "CPU (--precision fp32 for float32)")
        if meta.temperatures:
            ece = (meta.calibration or {}).get("ece_leave_one_case_out") or {}
            fitted = len((meta.calibration or {}).get("fitted_on") or [])
            lines.append(f"  calibration  temperatures {', '.join(f'{t:g}' for t in meta.temperatures)} on {fitted} "
                         f"held-out cases" + (f"; tumour-zone ECE {ece['tumour_zone_before']:.3f} -> "
                                              f"{ece['tumour_zone_after']:.3f}" if "tumour_zone_after" in ece else ""))
        for key in ("trained_on", "command", "training_time", "total_training", "held_out_scores", "cross_validation",
                    "worst_cases", "note", "licence", "provenance"):
            if key in card:
                value = card[key]
                if isinstance(value, dict):
                    value = ", ".join(f"{k} {v}" for k, v in value.items())
                lines.append(f"  {key.replace('_', ' '):<12} {value}")
    return "\n".join(lines)
