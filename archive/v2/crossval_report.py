"""Summarise a cross-validation made by ``scripts/crossval.sh``: per fold and over folds, per case.

For every variant found (``pred-last``, ``pred-best``, ``pred-last-tta``, ``pred-last-sw``: the folds'
``metrics.csv`` files), prints Markdown: the mean Dice of WT / TC / ET and HD95 per fold, the mean and
standard deviation over folds, the pooled mean over all held-out cases, and the held-out cases sorted from
worst to best WT Dice; then every variant paired case by case against ``last`` (mean difference, cases
better / worse, Wilcoxon signed-rank p).

    python scripts/crossval_report.py runs/cv-brats [--variant last] [--csv all_cases.csv]
    python scripts/crossval_report.py runs/cv27-strong --variant last-sw --against runs/cv27-v1   # two presets
    python scripts/crossval_report.py runs/cv27-v1 --reference last-sw --variant ens-cv27-strong-sw \
        --side-by-side --png v1-v2.png   # two variants case by case, as a table and a picture
    python scripts/crossval_report.py runs/cv27-v1 --reference last-sw --variant ens-cv27-strong-sw \
        --splice docs/results.md:v1-v2 --names "v1 preset" "v2 recipe"   # that table, kept current in a document

``--splice FILE:NAME`` rewrites what lies between the lines ``<!-- NAME -->`` and ``<!-- /NAME -->`` of FILE
with the side-by-side table of the first variant against ``--reference``, the folds done, the per-fold means
and the paired differences; the rest of FILE is left as it is.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from pathlib import Path

REGIONS = ("WT", "TC", "ET")


def _read(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _mean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.fmean(values) if values else math.nan


def _sd(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.stdev(values) if len(values) > 1 else math.nan


def _f(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def collect(root: Path, variant: str) -> dict[int, list[dict]]:
    """{fold: rows of that fold's held-out metrics} for the folds that have been scored."""
    folds = {}
    for metrics in sorted(root.glob(f"fold*/pred-{variant}/metrics.csv")):
        fold = int(metrics.parent.parent.name.removeprefix("fold"))
        folds[fold] = _read(metrics)
    return folds


def planned_folds(root: Path) -> int | None:
    """How many folds the cross-validation has (its folds' ``config.json``), scored or not; None if none says."""
    import json

    planned = set()
    for config in root.glob("fold*/config.json"):
        try:
            planned.add(int(json.loads(config.read_text(encoding="utf-8"))["folds"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return max(planned) if planned else None


def fold_means(folds: dict[int, list[dict]], metric: str = "dice") -> dict[int, dict[str, float]]:
    """{fold: {region: mean of ``<metric>_<region>`` over that fold's held-out cases}}."""
    return {fold: {r: _mean(float(row[f"{metric}_{r}"]) for row in rows) for r in REGIONS}
            for fold, rows in sorted(folds.items())}


def report(root: Path, variant: str) -> tuple[str, list[dict]]:
    folds = collect(root, variant)
    if not folds:
        raise SystemExit(f"error: no {root}/fold*/pred-{variant}/metrics.csv; run scripts/crossval.sh first")
    planned = planned_folds(root)
    done = (f"{len(folds)} of {planned} folds: incomplete" if planned and len(folds) < planned
            else f"{len(folds)} folds")
    lines = [f"### `{variant}` weights ({done})", "",
             "| fold | cases | WT | TC | ET | HD95 WT (mm) | HD95 TC | HD95 ET |", "|---|---|---|---|---|---|---|---|"]
    dice_by_fold, hd_by_fold = fold_means(folds), fold_means(folds, "hd95")
    per_fold = {r: [d[r] for d in dice_by_fold.values()] for r in REGIONS}
    all_rows = []
    for fold, rows in sorted(folds.items()):
        dice, hd = dice_by_fold[fold], hd_by_fold[fold]
        lines.append(f"| {fold} | {len(rows)} | " + " | ".join(_f(dice[r]) for r in REGIONS) + " | "
                     + " | ".join(_f(hd[r], 1) for r in REGIONS) + " |")
        all_rows += [dict(row, fold=fold) for row in rows]
    lines.append("| **mean +- SD over folds** | | " + " | ".join(
        f"**{_f(_mean(per_fold[r]))}** +- {_f(_sd(per_fold[r]))}" for r in REGIONS) + " | | | |")
    pooled = {r: _mean(float(row[f"dice_{r}"]) for row in all_rows) for r in REGIONS}
    hd = {r: _mean(float(row[f"hd95_{r}"]) for row in all_rows) for r in REGIONS}
    lines.append(f"| pooled over {len(all_rows)} cases | | " + " | ".join(_f(pooled[r]) for r in REGIONS) + " | "
                 + " | ".join(_f(hd[r], 1) for r in REGIONS) + " |")
    lines += ["", "Held-out cases, worst WT first:", "",
              "| case | fold | WT | TC | ET | WT volume (ml) | ET volume (ml) |", "|---|---|---|---|---|---|---|"]
    for row in sorted(all_rows, key=lambda row: float(row["dice_WT"])):
        lines.append(f"| {row['case']} | {row['fold']} | " + " | ".join(_f(float(row[f'dice_{r}'])) for r in REGIONS)
                     + f" | {float(row['vol_ref_WT']):.1f} | {float(row['vol_ref_ET']):.1f} |")
    return "\n".join(lines) + "\n", all_rows


def scores_by_case(folds: dict[int, list[dict]]) -> dict[str, dict[str, float]]:
    """{case: {metric: value}} over the folds of :func:`collect`."""
    return {row["case"]: {k: float(x) for k, x in row.items() if k != "case"}
            for rows in folds.values() for row in rows}


def _by_case(root: Path, variant: str) -> dict[str, dict[str, float]]:
    return scores_by_case(collect(root, variant))


def paired_lines(root: Path, variants: list[str], reference: str = "last") -> list[str]:
    """Each variant against ``reference`` on the same held-out cases."""
    from medseg3d.experiments import paired_cells

    by_variant = {v: _by_case(root, v) for v in variants}
    others = [v for v in variants if v != reference]
    if reference not in by_variant or not others:
        return []
    lines = [f"### Paired against `{reference}` (mean difference; cases better / worse; Wilcoxon p)", "",
             "| variant | cases | WT | TC | ET |", "|---|---|---|---|---|"]
    for v in others:
        n, cells = paired_cells(by_variant[reference], by_variant[v], [f"dice_{r}" for r in REGIONS], na="n/a")
        lines.append(f"| {v} | {n} | " + " | ".join(cells) + " |")
    return lines + [""]


def against_lines(root: Path, other: Path, variants: list[str]) -> list[str]:
    """Each variant of ``root`` against the same variant of another cross-validation ``other`` (another preset on
    the same split), on the held-out cases both have scored."""
    from medseg3d.experiments import paired_cells

    title = f"### `{root}` against `{other}`, the same variant (mean difference; cases better / worse; Wilcoxon p)"
    lines = [title, "", "| variant | cases | WT | TC | ET |", "|---|---|---|---|---|"]
    rows = []
    for v in variants:
        mine, theirs = _by_case(root, v), _by_case(other, v)
        if mine and theirs:
            n, cells = paired_cells(theirs, mine, [f"dice_{r}" for r in REGIONS], na="n/a")
            rows.append(f"| {v} | {n} | " + " | ".join(cells) + " |")
    return lines + rows + [""] if rows else [f"(`{other}` has none of these variants scored)", ""]


def side_by_side_lines(root: Path, reference: str, variant: str) -> list[str]:
    """Every held-out case scored by both ``reference`` and ``variant``: their Dice side by side and the
    difference, worst ``variant`` WT first, then the means and the cases each is worst on."""
    ref, var, folds, cases = _both(root, reference, variant)
    cases.sort(key=lambda c: var[c]["dice_WT"])
    if not cases:
        return [f"(no case scored by both `{reference}` and `{variant}`)", ""]

    def cells(scores):
        return " / ".join(_f(scores[f"dice_{r}"]) for r in REGIONS)

    lines = [(f"### `{reference}` and `{variant}` side by side ({len(cases)} held-out cases, worst `{variant}` WT "
             "first; Dice WT / TC / ET)"), "", f"| case | fold | `{reference}` | `{variant}` | difference |",
             "|---|---|---|---|---|"]
    for c in cases:
        diff = " / ".join(f"{var[c][f'dice_{r}'] - ref[c][f'dice_{r}']:+.3f}" for r in REGIONS)
        lines.append(f"| {c} | {folds.get(c, '')} | {cells(ref[c])} | {cells(var[c])} | {diff} |")
    mean = {name: {f"dice_{r}": _mean(scores[c][f"dice_{r}"] for c in cases) for r in REGIONS}
            for name, scores in ((reference, ref), (variant, var))}
    diff = " / ".join(f"{mean[variant][f'dice_{r}'] - mean[reference][f'dice_{r}']:+.3f}" for r in REGIONS)
    lines.append(f"| **mean** | | **{cells(mean[reference])}** | **{cells(mean[variant])}** | {diff} |")
    for r in REGIONS:
        lowest = {name: min(cases, key=lambda c: scores[c][f"dice_{r}"]) for name, scores in ((reference, ref),
                                                                                          (variant, var))}
        lines.append(f"| lowest {r} | | {lowest[reference]} {_f(ref[lowest[reference]][f'dice_{r}'])} | "
                     f"{lowest[variant]} {_f(var[lowest[variant]][f'dice_{r}'])} | |")
    return lines + [""]


def splice_lines(root: Path, reference: str, variant: str, names: tuple[str, str]) -> list[str]:
    """The block ``--splice`` writes: the folds done, the side-by-side table (its columns called ``names``),
    the per-fold means of both and their paired differences."""
    from medseg3d.experiments import paired_cells

    table = side_by_side_lines(root, reference, variant)
    if len(table) < 3:
        raise SystemExit(f"error: no case scored by both `{reference}` and `{variant}` under {root}")
    table = table[2:-1]
    table[0] = f"| case | fold | {names[0]} WT / TC / ET | {names[1]} WT / TC / ET | difference |"
    means = {name: fold_means(collect(root, v)) for name, v in zip(names, (reference, variant))}
    folds = sorted(set(means[names[0]]) & set(means[names[1]]))
    planned = planned_folds(root)
    n, cells = paired_cells(_by_case(root, reference), _by_case(root, variant), [f"dice_{r}" for r in REGIONS],
                            na="n/a")
    done = ", ".join(map(str, folds[:-1])) + (" and " if len(folds) > 1 else "") + str(folds[-1])
    head = (f"Folds {done}" if len(folds) > 1 else f"Fold {done}") + (f" of {planned}" if planned else "")
    per_fold = "; ".join(f"fold {k} " + ", ".join(f"{name} " + " / ".join(_f(means[name][k][r]) for r in REGIONS)
                                                  for name in names) for k in folds)
    intro = (f"{head}: {n} held-out cases, each scored by models that never saw it (written by "
             "`scripts/crossval_report.py --splice`).")
    return [intro, "", *table, "",
            f"Per fold (WT / TC / ET): {per_fold}. Paired over the {n} cases ({names[1]} minus {names[0]}; cases "
            f"better / worse; Wilcoxon p): " + ", ".join(f"{r} {c}" for r, c in zip(REGIONS, cells)) + "."]


def splice(target: str, lines: list[str]) -> Path:
    """Replace the block between ``<!-- NAME -->`` and ``<!-- /NAME -->`` of ``FILE`` (``target`` is
    ``FILE:NAME``) by ``lines``, atomically; a missing file or marker is one clear error."""
    from medseg3d.io import write_text_atomic

    path_text, sep, name = target.rpartition(":")
    path = Path(path_text)
    if not sep or not name or not path.is_file():
        raise SystemExit(f"error: --splice {target}: give FILE:NAME, an existing Markdown file and a block name")
    text = path.read_text(encoding="utf-8")
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise SystemExit(f"error: {path} needs exactly one '{start}' line and one '{end}' line after it")
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    return write_text_atomic(before + start + "\n" + "\n".join(lines) + "\n" + end + after, path)


def _both(root: Path, reference: str, variant: str) -> tuple[dict, dict, dict[str, int], list[str]]:
    """Each variant's scores by case, ``variant``'s fold of each case, and the cases both scored (by name)."""
    ref, var = _by_case(root, reference), _by_case(root, variant)
    folds = {row["case"]: fold for fold, rows in collect(root, variant).items() for row in rows}
    return ref, var, folds, sorted(set(ref) & set(var))


def side_by_side_png(root: Path, reference: str, variant: str, path: Path) -> Path:
    """A picture of :func:`side_by_side_lines`: each held-out case's Dice under ``reference`` (x) against
    ``variant`` (y), one panel per region, the diagonal where they agree."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medseg3d.plotting import save_figure

    ref, var, folds, cases = _both(root, reference, variant)
    if not cases:
        raise SystemExit(f"error: no case scored by both `{reference}` and `{variant}` under {root}")
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    for ax, r in zip(axes, REGIONS):
        x = [ref[c][f"dice_{r}"] for c in cases]
        y = [var[c][f"dice_{r}"] for c in cases]
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.scatter(x, y, c=[folds.get(c, 0) for c in cases], cmap="tab10", vmin=0, vmax=9, s=28)
        for c, xi, yi in zip(cases, x, y):
            if min(xi, yi) < 0.7:  # name the weak cases
                ax.annotate(c.removeprefix("Brats18_").removesuffix("_1"), (xi, yi), fontsize=7,
                            xytext=(3, -3), textcoords="offset points")
        better = sum(yi > xi for xi, yi in zip(x, y))
        ax.set(xlim=(0, 1.02), ylim=(0, 1.02), aspect="equal", xlabel=f"{reference} Dice", ylabel=f"{variant} Dice",
               title=f"{r}: mean {_mean(x):.3f} -> {_mean(y):.3f}, {better} of {len(cases)} cases above")
    fig.suptitle(f"{root}: held-out cases (colour: fold)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the OUT folder given to scripts/crossval.sh")
    parser.add_argument("--variant", action="append", help="last, best, last-tta, last-sw, or any other pred-NAME scored (default: all found)")
    parser.add_argument("--reference", default="last", help="the variant the others are paired against")
    parser.add_argument("--csv", type=Path, help="also write all held-out rows of the first variant here")
    parser.add_argument("--against", type=Path, action="append", default=[],
                        help="another crossval.sh folder on the same split: pair each variant with its own there")
    parser.add_argument("--side-by-side", action="store_true",
                        help="also each variant's held-out cases beside --reference's, case by case")
    parser.add_argument("--png", type=Path, help="a picture of the first variant against --reference, case by case")
    parser.add_argument("--splice", metavar="FILE:NAME",
                        help="write the first variant against --reference into FILE's block <!-- NAME --> ... <!-- /NAME -->")
    parser.add_argument("--names", nargs=2, default=None, metavar=("REFERENCE", "VARIANT"),
                        help="what --splice calls the two (default: their variant names)")
    args = parser.parse_args(argv)
    known = ("last", "last-tta", "last-sw", "best")
    found = sorted({m.parent.name[len("pred-"):] for m in args.root.glob("fold*/pred-*/metrics.csv")})
    variants = args.variant or [v for v in known if v in found] + [v for v in found if v not in known]
    if not variants:
        print(f"error: nothing scored under {args.root}; run scripts/crossval.sh first", file=sys.stderr)
        return 1
    for i, variant in enumerate(variants):
        text, rows = report(args.root, variant)
        print(text)
        if args.csv and i == 0:
            args.csv.parent.mkdir(parents=True, exist_ok=True)
            with args.csv.open("w", newline="") as f:
                # every column any fold has, in order of appearance (a fold restored from fewer columns, or
                # scored by an older evaluate, leaves the others empty)
                writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in rows for k in row)), restval="")
                writer.writeheader()
                writer.writerows(rows)
    print("\n".join(paired_lines(args.root, variants, args.reference)))
    for other in args.against:
        print("\n".join(against_lines(args.root, other, variants)))
    compared = [v for v in variants if v != args.reference]
    if args.side_by_side:
        for variant in compared:
            print("\n".join(side_by_side_lines(args.root, args.reference, variant)))
    if args.png:
        if not compared:
            print(f"error: --png needs a --variant other than the reference {args.reference}", file=sys.stderr)
            return 1
        print(f"picture: {side_by_side_png(args.root, args.reference, compared[0], args.png)}")
    if args.splice:
        if not compared:
            print(f"error: --splice needs a --variant other than the reference {args.reference}", file=sys.stderr)
            return 1
        names = tuple(args.names or (f"`{args.reference}`", f"`{compared[0]}`"))
        print(f"spliced: {splice(args.splice, splice_lines(args.root, args.reference, compared[0], names))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
