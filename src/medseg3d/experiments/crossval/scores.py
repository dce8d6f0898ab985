"""A cross-validation's held-out scores as the report and the card read them: the
``fold*/pred-<variant>/metrics.csv`` collected per fold and per case, means that leave NaN out, the structures
a table shows, and the nested choice among candidates scored per case."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import numpy as np

BRATS_REGIONS = ("WT", "TC", "ET")


def read_metrics(path: Path) -> list[dict]:
    """The rows of a ``metrics.csv`` (strings, as written)."""
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def mean(values) -> float:
    """The mean of the values that are not NaN (NaN if none)."""
    values = [v for v in values if not math.isnan(v)]
    return statistics.fmean(values) if values else math.nan


def sd(values) -> float:
    """The sample standard deviation of the values that are not NaN (NaN for fewer than two)."""
    values = [v for v in values if not math.isnan(v)]
    return statistics.stdev(values) if len(values) > 1 else math.nan


def collect(root: Path, variant: str) -> dict[int, list[dict]]:
    """{fold: rows of that fold's held-out metrics} for the folds that have scored ``variant``.

    Args:
        root: the crossval run folder.
        variant: the weights scored (``fold*/pred-<variant>/metrics.csv``).
    """
    folds = {}
    for metrics in sorted(Path(root).glob(f"fold*/pred-{variant}/metrics.csv")):
        fold = int(metrics.parent.parent.name.removeprefix("fold"))
        folds[fold] = read_metrics(metrics)
    return folds


def regions_of(folds: dict[int, list[dict]]) -> tuple[str, ...]:
    """The structures a table shows: BraTS's WT / TC / ET where scored, else every ``dice_<name>`` column."""
    header = next((list(rows[0]) for rows in folds.values() if rows), [])
    if all(f"dice_{r}" in header for r in BRATS_REGIONS):
        return BRATS_REGIONS
    return tuple(k[len("dice_") :] for k in header if k.startswith("dice_"))


def planned_folds(root: Path) -> int | None:
    """How many folds the cross-validation has, scored or not; None if nothing says."""
    record = Path(root) / "crossval.json"
    if record.is_file():
        with_folds = json.loads(record.read_text(encoding="utf-8")).get("folds")
        if with_folds:
            return int(with_folds)
    planned = set()
    for config in Path(root).glob("fold*/config.json"):
        try:
            planned.add(int(json.loads(config.read_text(encoding="utf-8"))["folds"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return max(planned) if planned else None


def fold_means(folds: dict[int, list[dict]], regions, metric: str = "dice") -> dict[int, dict[str, float]]:
    """{fold: {region: mean of ``<metric>_<region>`` over that fold's held-out cases}}.

    Args:
        folds: :func:`collect`'s rows.
        regions: the region names.
        metric: the column prefix ("dice" or "hd95").
    """
    return {
        fold: {r: mean(float(row[f"{metric}_{r}"]) for row in rows) for r in regions}
        for fold, rows in sorted(folds.items())
    }


def scores_by_case(folds: dict[int, list[dict]]) -> dict[str, dict[str, float]]:
    """{case: {metric: value}} over the folds of :func:`collect`."""
    return {
        row["case"]: {k: float(x) for k, x in row.items() if k != "case" and x not in ("", None)}
        for rows in folds.values()
        for row in rows
    }


def by_case(root: Path, variant: str) -> dict[str, dict[str, float]]:
    """{case: {metric: value}} of ``variant`` over every scored fold of the run at ``root``.

    Args:
        root: the crossval run folder.
        variant: the weights scored.
    """
    return scores_by_case(collect(root, variant))


def both_scored(root: Path, reference: str, variant: str) -> tuple[dict, dict, dict[str, int], list[str]]:
    """Both variants' scores side by side.

    Args:
        root: the crossval run folder.
        reference, variant: the two weights compared.

    Returns:
        (reference's scores by case, variant's scores by case, ``variant``'s fold of each case, the cases both
        scored, by name).
    """
    ref, var = by_case(root, reference), by_case(root, variant)
    folds = {row["case"]: fold for fold, rows in collect(root, variant).items() for row in rows}
    return ref, var, folds, sorted(set(ref) & set(var))


def nested_choice(scores: dict[str, np.ndarray], fold_of: dict[str, int]) -> tuple[dict[int, int], int]:
    """For each fold, the candidate (row) with the best mean score over the *other* folds' cases; and the one
    best over all cases. Ties go to the earlier candidate (the gentler setting; row 0 is "off").

    Args:
        scores: case -> (candidates, names) array of scores (higher is better).
        fold_of: case -> its fold.

    Returns:
        ({fold: chosen row}, row chosen on all cases).
    """
    cases = sorted(scores)

    def best(subset):
        means = np.mean([scores[c].mean(axis=1) for c in subset], axis=0)
        return int(np.flatnonzero(means >= means.max() - 1e-12)[0])

    per_fold = {}
    for k in sorted(set(fold_of.values())):
        others = [c for c in cases if fold_of[c] != k]
        per_fold[k] = best(others) if others else 0
    return per_fold, best(cases)
