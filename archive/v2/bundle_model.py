"""Copy a trained run's model into the package as a bundled model, with its model card.

Usage:
    python scripts/bundle_model.py RUN_DIR --name brats --metrics PRED_DIR/metrics.csv [--model best]
    python scripts/bundle_model.py CV_DIR --ensemble --name brats-v2 --model last --cv CV_DIR --cv-variant
    last \
        --metrics CV_DIR/pooled.csv            # the fold models of a cross-validation as one ensemble
    python scripts/bundle_model.py --members runs/v2-v1 runs/v2-strong --name brats-v2 --model last \
        --cv runs/cv27-v1 --cv-variant ens-cv27-strong-sw --metrics POOLED.csv --sliding-window
        # models trained on all cases as one ensemble; the card's scores: the same ensemble cross-validated
    python scripts/bundle_model.py --keep-weights --name brats --cv CV_DIR --cv-variant last-sw \
        --metrics CV_DIR/pooled.csv --sliding-window --note "..."   # same weights: new scores, how it runs

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

from medseg3d.io import write_json_atomic

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "medseg3d" / "weights"


def cross_validation(root: Path, variant: str) -> dict:
    """Mean Dice per region for each fold of a cross-validation, and the mean and SD over folds."""
    from crossval_report import REGIONS, collect, fold_means, nan_mean, nan_sd, planned_folds

    means = fold_means(collect(root, variant))
    if not means:
        raise SystemExit(f"{root}: no fold*/pred-{variant}/metrics.csv; score at least one fold first")
    per_fold = {f"fold {k}": {r: round(v[r], 4) for r in REGIONS} for k, v in means.items()}
    summary = {}
    for r in REGIONS:
        values = [v[r] for v in per_fold.values()]
        summary[f"dice_{r}"] = (
            f"{nan_mean(values):.3f} +- {nan_sd(values):.3f}"
            if len(values) > 1
            else f"{nan_mean(values):.3f} (one fold: no SD)"
        )
    planned = planned_folds(root) or len(means)
    return {
        "folds": len(means),
        "folds_planned": max(planned, len(means)),
        "complete": len(means) >= planned,
        "weights": variant,
        "mean_sd_over_folds": summary,
        "per_fold": per_fold,
    }


KEYS = ["dice_WT", "dice_TC", "dice_ET", "hd95_WT", "hd95_TC", "hd95_ET"]


def scores(rows: list[dict]) -> dict:
    """The card's held-out scores: the mean of each metric and every case's values."""

    def mean(k):
        values = [float(r[k]) for r in rows if r.get(k) not in (None, "", "nan")]
        return round(float(np.mean(values)), 4) if values else None

    return {
        "held_out_scores": {k: mean(k) for k in KEYS},
        "held_out_per_case": {r["case"]: {k: round(float(r[k]), 4) for k in KEYS} for r in rows},
        "worst_cases": worst_cases(rows),
    }


def worst_cases(rows: list[dict], n: int = 3) -> dict:
    """The ``n`` held-out cases with the lowest Dice per region, worst first, with that Dice."""
    out = {}
    for region in ("WT", "TC", "ET"):
        key = f"dice_{region}"
        scored = [r for r in rows if r.get(key) not in (None, "", "nan")]
        ranked = sorted(scored, key=lambda r: float(r[key]))[:n]
        out[region] = [f"{r['case']} {float(r[key]):.3f}" for r in ranked]
    return out


def set_inference(args, card: dict) -> None:
    """Write the inference default (sliding window or whole volume) into the bundled file and its card."""
    from medseg3d.checkpoint import rewrite_model_metadata

    inference = {
        "sliding_window": bool(args.sliding_window),
        "overlap": args.overlap,
        "precision": args.precision,
    }
    if getattr(args, "refiner", None):
        # checks the refiner is bundled: before writing
        card["total_training"] = total_training(card, args.refiner)
        inference["refiner"] = args.refiner
    if getattr(args, "max_distance", 0.0):
        inference["max_distance_mm"] = args.max_distance
    rewrite_model_metadata(WEIGHTS / f"{args.name}.safetensors", {"inference": inference})
    card["inference"] = (
        f"windows of the training patch, overlap {args.overlap}"
        if args.sliding_window
        else "the whole cropped volume in one pass"
    )
    if args.precision == "mixed":
        card["inference"] += "; mixed precision (bfloat16 on CPUs with native bfloat16, else float32)"
    if getattr(args, "refiner", None):
        card["inference"] += f"; then the bundled refiner {args.refiner} in the box around the tumour"
    if getattr(args, "max_distance", 0.0):
        card["inference"] += (
            f"; then tumour components farther than {args.max_distance:g} mm from the largest one "
            "are removed (--max-distance; 0 turns it off)"
        )


def total_training(card: dict, refiner: str) -> str:
    """The training time of a cascade: this model's minutes plus its bundled refiner's (bundle the refiner
    first)."""
    path = WEIGHTS / f"{refiner}.json"
    if not path.is_file():
        raise SystemExit(f"{refiner}: no bundled refiner of that name ({path}); bundle the refiner first")
    own, other = (
        card.get("training_minutes"),
        json.loads(path.read_text(encoding="utf-8")).get("training_minutes"),
    )
    if own is None or other is None:
        return f"not recorded (card without training_minutes: {card['name'] if own is None else refiner})"
    return (
        f"{own + other} min of training on a 2-core CPU in all: {own} min this model, {other} min its "
        f"refiner {refiner}"
    )


def make_default(name: str, alias: str) -> None:
    """Point ``alias`` (``brats``: what ``medseg3d predict brats`` runs) at bundled model ``name``."""
    path = WEIGHTS / "aliases.json"
    aliases = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    aliases[alias] = name
    write_json_atomic(aliases, path)


def update_card(args) -> None:
    """--keep-weights: new held-out scores, cross-validation, note and inference default for the same
    weights."""
    path = WEIGHTS / f"{args.name}.json"
    card = json.loads(path.read_text(encoding="utf-8"))
    with open(args.metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    card |= scores(rows)
    if args.cv:
        card["held_out_cases"] = sorted(r["case"] for r in rows)
        card["cross_validation"] = cross_validation(args.cv, args.cv_variant)
    if args.note:
        card["note"] = args.note
    set_inference(args, card)
    write_json_atomic(card, path)
    print(
        json.dumps(
            {k: card[k] for k in ("name", "held_out_scores", "cross_validation", "inference")}, indent=1
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, nargs="?", help="the training run whose weights are bundled")
    p.add_argument(
        "--keep-weights",
        action="store_true",
        help="keep the bundled weights and the card's training "
        "record; update its scores (--metrics, --cv), note and inference default",
    )
    p.add_argument("--name", default="brats")
    p.add_argument("--model", default="best", choices=["best", "last", "model"])
    p.add_argument("--metrics", type=Path, required=True, help="metrics.csv of the held-out cases")
    p.add_argument("--note", default="", help="one sentence on what the scores mean")
    p.add_argument(
        "--cv",
        type=Path,
        help="scripts/crossval.sh output of the same preset: adds per-fold "
        "cross-validated scores to the card (then --metrics is its pooled held-out CSV)",
    )
    p.add_argument(
        "--cv-variant",
        default="last",
        help="which weights of the folds were scored (last, best, "
        "last-sw: the last weights in windows of the training patch)",
    )
    p.add_argument(
        "--sliding-window",
        action="store_true",
        help="the bundled file asks to be run in windows of "
        "its training patch (what --cv-variant last-sw scored); users can still pass --whole-volume",
    )
    p.add_argument("--overlap", type=float, default=0.5, help="with --sliding-window: the windows' overlap")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "mixed"],
        help="the precision the bundled file asks to be run in (users can still pass --precision)",
    )
    p.add_argument(
        "--max-distance",
        type=float,
        default=0.0,
        metavar="MM",
        help="the bundled file removes tumour components farther than MM mm from the largest one by "
        "default (chosen by cross-validation: scripts/postprocess_sweep.py); 0: off",
    )
    p.add_argument("--refiner", help="the bundled refiner (its name) this model runs in a cascade by default")
    p.add_argument("--default-for", metavar="ALIAS", help="make this model what ALIAS names (e.g. brats)")
    p.add_argument(
        "--ensemble",
        action="store_true",
        help="RUN_DIR is a cross-validation (scripts/crossval.sh): "
        "bundle its fold models as one ensemble (medseg3d ensemble); the card's scores are the fold "
        "models' on the cases each did not see",
    )
    p.add_argument(
        "--members",
        type=Path,
        nargs="+",
        help="training runs on all cases (--all-cases) to bundle "
        "as one ensemble (instead of RUN_DIR); --cv/--cv-variant: the same ensemble cross-validated",
    )
    args = p.parse_args()
    if (args.run is None and not args.members) != args.keep_weights or (args.run and args.members):
        p.error("give one of RUN_DIR, --members RUN... or --keep-weights")
    if args.ensemble and args.keep_weights:
        p.error("--ensemble bundles new weights; it does not go with --keep-weights")
    if args.keep_weights:
        update_card(args)
    elif args.members:
        bundle_members(args)
    elif args.ensemble:
        bundle_ensemble(args)
    else:
        bundle_run(args)
    if args.default_for:
        make_default(args.name, args.default_for)


def read_run(run: Path) -> tuple[dict, list[dict]]:
    """A training run's config.json and log.csv rows."""
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    with open(run / "log.csv", newline="") as f:
        return config, list(csv.DictReader(f))


