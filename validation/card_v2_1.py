"""The card of ``brats-v2.1`` (v2's networks with the lesion-size rule of issue #40), from v2's card and the
kept held-out maps scored as v2.1 runs (``validation/rescore_heldout.py``), and v2's card with the lesion-wise
scores of the same maps as v2 runs.

    python validation/rescore_heldout.py docs/runs/brats-v2-cv/cv27-v1 --variant ens-cv27-strong-sw \\
        --model src/medseg3d/weights/brats-v2.safetensors --name v2-lw --data ../shared/data/brats2018 \\
        --scratch /tmp/rescore
    python validation/rescore_heldout.py ... --model src/medseg3d/weights/brats-v2.1.safetensors \\
        --name v2.1 ...
    python validation/card_v2_1.py

The lesion-size thresholds are those chosen on all 21 kept held-out cases (``docs/runs/brats-v3-levers``,
``levers.json`` ``chosen_on_all``); the card also gives the nested estimate (each fold's thresholds chosen on
the other folds), which is the figure to expect on new cases.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "medseg3d" / "weights"
CV = ROOT / "docs" / "runs" / "brats-v2-cv" / "cv27-v1"
LEVERS = ROOT / "docs" / "runs" / "brats-v3-levers" / "levers.json"
REGIONS = ("WT", "TC", "ET")


def scored(variant: str) -> tuple[dict, dict]:
    """(card_scores of ``variant``, per case: Dice, HD95 and lesion-wise Dice per region, 4 decimals)."""
    from medseg3d.experiments.crossval.bundle import card_scores
    from medseg3d.experiments.crossval.scores import by_case

    scores = card_scores(CV, variant)
    keys = [f"{m}_{r}" for m in ("dice", "hd95", "lesion_dice") for r in REGIONS]
    per_case = {
        case: {k: round(float(row[k]), 4) for k in keys if row.get(k) not in (None, "")}
        for case, row in sorted(by_case(CV, variant).items())
    }
    return scores, per_case


def held_out(scores: dict) -> dict:
    """The card's ``held_out_scores``: pooled Dice, HD95 and lesion-wise Dice."""
    return scores["pooled"] | {f"lesion_dice_{r}": v for r, v in scores["lesion_wise"].items()}


def main() -> int:
    """Write ``brats-v2.1.json`` and add the lesion-wise scores to ``brats-v2.json``."""
    v2, card = cards()
    (WEIGHTS / "brats-v2.json").write_text(json.dumps(v2, indent=1) + "\n")
    (WEIGHTS / "brats-v2.1.json").write_text(json.dumps(card, indent=1) + "\n")
    print(f"brats-v2.1: Dice {card['held_out_scores']}; nested {card['cross_validation']['nested']}")
    return 0


def cards() -> tuple[dict, dict]:
    """(brats-v2's card with its lesion-wise scores, brats-v2.1's card), from the committed records."""
    levers = json.loads(LEVERS.read_text())["lesion"]
    chosen = levers["chosen_on_all"]
    nested = dict(zip(("WT", "TC", "ET", "lw WT", "lw TC", "lw ET"), levers["means"]["nested, far 20 kept"]))

    v2 = json.loads((WEIGHTS / "brats-v2.json").read_text())
    v2_scores, v2_cases = scored("v2-lw")
    v2["held_out_scores"] = held_out(v2_scores)
    v2["held_out_per_case"] = v2_cases
    v2["cross_validation"]["lesion_wise"] = v2_scores["lesion_wise"]

    scores, per_case = scored("v2.1")
    sizes = f"WT {chosen['WT']:g}, TC {chosen['TC']:g}, ET {chosen['ET']:g} mm^3"
    card = dict(v2)
    card["name"] = "brats-v2.1"
    card["command"] = (
        v2["command"]
        + "; then brats-v2.safetensors with inference.min_lesion_mm3 "
        + json.dumps({r: chosen[r] for r in REGIONS})
        + " (medseg3d.checkpoint.rewrite_model_metadata) -> brats-v2.1.safetensors"
    )
    card["weights"] = "brats-v2's two members, unchanged"
    card["held_out_scores"] = held_out(scores)
    card["held_out_per_case"] = per_case
    card["worst_cases"] = {r: [w.rsplit(" (", 1)[0] for w in ws] for r, ws in scores["worst_cases"].items()}
    card["cross_validation"] = {
        "folds": scores["folds"],
        "folds_planned": 5,
        "complete": False,
        "weights": "v2.1",
        "mean_sd_over_folds": {f"dice_{r}": scores["mean_sd_over_folds"][r] for r in REGIONS},
        "lesion_wise": scores["lesion_wise"],
        "per_fold": scores["per_fold"],
        "nested": {k: round(v, 4) for k, v in nested.items()},
        "lesion_rule_per_fold": levers["per_fold"],
    }
    card["inference"] = (
        v2["inference"]
        + f"; then components smaller than {sizes} become the next outer region (whole tumour -> background, "
        "core -> oedema, enhancing -> necrosis; the largest tumour component always stays; --min-lesion 0 "
        "keeps them)"
    )
    card["note"] = (
        "v2.1: brats-v2's networks and windows unchanged; after v2's far-component removal (20 mm), "
        f"components of a region smaller than {sizes} become the next outer region (issue #40, lever 3). The "
        "thresholds were chosen on v2's 21 kept held-out label maps (folds 1-4 of the seeded 5-fold split, "
        "each map made by fold models that never saw the case) for the mean of whole-case and BraTS 2023 "
        "lesion-wise Dice; held-out scores above are those maps post-processed exactly as this file runs "
        "(validation/rescore_heldout.py), so the threshold choice is in-sample. Chosen for each fold on the "
        f"other three folds only (nested, the estimate for new cases): Dice WT {nested['WT']:.3f} / TC "
        f"{nested['TC']:.3f} / ET {nested['ET']:.3f}, lesion-wise {nested['lw WT']:.3f} / "
        f"{nested['lw TC']:.3f} / {nested['lw ET']:.3f}, against v2's {v2_scores['pooled']['dice_WT']:.3f} / "
        f"{v2_scores['pooled']['dice_TC']:.3f} / {v2_scores['pooled']['dice_ET']:.3f}, lesion-wise "
        + " / ".join(f"{v2_scores['lesion_wise'][r]:.3f}" for r in REGIONS)
        + " on the same 21 cases: the rule removes v2's false specks (each a false-positive lesion) at no "
        "whole-case cost. What it could cost: a true lesion smaller than its threshold (a satellite of the "
        "whole tumour under 1 ml); `predict --min-lesion 0` keeps every component. The enhancing-tumour "
        "rule (lever 1) is not on: the 27 shared cases cannot show its benefit (docs/results.md, issue #40). "
        "Training, calibration and the other held-out figures: brats-v2's card."
    )
    return v2, card


if __name__ == "__main__":
    sys.exit(main())
