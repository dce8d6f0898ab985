"""Would a longer training budget help? Held-out Dice over the epochs of a cross-validation's trainings.

``archive/v2/crossval.sh`` trains each fold with ``--fold K``, so a fold's validation cases are its held-out
cases and its ``log.csv`` holds their Dice every ``val_every`` epochs (one whole-volume pass, the training
loop's validation). For each fold and region this prints the mean Dice over the first and last windows of
``--window`` epochs before the end, and the slope of a least-squares line through the last window (Dice per
100 epochs): a slope near zero with a small late gain says more of the same iterations is not the lever.
``--png`` draws every fold's curves.

    python scripts/learning_curves.py runs/cv27-v1 [--window 60] [--png runs/cv27-v1/learning_curves.png]

The learning rate decays to its end value over the planned epochs, so a late plateau is partly the schedule:
this measures the preset as it is, not what a longer schedule would reach.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from pathlib import Path

REGIONS = ("WT", "TC", "ET")


def read_curve(log: Path) -> dict[str, list[tuple[int, float]]]:
    """region -> [(epoch, held-out Dice)] from a training's log.csv (rows with validation scores only)."""
    curve = {r: [] for r in REGIONS}
    with log.open(newline="") as f:
        for row in csv.DictReader(f):
            for r in REGIONS:
                value = row.get(f"dice_{r}", "")
                if value not in ("", None):
                    curve[r].append((int(row["epoch"]), float(value)))
    return curve


def slope_per_100(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of Dice against epoch, in Dice per 100 epochs (nan with fewer than two points)."""
    if len(points) < 2:
        return math.nan
    xs, ys = zip(*points)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return 100 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else math.nan


def summarise(curve: dict[str, list[tuple[int, float]]], window: int) -> dict[str, dict[str, float]]:
    """Per region: mean Dice in the window before the last one (``earlier``), in the last (``late``), their
    difference (``gain``) and the slope through the last window (``slope``)."""
    out = {}
    for r, points in curve.items():
        if not points:
            continue
        end = points[-1][0]
        late = [p for p in points if p[0] > end - window]
        earlier = [p for p in points if end - 2 * window < p[0] <= end - window]
        late_mean = statistics.fmean(v for _, v in late)
        earlier_mean = statistics.fmean(v for _, v in earlier) if earlier else math.nan
        out[r] = {
            "earlier": earlier_mean,
            "late": late_mean,
            "gain": late_mean - earlier_mean,
            "slope": slope_per_100(late),
            "end": end,
        }
    return out


def _f(v: float, sign: str = "") -> str:
    return "n/a" if math.isnan(v) else f"{v:{sign}.3f}"


def report(root: Path, window: int) -> tuple[str, dict]:
    """The Markdown table and {fold name: curve} of every finished fold of ``root``."""
    curves = {
        run.name: read_curve(run / "log.csv")
        for run in sorted(root.glob("fold[0-9]*"))
        if (run / "done").exists() and (run / "log.csv").exists()
    }
    lines = [
        f"Held-out Dice during training, {root} (window {window} epochs)",
        "",
        "| fold | region | epochs | mean, window before | mean, last window | gain | slope per 100 epochs |",
        "|---|---|---|---|---|---|---|",
    ]
    gains = {r: [] for r in REGIONS}
    for name, curve in curves.items():
        for r, s in summarise(curve, window).items():
            gains[r].append(s["gain"])
            lines.append(
                f"| {name} | {r} | {s['end']} | {_f(s['earlier'])} | {_f(s['late'])} | {_f(s['gain'], '+')} "
                f"| {_f(s['slope'], '+')} |"
            )
    if len(curves) > 1:
        for r in REGIONS:
            values = [g for g in gains[r] if not math.isnan(g)]
            if values:
                lines.append(
                    f"| mean of {len(values)} folds | {r} | | | | {_f(statistics.fmean(values), '+')} | |"
                )
    return "\n".join(lines), curves


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medseg3d.plotting import save_figure

    fig, axes = plt.subplots(1, len(REGIONS), figsize=(12, 3.6), sharey=True)
    for ax, r in zip(axes, REGIONS):
        for name, curve in curves.items():
            if curve[r]:
                ax.plot(*zip(*curve[r]), label=name, lw=1)
        ax.set_title(f"held-out Dice {r}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a archive/v2/crossval.sh output folder (foldK/log.csv)")
    parser.add_argument("--window", type=int, default=60, help="epochs per window (default 60)")
    parser.add_argument("--png", type=Path, help="also draw the curves here")
    args = parser.parse_args(argv)
    text, curves = report(args.root, args.window)
    if not curves:
        print(
            f"{args.root}: no finished fold with a log.csv (foldK/done); run archive/v2/crossval.sh first",
            file=sys.stderr,
        )
        return 2
    print(text)
    if args.png:
        plot(curves, args.png)
        print(f"\ncurves: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