def wall_minutes(log: list[dict]) -> int:
    """The run's training minutes by the wall clock (its log's last ``seconds``)."""
    return round(float(log[-1]["seconds"]) / 60)


def undisturbed_minutes(log: list[dict]) -> int:
    """The run's epochs times its median epoch: its length on a machine doing nothing else (the wall clock
    also counts the time other work took the cores)."""
    return round(len(log) * float(np.median([float(r["epoch_seconds"]) for r in log])) / 60)


LICENCE = (
    "weights: Apache-2.0 like the code; trained on BraTS 2018 data, which are for research use "
    "(cite Menze et al. 2015, Bakas et al. 2017 and 2018). Not for clinical use."
)


def train_options(config: dict) -> str:
    """The options of ``medseg3d train`` that made a run: its preset, and the augmentation and budget it
    changed."""
    return (
        f"--preset {config['preset']}"
        + (f" --augment {config['augment']}" if config.get("augment", "default") != "default" else "")
        + (f" --minutes {config['minutes']:g}" if config.get("minutes") else "")
    )


def ensemble_command(args, folders: list[Path]) -> str:
    """``medseg3d ensemble`` of the folders' ``args.model`` weights into ``args.name``.safetensors."""
    return (
        f"medseg3d ensemble {' '.join(str(f / (args.model + '.safetensors')) for f in folders)} -o "
        f"{args.name}.safetensors"
    )


