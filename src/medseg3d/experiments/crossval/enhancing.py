"""Issue #40's "no enhancing tumour" rule (enhancing tumour -> necrosis below a volume), chosen by nested
cross-validation where its benefit can be seen.

Real BraTS training cases nearly all have enhancing tumour, so on their held-out maps the rule can only cost.
Its benefit shows on tumours without enhancement: ``crossval --heldout-variants DIR`` takes synthetic
non-enhancing variants (``medseg3d synth-nonenhancing``, ``<case>_nonenh``, label 4 moved to 1) and has each
fold's model segment the variants whose parent the fold holds out (``RUN/fold<k>/pred-variants/``): a model
that never saw the parent or its variant. The threshold is then chosen per fold on the other folds' real
held-out cases *and* held-out variants together (after the fold's far-component, lesion-size and mirroring
choice), judged by the mean of the enhancing tumour's whole-case and lesion-wise Dice; without variants the
choice sees only the cost and stays off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...datasets import Case, find_cases
from ...datasets.synthetic import variant_parent
from ...labels import LabelScheme
from .scores import mean, nested_choice

# thresholds tried, mm^3 of enhancing tumour in all below which it becomes necrosis (0: off, first: ties)
ENHANCING_MM3 = (0.0, 250.0, 500.0, 1000.0, 2000.0)
# the held-out variants' label maps: ``pred-variants`` (one pass), ``-mirror``, ``-pp`` (the choice applied)
VARIANTS = "variants"


def has_enhancing_rule(scheme: LabelScheme) -> bool:
    """Whether ``scheme`` has BraTS's enhancing tumour (4) inside a core with necrosis (1): the rule's
    labels."""
    return tuple(scheme.regions.get("ET", ())) == (4,) and {1, 2, 4} <= set(scheme.values)


def heldout_variants(variants_dir, held: list[str]) -> list[Case]:
    """The labelled synthetic variants in ``variants_dir`` whose parent case is in ``held``.

    Args:
        variants_dir: a dataset folder of variants (other cases in it are ignored).
        held: the fold's held-out case ids.
    """
    parents = set(held)
    return [
        c for c in find_cases(Path(variants_dir), require_label=True) if variant_parent(c.case_id) in parents
    ]


def enhancing_scores(labels: np.ndarray, ref: np.ndarray, scheme: LabelScheme, spacing) -> np.ndarray:
    """The enhancing tumour's score for every threshold of :data:`ENHANCING_MM3`: the mean of its whole-case
    Dice and its BraTS 2023 lesion-wise Dice (both 1 where neither side has any).

    Args:
        labels: a post-processed label map (file values).
        ref: the reference on the same grid.
        scheme: the label scheme (BraTS values).
        spacing: the grid's voxel size in mm.

    Returns:
        A (thresholds, 1) array.
    """
    from ...lesionwise import lesion_wise_region
    from ...metrics import dice
    from ...postprocess import relabel_small_enhancing, voxels_for_volume

    truth = ref == 4
    rows = []
    for mm3 in ENHANCING_MM3:
        pred = relabel_small_enhancing(labels, scheme, voxels_for_volume(mm3, spacing) if mm3 else 0) == 4
        lw = lesion_wise_region(pred, truth, spacing, distances=False)["dice"]
        rows.append([(dice(pred, truth) + lw) / 2])
    return np.asarray(rows)


def choose_threshold(
    tables: dict[int, dict[str, np.ndarray]], fold_of: dict[str, int], per_fold: dict[int, int], overall: int
) -> tuple[dict[int, int], int]:
    """The nested choice of the threshold, each fold judged under its own first-stage setting.

    Args:
        tables: first-stage row -> case -> :func:`enhancing_scores` of the case post-processed with that row.
        fold_of: case (real or variant) -> its fold.
        per_fold: fold -> the first-stage row chosen for it.
        overall: the first-stage row chosen on all cases.

    Returns:
        ({fold: index into :data:`ENHANCING_MM3`}, index chosen on all cases).
    """
    chosen = {k: nested_choice(tables[row], fold_of)[0][k] for k, row in per_fold.items()}
    return chosen, nested_choice(tables[overall], fold_of)[1]


def group_means(table: dict[str, np.ndarray], variants: set[str]) -> dict[str, list[float]]:
    """Mean score per threshold over the real held-out cases and over the variants (those present).

    Args:
        table: case -> :func:`enhancing_scores`.
        variants: the variant case ids among them.
    """
    groups = {
        "real": [c for c in table if c not in variants],
        "variants": [c for c in table if c in variants],
    }
    return {
        name: [round(mean(float(table[c][i, 0]) for c in cases), 4) for i in range(len(ENHANCING_MM3))]
        for name, cases in groups.items()
        if cases
    }


def enhancing_rule_lines(p: dict) -> list[str]:
    """The enhancing-tumour rule's nested choice (``postprocess.json``), if the run made one: per fold, the
    mean score per threshold on the real held-out cases and on the held-out variants, the final choice."""
    if "per_fold_min_enhancing_mm3" not in p:
        return []
    groups = p.get("min_enhancing_score_by_group") or {}
    per_group = "; ".join(
        f"{name} " + ", ".join(f"{t:g} {v:.4f}" for t, v in zip(p["candidates_min_enhancing_mm3"], values))
        for name, values in groups.items()
    )
    text = (
        "Enhancing-tumour rule (enhancing tumour under the threshold, mm^3 in all, becomes necrosis), chosen "
        f"after the rest by the {p['min_enhancing_judged_by']} on {p['cases']} real held-out cases and "
        f"{p['heldout_variants']} held-out synthetic variants: "
        + ", ".join(f"fold {k} {v:g}" for k, v in p["per_fold_min_enhancing_mm3"].items())
        + (f". By threshold, on all cases ({per_group})" if per_group else "")
        + f". The final model takes {p['chosen_min_enhancing_mm3']:g}"
        + (" (off)." if not p["chosen_min_enhancing_mm3"] else ".")
    )
    if not p["heldout_variants"]:
        text += (
            " Without held-out variants the rule can only cost on real cases that all have enhancing tumour "
            "(--heldout-variants shows its benefit)."
        )
    return [text, ""]
