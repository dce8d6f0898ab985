"""The cross-validation report's pictures: every held-out case per fold, and two variants case by case."""

from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from .scores import both_scored, collect, mean, regions_of


def side_by_side_png(root: Path, reference: str, variant: str, path: Path) -> Path:
    """Each held-out case's Dice under ``reference`` (x) against ``variant`` (y), one panel per region.

    Args:
        root: the crossval run folder.
        reference, variant: the two weights compared.
        path: the PNG file.

    Returns:
        The PNG written.

    Raises:
        InputError: no case was scored by both.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...plotting import save_figure

    ref, var, folds, cases = both_scored(root, reference, variant)
    if not cases:
        raise InputError(f"{root}: no case scored by both `{reference}` and `{variant}`")
    regions = regions_of(collect(root, variant))
    fig, axes = plt.subplots(1, len(regions), figsize=(4.4 * len(regions), 4.6), squeeze=False)
    for ax, r in zip(axes[0], regions):
        x = [ref[c][f"dice_{r}"] for c in cases]
        y = [var[c][f"dice_{r}"] for c in cases]
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.scatter(x, y, c=[folds.get(c, 0) for c in cases], cmap="tab10", vmin=0, vmax=9, s=28)
        for c, xi, yi in zip(cases, x, y):
            if min(xi, yi) < 0.7:  # name the weak cases
                ax.annotate(
                    c.removeprefix("Brats18_").removesuffix("_1"),
                    (xi, yi),
                    fontsize=7,
                    xytext=(3, -3),
                    textcoords="offset points",
                )
        better = sum(yi > xi for xi, yi in zip(x, y))
        ax.set(
            xlim=(0, 1.02),
            ylim=(0, 1.02),
            aspect="equal",
            xlabel=f"{reference} Dice",
            ylabel=f"{variant} Dice",
            title=f"{r}: mean {mean(x):.3f} -> {mean(y):.3f}, {better} of {len(cases)} cases above",
        )
    fig.suptitle(f"{root}: held-out cases (colour: fold)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def cases_png(root: Path, variant: str, path: Path, worst: int = 3) -> Path:
    """Every held-out case's Dice per region, one column of dots per fold, the worst cases named.

    Args:
        root: the crossval run folder.
        variant: the weights scored.
        path: the PNG file.
        worst: how many of the lowest cases to name per region.

    Returns:
        The PNG written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...plotting import save_figure

    folds = collect(root, variant)
    regions = regions_of(folds)
    fig, axes = plt.subplots(1, len(regions), figsize=(3.8 * len(regions), 4.2), squeeze=False, sharey=True)
    for ax, r in zip(axes[0], regions):
        for k, rows in sorted(folds.items()):
            values = [float(row[f"dice_{r}"]) for row in rows]
            jitter = [k + 0.25 * ((i * 0.618) % 1 - 0.5) for i in range(len(values))]
            ax.scatter(jitter, values, s=14, alpha=0.7)
            ax.plot([k - 0.3, k + 0.3], [mean(values)] * 2, color="black", lw=1.5)
        rows = sorted(
            (dict(row, fold=k) for k, rs in folds.items() for row in rs),
            key=lambda row: float(row[f"dice_{r}"]),
        )
        for row in rows[:worst]:
            ax.annotate(
                row["case"],
                (int(row["fold"]), float(row[f"dice_{r}"])),
                fontsize=7,
                xytext=(4, -2),
                textcoords="offset points",
            )
        ax.set(
            title=f"{r}: pooled mean {mean(float(row[f'dice_{r}']) for row in rows):.3f}",
            xlabel="fold",
            xticks=sorted(folds),
            ylim=(0, 1.02),
        )
    axes[0][0].set_ylabel("held-out Dice")
    fig.suptitle(f"{variant}: every held-out case (bar: fold mean; named: the {worst} worst)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