def bundle_ensemble(args) -> None:
    """The fold models of the cross-validation ``args.run`` as one bundled ensemble, with their card."""
    folds = sorted(
        (p for p in args.run.glob("fold*") if (p / f"{args.model}.safetensors").is_file()),
        key=lambda p: p.name,
    )
    if len(folds) < 2:
        raise SystemExit(
            f"{args.run}: fewer than 2 fold folders with {args.model}.safetensors; finish the folds first"
        )
    runs = [read_run(f) for f in folds]
    first = runs[0][0]
    fold_list = " ".join(f.name for f in folds)
    command = (
        f"FOLDS='{fold_list.replace('fold', '')}' scripts/crossval.sh {first['dataset']} "
        f"{first['split_file']} {args.run} {train_options(first)}; {ensemble_command(args, folds)}"
    )
    cases = sorted({c for config, _ in runs for c in config["train_cases"]})
    write_ensemble(
        args,
        folds,
        runs,
        command,
        trained_on=(
            f"{len(cases)} BraTS 2018 training cases (../shared/data/brats2018): an ensemble of the "
            f"{len(folds)} fold models of a seeded {len(folds)}-fold cross-validation, each trained on "
            f"{_span(len(c['train_cases']) for c, _ in runs)} of them"
        ),
        weights=f"{args.model}.safetensors of each fold",
        note="held-out scores are the members' own, "
        "each on the cases it did not see (the ensemble saw every case)",
        cv=args.cv or args.run,
    )


def bundle_members(args) -> None:
    """Runs trained on all cases (``args.members``) as one bundled ensemble; its card's scores are those of
    the same ensemble cross-validated (``--cv`` and ``--cv-variant``, e.g. scripts/crossval_ensemble.py's
    ``ens-...-sw``; ``--metrics`` its pooled held-out rows)."""
    if len(args.members) < 2:
        raise SystemExit("--members: give at least 2 training runs")
    if args.cv is None:
        raise SystemExit("--members: give --cv and --cv-variant, the cross-validation of the same ensemble")
    runs = [read_run(r) for r in args.members]
    partial = [str(r) for r, (config, _) in zip(args.members, runs) if not config.get("all_cases")]
    if partial:
        raise SystemExit(
            f"{', '.join(partial)}: not trained on all cases (--all-cases); a bundled member must be"
        )
    command = "; ".join(
        [
            *(
                f"medseg3d train {c['dataset']} --out {r} --all-cases {train_options(c)}"
                for r, (c, _) in zip(args.members, runs)
            ),
            ensemble_command(args, args.members),
        ]
    )
    cases = sorted({c for config, _ in runs for c in config["train_cases"]})
    recipes = "; ".join(f"{r.name}: {train_options(c)}" for r, (c, _) in zip(args.members, runs))
    write_ensemble(
        args,
        list(args.members),
        runs,
        command,
        trained_on=(
            f"{len(cases)} BraTS 2018 training cases (../shared/data/brats2018): an ensemble of {len(runs)} "
            f"models, each trained on all of them ({recipes})"
        ),
        weights=f"{args.model}.safetensors of each run",
        note=(
            "held-out scores: the same ensemble cross-validated, each fold's members trained alike on the "
            "other cases and scored on that fold's cases, which none of them saw"
        ),
        cv=args.cv,
    )


