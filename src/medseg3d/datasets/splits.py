"""Train / validation / test splits: k-fold or hold-out, saved as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import write_json_atomic

# ---------------------------------------------------------------------------------------------- splits


def make_split(
    case_ids: list[str],
    *,
    folds: int | None = None,
    fractions: tuple[float, float, float] | None = None,
    counts: tuple[int, int, int] | None = None,
    seed: int = 0,
) -> dict:
    """A seeded split: k folds (``folds=5``) or train/validation/test by fractions or counts.

    The same ids and seed always give the same split, whatever order the ids come in.

    Args:
        case_ids: the cases (unique).
        folds: the number of folds, 2 to the number of cases.
        fractions: (train, validation, test) fractions, each >= 0, summing to 1 (default 0.8, 0.1, 0.1).
        counts: (train, validation, test) case counts summing to the number of cases.
        seed: the shuffling seed.

    Returns:
        A JSON-ready dict: ``{"seed", "kind": "kfold", "folds": [{"train": [...], "val": [...]}, ...]}``
        or ``{"seed", "kind": "holdout", "train", "val", "test"}``.

    Raises:
        InputError: ids repeat, or the folds, fractions or counts are out of range.
    """
    ids = sorted(case_ids)
    if len(set(ids)) != len(ids):
        raise InputError("case ids repeat; every case needs a unique id")
    rng = np.random.default_rng(seed)
    order = [ids[i] for i in rng.permutation(len(ids))]
    if folds is not None:
        if not 2 <= folds <= len(ids):
            raise InputError(f"--folds must be between 2 and the number of cases ({len(ids)}), got {folds}")
        parts = [order[k::folds] for k in range(folds)]
        return {
            "seed": seed,
            "kind": "kfold",
            "folds": [
                {
                    "train": sorted(c for j, p in enumerate(parts) if j != k for c in p),
                    "val": sorted(parts[k]),
                }
                for k in range(folds)
            ],
        }
    n = len(ids)
    if counts is None:
        fractions = fractions or (0.8, 0.1, 0.1)
        if any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise InputError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
        n_val = min(round(fractions[1] * n), n)
        n_test = min(round(fractions[2] * n), n - n_val)
        counts = (n - n_val - n_test, n_val, n_test)
    if len(counts) != 3 or sum(counts) != n or min(counts) < 0:
        raise InputError(f"split counts {counts} must be >= 0 and sum to the number of cases ({n})")
    a, b = counts[0], counts[0] + counts[1]
    return {
        "seed": seed,
        "kind": "holdout",
        "train": sorted(order[:a]),
        "val": sorted(order[a:b]),
        "test": sorted(order[b:]),
    }


def fold_ids(split: dict, fold: int | None) -> tuple[list[str], list[str]]:
    """(train ids, validation ids) of ``fold`` in a k-fold split, or of a hold-out split.

    Args:
        split: a split (:func:`make_split` / :func:`load_split`).
        fold: the fold of a k-fold split (ignored for a hold-out split).

    Raises:
        InputError: a k-fold split and ``fold`` missing or out of range.
    """
    if split["kind"] == "kfold":
        if fold is None or not 0 <= fold < len(split["folds"]):
            raise InputError(
                f"--fold must be between 0 and {len(split['folds']) - 1} "
                f"for this {len(split['folds'])}-fold split"
            )
        f = split["folds"][fold]
        return list(f["train"]), list(f["val"])
    return list(split["train"]), list(split["val"])


def save_split(split: dict, path: str | Path) -> Path:
    """Write a split as JSON (atomically, parent folders made).

    Args:
        split: the split.
        path: the file.

    Returns:
        The path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(split, path)
    return path


def load_split(path: str | Path) -> dict:
    """A split file written by ``medseg3d split``; InputError, saying what to do, if it is missing, unreadable
    or not a complete split.
    """
    path = Path(path)
    try:
        split = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: split file not found; create it with `medseg3d split`") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: split file is not valid JSON ({exc.msg})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{path}: cannot read the split file ({exc}); give a JSON file made by `medseg3d split`"
        ) from exc
    if not isinstance(split, dict) or split.get("kind") not in ("kfold", "holdout"):
        raise InputError(f"{path}: not a medseg3d split file (no 'kind'); create it with `medseg3d split`")
    needed = ("folds",) if split["kind"] == "kfold" else ("train", "val")
    if any(k not in split for k in needed):
        raise InputError(
            f"{path}: the split file lacks {', '.join(k for k in needed if k not in split)}; recreate it"
        )
    return split
