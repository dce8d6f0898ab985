"""Score the cascade (medseg3d.cascade) by cross-validation: each fold's coarse model refined by that fold's
refiner.

For every fold K whose coarse run (``COARSE/foldK``, from ``scripts/crossval.sh ... --preset brats``) and
refiner run (``REFINE/foldK``, ``--preset brats-refine``, the same split) are both done, the fold's held-out
cases are segmented on their original grid and scored (``medseg3d evaluate --labels brats --hd95-penalty``).
The prediction folders go into the coarse run (``COARSE/foldK/pred-<variant>``) so that
``python scripts/crossval_report.py COARSE`` sets them beside the coarse model's own variants, case by case:

* ``cascade-box``: the coarse model in one whole-volume pass, the refiner in one pass over the box;
* ``cascade-sw-box``: the coarse model in windows (v1's default), the refiner in one pass over the box;
* ``cascade-box-sw`` (``--windows``): the coarse model whole, the refiner in windows of its patch (4x slower).

    python scripts/crossval_cascade.py runs/cv27-v1 runs/cv27-refine [--windows] [--force]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from crossval_ensemble import run as run_cli  # medseg3d COMMAND in this process, its one-line error stops us

from medseg3d.datasets import find_cases
from medseg3d.models import load_model
from medseg3d.predict import predict


def variants(windows: bool) -> dict[str, tuple[bool, bool]]:
    """name -> (coarse in windows, refiner in windows)."""
    out = {"cascade-box": (False, False), "cascade-sw-box": (True, False)}
    if windows:
        out["cascade-box-sw"] = (False, True)
    return out


def with_refiner_windows(coarse, windows: bool):
    """``coarse`` whose refiner runs in windows of its patch (or in one pass over the box): a copy, so that
    the loaded models and their metadata stay as read."""
    inference = {**coarse.refiner.meta.inference, "sliding_window": windows}
    return replace(
        coarse, refiner=replace(coarse.refiner, meta=replace(coarse.refiner.meta, inference=inference))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("coarse", type=Path, help="cross-validation folder of the coarse model (foldK/done)")
    parser.add_argument("refine", type=Path, help="cross-validation folder of the refiner (same split)")
    parser.add_argument(
        "--windows", action="store_true", help="also score the refiner in windows of its patch"
    )
    parser.add_argument("--force", action="store_true", help="score again folds scored already")
    args = parser.parse_args()
    folds = sorted(p for p in args.refine.glob("fold[0-9]*") if (p / "done").exists())
    if not folds:
        sys.exit(f"{args.refine}: no finished refiner fold (foldK/done); run scripts/crossval.sh first")
    for run in folds:
        coarse_run = args.coarse / run.name
        if not (coarse_run / "done").exists():
            print(f"{run.name}: the coarse fold is not done; skipped")
            continue
        held = coarse_run / "heldout"
        coarse = load_model(coarse_run / "last.safetensors", refine=run / "last.safetensors")
        for name, (coarse_windows, refine_windows) in variants(args.windows).items():
            out = coarse_run / f"pred-{name}"
            if (out / "metrics.csv").exists() and not args.force:
                continue
            model = with_refiner_windows(coarse, refine_windows)
            for case in find_cases(held):  # case by case: a folder of one case is not a dataset to predict
                predict(
                    model,
                    [held / case.case_id],
                    out / f"{case.case_id}.nii.gz",
                    sliding_window=coarse_windows,
                    force=True,
                    progress=False,
                )
            run_cli(["evaluate", str(out), str(held), "--labels", "brats", "--hd95-penalty", "--quiet"])
            print(f"{run.name}: {name} scored in {out}")


if __name__ == "__main__":
    main()
