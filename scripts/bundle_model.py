"""Copy a trained run's model into the package as a bundled model, with its model card.

Usage:
    python scripts/bundle_model.py RUN_DIR --name brats --metrics PRED_DIR/metrics.csv [--model best]

The card (``src/medseg3d/weights/<name>.json``) records what the model was trained on, the exact command,
the training time, the scores measured on held-out cases (from ``medseg3d evaluate``'s metrics.csv, per case
and mean), and the data licence. ``medseg3d models`` prints it.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "medseg3d" / "weights"


def cross_validation(root: Path, variant: str) -> dict:
    """Mean Dice per region for each fold of a cross-validation, and the mean and SD over folds."""
    from crossval_report import REGIONS, _mean, _sd, collect, fold_means

    means = fold_means(collect(root, variant))
    per_fold = {f"fold {k}": {r: round(v[r], 4) for r in REGIONS} for k, v in means.items()}
    summary = {}
    for r in REGIONS:
        values = [v[r] for v in per_fold.values()]
        sd = _sd(values) if len(values) > 1 else 0.0
        summary[f"dice_{r}"] = f"{_mean(values):.3f} +- {sd:.3f}"
    return {"folds": len(means), "weights": variant, "mean_sd_over_folds": summary, "per_fold": per_fold}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--name", default="brats")
    p.add_argument("--model", default="best", choices=["best", "last", "model"])
    p.add_argument("--metrics", type=Path, required=True, help="metrics.csv of the held-out cases")
    p.add_argument("--note", default="", help="one sentence on what the scores mean")
    p.add_argument("--cv", type=Path, help="scripts/crossval.sh output of the same preset: adds per-fold "
                   "cross-validated scores to the card (then --metrics is its pooled held-out CSV)")
    p.add_argument("--cv-variant", default="last", help="which weights of the folds were scored (last, best, "
                   "last-sw: the last weights in windows of the training patch)")
    p.add_argument("--sliding-window", action="store_true", help="the bundled file asks to be run in windows of "
                   "its training patch (what --cv-variant last-sw scored); users can still pass --whole-volume")
    p.add_argument("--overlap", type=float, default=0.5, help="with --sliding-window: the windows' overlap")
    args = p.parse_args()

    config = json.loads((args.run / "config.json").read_text())
    with open(args.run / "log.csv", newline="") as f:
        log = list(csv.DictReader(f))
    with open(args.metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    keys = ["dice_WT", "dice_TC", "dice_ET", "hd95_WT", "hd95_TC", "hd95_ET"]

    def mean(k):
        values = [float(r[k]) for r in rows if r.get(k) not in (None, "", "nan")]
        return round(float(np.mean(values)), 4) if values else None

    command = (f"medseg3d train {config['dataset']} --out {args.run} --preset {config['preset']}"
               + (f" --fold {config['fold']} --split-file {config['split_file']}" if config.get("fold") is not None else "")
               + (" --all-cases" if config.get("all_cases") else ""))
    held_out = config["val_cases"]
    if args.cv:  # every case was held out once by the cross-validation of the same preset
        held_out = sorted(r["case"] for r in rows)
    card = {
        "name": args.name,
        "trained_on": f"{len(config['train_cases'])} BraTS 2018 training cases (../shared/data/brats2018)"
                      + (f", fold {config['fold']} of a seeded 5-fold split" if config.get("fold") is not None else ""),
        "train_cases": config["train_cases"],
        "held_out_cases": held_out,
        "command": command,
        "training_time": f"{float(log[-1]['seconds']) / 60:.0f} min of training on a 2-core CPU, "
                         f"{log[-1]['epoch']} epochs, {log[-1]['iteration']} iterations",
        "weights": f"{args.model}.safetensors of the run"
                   + (" (best validation score)" if args.model == "best" else ""),
        "held_out_scores": {k: mean(k) for k in keys},
        "held_out_per_case": {r["case"]: {k: round(float(r[k]), 4) for k in keys} for r in rows},
        "note": args.note,
        **({"cross_validation": cross_validation(args.cv, args.cv_variant)} if args.cv else {}),
        "licence": "weights: Apache-2.0 like the code; trained on BraTS 2018 data, which are for research use "
                   "(cite Menze et al. 2015, Bakas et al. 2017 and 2018). Not for clinical use.",
        "provenance": "trained with medseg3d " + config["software"]["medseg3d"] + ", torch " + config["software"]["torch"],
    }
    WEIGHTS.mkdir(exist_ok=True)
    shutil.copyfile(args.run / f"{args.model}.safetensors", WEIGHTS / f"{args.name}.safetensors")
    if args.sliding_window:
        from medseg3d.checkpoint import rewrite_model_metadata

        rewrite_model_metadata(WEIGHTS / f"{args.name}.safetensors",
                               {"inference": {"sliding_window": True, "overlap": args.overlap}})
    (WEIGHTS / f"{args.name}.json").write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps({k: card[k] for k in ("name", "trained_on", "command", "training_time", "held_out_scores")}, indent=1))


if __name__ == "__main__":
    main()
