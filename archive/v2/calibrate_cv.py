"""Calibrate a model trained on all cases with its cross-validation: each fold's model of the same recipe on
the held-out cases it never saw stands in for the final model on new cases.

A model trained on every labelled case has no held-out case left to fit its temperature scaling on, nor to
rank a new case's confidence against. Its cross-validation has them: fold k's model (``FOLD_MODEL``, e.g. the
fold's two presets as one ensemble, ``ensemble-cv27-strong.safetensors`` from scripts/crossval_ensemble.py)
never saw fold k's cases. This runs every fold's model on its held-out cases exactly as ``medseg3d predict
--uncertainty`` does (``--passes``: mirrored passes, or ``members`` for an ensemble's members), measures ECE
and the confidence-Dice rank correlation leave-one-case-out over all of them (``medseg3d.calibrate``), fits
the temperatures on all of them, and writes them with the held-out confidences into a copy of ``TARGET``:

    python scripts/calibrate_cv.py runs/cv27-v1 ensemble-cv27-strong.safetensors --passes members \\
        --into src/medseg3d/weights/brats-v2.safetensors -o runs/brats-v2-calibrated.safetensors --json c.json

``TARGET`` must be made like the fold models (the same outputs and kind, the same number of members); the fold
models run as ``TARGET`` asks to be run (windows or one pass, overlap, precision).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from medseg3d.calibrate import calibrate_pairs, check_alike, summary_lines, write_calibrated_model
from medseg3d.datasets import find_cases
from medseg3d.errors import MedsegError
from medseg3d.io import write_json_atomic
from medseg3d.models import load_model


def fold_pairs(root: Path, fold_model: str) -> list:
    """``[(LoadedModel, held-out cases)]`` for every finished fold of ``root`` that has ``fold_model``."""
    pairs = []
    for run in sorted(root.glob("fold*"), key=lambda p: p.name):
        if not (run.name[4:].isdigit() and (run / "done").is_file() and (run / fold_model).is_file()):
            continue
        model = load_model(run / fold_model, "cpu", refine="none")
        cases = [c.select(model.modalities) for c in find_cases(run / "heldout")]
        seen = sorted(set(model.meta.train_cases) & {c.case_id for c in cases})
        if seen:
            sys.exit(
                f"error: {run / fold_model} was trained on its fold's held-out case(s) {', '.join(seen)}"
            )
        pairs.append((model, cases))
    if not pairs:
        sys.exit(
            f"error: no finished fold of {root} has {fold_model}; "
            "run the folds (and crossval_ensemble.py) first"
        )
    return pairs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the cross-validation folder (fold*/heldout, fold*/done)")
    parser.add_argument(
        "fold_model",
        help="the model file in each fold folder, e.g. last.safetensors or ensemble-cv27-strong.safetensors",
    )
    parser.add_argument(
        "--into", type=Path, required=True, help="the model (trained on all cases) to calibrate"
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="its calibrated copy (.safetensors)")
    parser.add_argument("--passes", default="2", help="2, 4 or 8 mirrored passes, or 'members' (default 2)")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args(argv)
    passes = args.passes if args.passes == "members" else int(args.passes)
    if args.output.exists():
        sys.exit(f"error: {args.output} exists already; choose another -o")
    pairs = fold_pairs(args.root, args.fold_model)
    try:
        target = load_model(args.into, "cpu", refine="none")
        check_alike([target] + [m for m, _ in pairs])  # the fold models' calibration must fit the target
        # every fold model runs as the target runs (windows or one pass, overlap, precision)
        pairs = [
            (replace(m, meta=replace(m.meta, inference=dict(target.meta.inference))), cases)
            for m, cases in pairs
        ]
        summary = calibrate_pairs(pairs, passes=passes)
        for line in summary_lines(summary):
            print(line)
        summary["fold_model"] = args.fold_model
        if args.json:
            write_json_atomic(summary, args.json)
        print(f"wrote {write_calibrated_model(args.into, summary, args.output)}")
    except MedsegError as exc:
        sys.exit(f"error: {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