def write_ensemble(
    args, folders: list[Path], runs: list, command: str, *, trained_on: str, weights: str, note: str, cv: Path
) -> None:
    """Write the ensemble of ``folders``' ``args.model`` weights into the package with its card."""
    from medseg3d.models.ensemble import make_ensemble

    with open(args.metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    first = runs[0][0]
    wall = [wall_minutes(log) for _, log in runs]
    alone = [undisturbed_minutes(log) for _, log in runs]
    card = {
        "name": args.name,
        "trained_on": trained_on,
        "train_cases": sorted({c for config, _ in runs for c in config["train_cases"]}),
        "held_out_cases": sorted(r["case"] for r in rows),
        "command": command,
        "training_time": (
            f"{sum(wall)} min of wall clock on a 2-core CPU for the {len(runs)} members together "
            f"({', '.join(map(str, wall))}); {sum(alone)} min undisturbed (epochs x median epoch), "
            f"{runs[0][1][-1]['iteration']} iterations each" + _threads(runs)
        ),
        "training_minutes": sum(wall),
        "weights": weights,
        **scores(rows),
        "note": args.note or note,
        "cross_validation": cross_validation(cv, args.cv_variant),
        "licence": LICENCE,
        "provenance": "trained with medseg3d "
        + first["software"]["medseg3d"]
        + ", torch "
        + first["software"]["torch"],
    }
    WEIGHTS.mkdir(exist_ok=True)
    make_ensemble(
        [f / f"{args.model}.safetensors" for f in folders],
        WEIGHTS / f"{args.name}.safetensors",
        name=args.name,
    )
    set_inference(args, card)
    write_json_atomic(card, WEIGHTS / f"{args.name}.json")
    print(
        json.dumps({k: card[k] for k in ("name", "trained_on", "training_time", "held_out_scores")}, indent=1)
    )


def _threads(runs: list) -> str:
    """``"; 1 thread each, 2.0 core-hours (wall clock x threads)"`` from the runs' recorded threads (their
    last start), or nothing if a run did not record them."""
    threads = [c.get("software", {}).get("threads") for c, _ in runs]
    if None in threads:
        return ""
    core_hours = sum(wall_minutes(log) * t for (_, log), t in zip(runs, threads)) / 60
    kinds = sorted(set(threads))
    return (
        f"; {'/'.join(map(str, kinds))} thread{'s' if kinds[-1] > 1 else ''} each, {core_hours:.1f} "
        "core-hours (wall clock x threads)"
    )


def _span(values) -> str:
    """``"21-22"``, or ``"21"`` when all are equal."""
    values = sorted(values)
    return f"{values[0]}" if values[0] == values[-1] else f"{values[0]}-{values[-1]}"


def bundle_run(args) -> None:
    """Copy the run's weights into the package and write their card."""
    config, log = read_run(args.run)
    with open(args.metrics, newline="") as f:
        rows = list(csv.DictReader(f))

    command = (
        f"medseg3d train {config['dataset']} --out {args.run} --preset {config['preset']}"
        + (
            f" --fold {config['fold']} --split-file {config['split_file']}"
            if config.get("fold") is not None
            else ""
        )
        + (" --all-cases" if config.get("all_cases") else "")
    )
    minutes = wall_minutes(log)
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
        "training_time": f"{minutes} min of training on a 2-core CPU, {log[-1]['epoch']} epochs, "
        f"{log[-1]['iteration']} iterations",
        "training_minutes": minutes,
        "weights": f"{args.model}.safetensors of the run"
        + (" (best validation score)" if args.model == "best" else ""),
        **scores(rows),
        "note": args.note,
        **({"cross_validation": cross_validation(args.cv, args.cv_variant)} if args.cv else {}),
        "licence": LICENCE,
        "provenance": "trained with medseg3d "
        + config["software"]["medseg3d"]
        + ", torch "
        + config["software"]["torch"],
    }
    WEIGHTS.mkdir(exist_ok=True)
    shutil.copyfile(args.run / f"{args.model}.safetensors", WEIGHTS / f"{args.name}.safetensors")
    set_inference(args, card)
    write_json_atomic(card, WEIGHTS / f"{args.name}.json")
    print(
        json.dumps(
            {k: card[k] for k in ("name", "trained_on", "command", "training_time", "held_out_scores")},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
