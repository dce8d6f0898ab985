"""Choose how a model runs by cross-validation: one whole-volume pass or windows of several sizes, each scored
on every fold's held-out cases with the seconds it took.

A model trained on 64^3 patches scored 0.02-0.03 WT Dice higher in windows of its patch than in one pass over
the brain crop (docs/results.md), at about 3.5x the network time; an ensemble of five such models fits
issue #22's 8 s per case only in one pass. Larger windows cost fewer windows: this measures whether they keep
the gain. Each fold's ``last.safetensors`` segments its ``heldout`` cases exactly as ``medseg3d predict``
does (the same preprocessing, pasting back and labels; ``--sliding-window`` with the window size changed),
every variant of a case one after the other in the same process, so the seconds compare on a shared machine.

    python scripts/window_sweep.py runs/cv27-v1 [--windows 64 80 96] [--folds 0 1] [--json out.json]

Prints per variant the mean Dice of WT / TC / ET, the worst case's WT, the median seconds per case (network
and pasting back; no reading or writing) and the paired mean difference to one pass.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from medseg3d.datasets import find_cases
from medseg3d.io import read_volume
from medseg3d.metrics import region_dice
from medseg3d.models import load_model
from medseg3d.predict import segment_volumes

REGIONS = ("WT", "TC", "ET")


def variants(loaded, windows: list[int]) -> dict[str, tuple]:
    """variant name -> (model, sliding_window): one pass, then windows of each size (cubes)."""
    out = {"one pass": (loaded, False)}
    for w in windows:
        out[f"windows {w}^3"] = (replace(loaded, meta=replace(loaded.meta, patch=[w, w, w])), True)
    return out


def sweep(root: Path, windows: list[int], folds: list[int] | None) -> list[dict]:
    """One row per (fold, case, variant): Dice per region and seconds."""
    rows = []
    runs = sorted(
        (p for p in root.glob("fold*") if p.name[4:].isdigit() and (p / "last.safetensors").exists()),
        key=lambda p: int(p.name[4:]),
    )
    runs = [r for r in runs if folds is None or int(r.name[4:]) in folds]
    if not runs:
        sys.exit(
            f"error: {root} has no fold*/last.safetensors{' for those folds' if folds else ''}; "
            "train the folds first"
        )
    for run in runs:
        loaded = load_model(run / "last.safetensors", "cpu", refine="none")
        for case in find_cases(run / "heldout"):
            volumes = {m: read_volume(case.channels[m]) for m in loaded.modalities}
            reference = read_volume(case.label).array
            for name, (model, windowed) in variants(loaded, windows).items():
                t0 = time.perf_counter()
                labels = segment_volumes(model, volumes, sliding_window=windowed).labels.array
                seconds = time.perf_counter() - t0
                dice = region_dice(labels, reference, loaded.scheme.regions)
                rows.append(
                    {
                        "fold": int(run.name[4:]),
                        "case": case.case_id,
                        "variant": name,
                        "seconds": round(seconds, 3),
                        **{r: dice[r] for r in REGIONS},
                    }
                )
            print(
                f"{run.name} {case.case_id}: "
                + "; ".join(
                    f"{r['variant']} {r['WT']:.3f}/{r['TC']:.3f}/{r['ET']:.3f} {r['seconds']:.1f} s"
                    for r in rows
                    if r["case"] == case.case_id and r["fold"] == int(run.name[4:])
                ),
                flush=True,
            )
    return rows


def table(rows: list[dict]) -> list[str]:
    names = list(dict.fromkeys(r["variant"] for r in rows))
    by = {(r["fold"], r["case"], r["variant"]): r for r in rows}
    cases = sorted({(r["fold"], r["case"]) for r in rows})
    lines = [
        f"{len(cases)} held-out cases",
        "| variant | WT | TC | ET | worst WT | median s | paired vs one pass (WT / TC / ET) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        mine = [by[c + (name,)] for c in cases]
        means = [statistics.mean(r[k] for r in mine) for k in REGIONS]
        worst = min(mine, key=lambda r: r["WT"])
        paired = " / ".join(
            f"{statistics.mean(by[c + (name,)][k] - by[c + ('one pass',)][k] for c in cases):+.3f}"
            for k in REGIONS
        )
        lines.append(
            f"| {name} | {means[0]:.3f} | {means[1]:.3f} | {means[2]:.3f} | {worst['WT']:.3f} "
            f"({worst['case']}) | {statistics.median(r['seconds'] for r in mine):.2f} | {paired} |"
        )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "root", type=Path, help="a cross-validation folder (fold*/last.safetensors, fold*/heldout)"
    )
    parser.add_argument("--windows", type=int, nargs="+", default=[64, 80, 96], help="window edges in voxels")
    parser.add_argument("--folds", type=int, nargs="+", help="only these folds (default: every trained fold)")
    parser.add_argument("--json", type=Path, help="also write every row to this JSON file")
    args = parser.parse_args(argv)
    if any(w < 8 for w in args.windows):
        sys.exit("error: --windows are edges in voxels of the model's grid, at least 8")
    rows = sweep(args.root, args.windows, args.folds)
    for line in table(rows):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
