"""An experiment's tables: results collected over folds, paired statistics, ``table.md``, ``table.csv`` and
``plot.png``."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..datasets import fold_ids, load_split
from ..errors import InputError
from ..labels import LabelScheme
from ..plotting import save_figure
from ..train.config import label_scheme
from .catalogue import BASE, PAPER_MODALITIES, PAPER_REGIONS, QUICK, Experiment, get_experiment
from .reuse import reused_lines
from .task import fold_dir, run_state
from .timing import budget_text, format_duration, log_rows, read_timing


def _fold_means(rows: list[dict], columns: list[str]) -> dict[str, float]:
    """Mean over cases of each column, NaN (e.g. HD95 with one empty mask) left out."""
    out = {}
    for c in columns:
        values = np.array([float(r[c]) for r in rows if r.get(c) not in (None, "")], dtype=float)
        values = values[~np.isnan(values)]
        out[c] = float(values.mean()) if values.size else math.nan
    return out


def _columns(scheme: LabelScheme) -> list[str]:
    return (
        [f"dice_{n}" for n in scheme.class_names[1:]]
        + [f"dice_{r}" for r in scheme.regions]
        + [f"hd95_{r}" for r in scheme.regions]
    )


def collect_results(out) -> tuple[dict, list[dict], dict, dict[str, dict[str, dict]]]:
    """Read an experiment folder: (record, one row per run with mean/std over folds, validation curves,
    per-case scores).

    Each row holds ``run``, ``description``, ``folds_done``, ``<metric>_mean`` and ``<metric>_std`` (sample
    standard deviation over folds; NaN with fewer than 2 folds), ``iterations`` and ``train_minutes`` (means
    over folds). Curves map run -> (epochs, mean validation score over folds), over the folds that every run
    with a curve has finished (so that the runs' curves average the same validation cases) and the epochs
    all those folds reached. Per-case scores map run -> case -> that case's row of ``metrics.csv`` (floats)
    plus ``fold``.
    """
    out = Path(out)
    path = out / "experiment.json"
    if not path.is_file():
        raise InputError(
            f"{out}: holds no experiment (no experiment.json); run `medseg3d experiment NAME "
            "DATASET --out DIR` first"
        )
    record = json.loads(path.read_text(encoding="utf-8"))
    experiment = get_experiment(record["experiment"])
    rows, fold_curves, cases = [], {}, {}
    for run in experiment.runs:
        per_fold, iters, minutes, columns = [], [], [], []
        for k in range(record["folds"]):
            folder = fold_dir(out, run.name, k)
            if run_state(folder) != "done":
                continue
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            scheme = label_scheme(SimpleNamespace(labels=config["labels"], dataset=config.get("dataset")))
            columns += [c for c in _columns(scheme) if c not in columns]
            with open(folder / "metrics.csv", newline="") as fh:
                case_rows = list(csv.DictReader(fh))
            per_fold.append(_fold_means(case_rows, _columns(scheme)))
            for row in case_rows:
                values = {key: _float(v) for key, v in row.items() if key != "case"}
                cases.setdefault(run.name, {})[row["case"]] = values | {"fold": k}
            log = log_rows(folder)
            if log:
                iters.append(float(log[-1]["iteration"]))
                minutes.append(float(log[-1]["seconds"]) / 60)
                curve = {int(r["epoch"]): float(r["score"]) for r in log if r.get("score")}
                if curve:
                    fold_curves.setdefault(run.name, {})[k] = curve
        row = {"run": run.name, "description": run.description, "folds_done": len(per_fold)}
        for c in columns:
            values = np.array([f[c] for f in per_fold], dtype=float)
            values = values[~np.isnan(values)]
            row[f"{c}_mean"] = float(values.mean()) if values.size else math.nan
            row[f"{c}_std"] = float(values.std(ddof=1)) if values.size > 1 else math.nan
        row["iterations"] = float(np.mean(iters)) if iters else math.nan
        row["train_minutes"] = float(np.mean(minutes)) if minutes else math.nan
        rows.append(row)
    curves = {}
    common = set.intersection(*(set(f) for f in fold_curves.values())) if fold_curves else set()
    for name, by_fold in fold_curves.items():
        chosen = [by_fold[k] for k in sorted(common)]
        epochs = sorted(set.intersection(*(set(c) for c in chosen))) if chosen else []
        if epochs:
            curves[name] = (epochs, [float(np.mean([c[e] for c in chosen])) for e in epochs])
    return record, rows, curves, cases


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def paired_comparison(reference: dict[str, dict], other: dict[str, dict], metric: str) -> dict:
    """``other`` against ``reference`` on the cases both scored (the same cases, the same folds).

    Args:
        reference, other: {case: {metric: value}}; NaN values are left out.
        metric: the column compared (e.g. "dice_WT").

    Returns:
        {"n": cases paired, "mean_diff": mean of other - reference, "better", "worse": case counts, "p": the
        two-sided Wilcoxon signed-rank p-value}; NaN where there is no pair (mean) or fewer than two non-zero
        differences (p).
    """
    from scipy.stats import wilcoxon

    common = sorted(set(reference) & set(other))
    pairs = [(reference[c].get(metric, math.nan), other[c].get(metric, math.nan)) for c in common]
    diffs = np.array([b - a for a, b in pairs if not (math.isnan(a) or math.isnan(b))])
    result = {"n": int(diffs.size), "mean_diff": math.nan, "better": 0, "worse": 0, "p": math.nan}
    if diffs.size:
        result.update(
            mean_diff=float(diffs.mean()), better=int((diffs > 0).sum()), worse=int((diffs < 0).sum())
        )
        if np.count_nonzero(diffs) >= 2:
            result["p"] = float(wilcoxon(diffs).pvalue)
    return result


def paired_cells(
    reference: dict[str, dict], other: dict[str, dict], metrics: list[str], na: str = "-"
) -> tuple[int, list[str]]:
    """(cases paired, one cell per metric): ``other`` against ``reference`` as "mean difference (cases
    better/worse, p P)".

    Args:
        reference, other: {case: {metric: value}}.
        metrics: the columns compared.
        na: the text for a p-value that cannot be computed ("-" is written where no case pairs).
    """
    cells, n = [], 0
    for metric in metrics:
        c = paired_comparison(reference, other, metric)
        n = max(n, c["n"])
        if not c["n"]:
            cells.append("-")
            continue
        p = na if math.isnan(c["p"]) else f"{c['p']:.2f}"
        cells.append(f"{c['mean_diff']:+.3f} ({c['better']}/{c['worse']}, p {p})")
    return n, cells


def paired_lines(experiment: Experiment, cases: dict[str, dict[str, dict]], metrics: list[str]) -> list[str]:
    """Each run against the reference run, case by case.

    Args:
        experiment: the grid (its runs and reference run).
        cases: {run: {case: {metric: value}}}.
        metrics: the columns; the ``dice_*`` ones are compared.

    Returns:
        Markdown lines, or [] without a scored reference and another run.
    """
    ref = experiment.reference_run
    others = [r.name for r in experiment.runs if r.name != ref and r.name in cases]
    dice = [m for m in metrics if m.startswith("dice_")]
    if ref not in cases or not others or not dice:
        return []
    lines = [
        "",
        f"## Paired against `{ref}`",
        "",
        (
            f"Per-case Dice of each run minus `{ref}`'s on the same cases (scored by models of the same "
            "fold): mean difference, then cases better / worse, then the two-sided Wilcoxon signed-rank "
            f"p-value. With {len(cases[ref])} cases, p < 0.05 needs a consistent difference; a difference of "
            "the mean with p > 0.2 is noise at this budget."
        ),
        "",
        "| run | cases | " + " | ".join(_header(m) for m in dice) + " |",
        "|---|---|" + "---|" * len(dice),
    ]
    for name in others:
        n, cells = paired_cells(cases[ref], cases[name], dice)
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return lines


def per_case_lines(experiment: Experiment, cases: dict[str, dict[str, dict]]) -> list[str]:
    """Every scored case, worst first by the reference run's first region (or the first scored run's, until
    the reference has scores): each run's region Dice.

    Args:
        experiment: the grid.
        cases: {run: {case: {metric: value}}}.

    Returns:
        Markdown lines (with the fold and the reference volume in ml), or [] when no run has scores.
    """
    names = [r.name for r in experiment.runs if r.name in cases]
    if not names:
        return []
    order_by = experiment.reference_run if experiment.reference_run in names else names[0]
    first = cases[order_by]
    regions = [k[len("dice_") :] for k in next(iter(first.values())) if k.startswith("dice_")]
    regions = [r for r in ("WT", "TC", "ET") if r in regions] or regions[-1:]
    key = f"dice_{regions[0]}"
    all_cases = sorted(
        {c for run in cases.values() for c in run}, key=lambda c: (first.get(c, {}).get(key, math.inf), c)
    )
    vol = f"vol_ref_{regions[0]}"
    lines = [
        "",
        "## Per case",
        "",
        (
            f"Dice per case ({' / '.join(regions)}), worst `{order_by}` {regions[0]} first; each case was "
            f"scored by the model of the fold that held it out; reference {regions[0]} volume in ml."
        ),
        "",
        f"| case | fold | {regions[0]} ml | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for c in all_cases:
        any_row = next(cases[n][c] for n in names if c in cases[n])
        ml = any_row.get(vol, math.nan)
        cells = []
        for n in names:
            row = cases[n].get(c)
            cells.append(" / ".join(f"{row.get(f'dice_{r}', math.nan):.2f}" for r in regions) if row else "-")
        ml_text = "-" if math.isnan(ml) else f"{ml:.0f}"
        lines.append(f"| {c} | {any_row['fold']} | {ml_text} | " + " | ".join(cells) + " |")
    return lines


def _metric_columns(rows: list[dict]) -> list[str]:
    seen: list[str] = []
    for row in rows:
        seen += [k[: -len("_mean")] for k in row if k.endswith("_mean") and k[: -len("_mean")] not in seen]
    return seen


def _cell(row: dict, metric: str, digits: int) -> str:
    mean, std = row.get(f"{metric}_mean", math.nan), row.get(f"{metric}_std", math.nan)
    if mean is None or math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f}" + ("" if math.isnan(std) else f" ± {std:.{digits}f}")


def _header(metric: str) -> str:
    kind, name = metric.split("_", 1)
    return f"HD95 {name} (mm)" if kind == "hd95" else name


def _convergence_lines(curves: dict) -> list[str]:
    if not curves:
        return []
    last = min(max(e) for e, _ in curves.values())
    marks = sorted({max(1, math.ceil(last * q)) for q in (0.25, 0.5, 1.0)})
    lines = [
        "",
        "## Convergence",
        "",
        (
            "Validation score during training (mean of the region Dice on the fold's validation cases, at "
            "the training resolution), mean over the folds that every run has finished, at epochs every run "
            f"reached; the last column averages epochs 1-{last} (higher = faster)."
        ),
        "",
        "| run | " + " | ".join(f"epoch {m}" for m in marks) + f" | mean over epochs 1-{last} |",
        "|---|" + "---|" * (len(marks) + 1),
    ]
    for run, (epochs, scores) in curves.items():
        lookup = dict(zip(epochs, scores))
        cells = [f"{lookup[m]:.3f}" if m in lookup else "-" for m in marks]
        upto = [s for e, s in zip(epochs, scores) if e <= last]
        lines.append(f"| {run} | " + " | ".join(cells) + f" | {np.mean(upto):.3f} |")
    return lines


def _paper_lines(name: str) -> list[str]:
    lines = ["", "## The paper's numbers", ""]
    if name == "modalities":
        cols = PAPER_MODALITIES["columns"]
        lines += [
            (
                "Per-class Dice on BRATS 2015 by input modalities (the seed's table). BRATS 2015 keeps "
                "necrosis and non-enhancing tumour apart; BraTS 2017+ merges them into NCR/NET, so compare "
                "the edema and enhancing columns directly and NCR/NET only loosely."
            ),
            "",
            "| modalities | " + " | ".join(cols) + " |",
            "|---|" + "---|" * len(cols),
        ]
        lines += [
            f"| {run} | " + " | ".join(f"{v:.2f}" for v in vals) + " |"
            for run, vals in PAPER_MODALITIES["rows"].items()
        ]
    elif name == "hand":
        return [
            "",
            "## The paper's numbers",
            "",
            "The hand MRI results are not in the facts file (kayalibay2017.md); the data set is not public.",
        ]
    else:
        lines += [
            "BRATS 2015 test set, the paper's final network after full training (120,000 iterations): "
            + ", ".join(f"{k} {v:.2f}" for k, v in PAPER_REGIONS.items())
            + "."
        ]
    return lines


def write_report(out) -> dict[str, Path]:
    """Write ``table.md``, ``table.csv`` and ``plot.png`` from whatever runs of ``out`` are complete."""
    from ..train import software_versions

    out = Path(out)
    record, rows, curves, cases = collect_results(out)
    experiment = get_experiment(record["experiment"])
    metrics = _metric_columns(rows)

    csv_path = out / "table.csv"
    keys = (
        ["run", "description", "folds_done"]
        + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
        + ["iterations", "train_minutes"]
    )
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k, math.nan)) for k in keys})
    os.replace(tmp, csv_path)

    wall, copied = 0.0, 0
    for run in experiment.runs:
        for k in range(record["folds"]):
            folder = fold_dir(out, run.name, k)
            if (folder / "reused.json").is_file():  # trained (and timed) in the experiment it came from
                copied += 1
                continue
            wall += sum(read_timing(folder).values())
    sw = software_versions()
    budget = budget_text(record, len(fold_ids(load_split(out / "split.json"), 0)[0]))
    lines = [f"# Experiment `{experiment.name}`: {experiment.description}", ""]
    if record["quick"]:
        lines += [
            (
                "**QUICK SMOKE RUN (`--quick`): 2 cases, a few iterations at strong down-sampling. These "
                "numbers test the machinery; they are not results.**"
            ),
            "",
        ]
    lines += [
        f"- dataset: `{record['dataset']}`; {record['folds']}-fold cross-validation (`split.json`); {budget}",
        f"- settings: {settings_text(record)}",
        (
            "- scored: the final parameters of each fold on that fold's validation cases, on the original "
            "grid (per-case Dice and HD95 in mm; HD95 is left out where one mask is empty); cells are mean ± "
            "sample standard deviation over folds of the per-fold mean"
        ),
        (
            f"- machine: {os.cpu_count()} CPU cores, {sw['platform']}; torch {sw['torch']}, "
            f"medseg3d {sw['medseg3d']}"
        ),
        f"- wall time of the recorded runs (training + scoring): {format_duration(wall)}"
        + (f", not counting the {copied} copied with `--reuse`" if copied else ""),
        f"- claim tested: {experiment.claim}",
    ]
    lines += reused_lines(out)
    lines += [
        "",
        "| run | what | folds | " + " | ".join(_header(m) for m in metrics) + " | iterations | minutes |",
        "|---|---|---|" + "---|" * (len(metrics) + 2),
    ]
    for row in rows:
        if not row["folds_done"]:
            lines.append(
                f"| {row['run']} | {row['description']} | 0 | "
                + " | ".join("not yet run" for _ in metrics)
                + " | - | - |"
            )
            continue
        cells = [_cell(row, m, 1 if m.startswith("hd95") else 3) for m in metrics]
        its = "-" if math.isnan(row["iterations"]) else f"{row['iterations']:.0f}"
        mins = "-" if math.isnan(row["train_minutes"]) else f"{row['train_minutes']:.1f}"
        lines.append(
            f"| {row['run']} | {row['description']} | {row['folds_done']}/{record['folds']} | "
            + " | ".join(cells)
            + f" | {its} | {mins} |"
        )
    lines += paired_lines(experiment, cases, metrics)
    lines += _convergence_lines(curves if experiment.convergence else {})
    lines += per_case_lines(experiment, cases)
    lines += _paper_lines(experiment.name)
    md_path = out / "table.md"
    tmp = md_path.with_name(md_path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, md_path)
    plot_path = _plot(
        out / "plot.png", experiment, rows, metrics, curves if experiment.convergence else {}, record["quick"]
    )
    return {"table_md": md_path, "table_csv": csv_path, "plot": plot_path}


def _csv_value(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def settings_text(record: dict) -> str:
    """The training settings shared by the experiment's runs, as one line, from its record."""
    settings = {
        **BASE,
        **(QUICK if record["quick"] else {}),
        **record.get("adapted", {}),
        "precision": record.get("precision", "auto"),
    }
    keep = (
        "net",
        "loss",
        "labels",
        "crop",
        "crop_size",
        "spacing" if settings.get("spacing") else "downsample",
        "patch",
        "batch",
        "augment",
        "lr",
        "schedule",
        "epochs",
        "iters_per_epoch",
        "precision",
    )
    return (
        ", ".join(
            f"{k}={settings[k]:.4g}" if isinstance(settings[k], float) else f"{k}={settings[k]}"
            for k in keep
            if settings.get(k) is not None
        )
        + ", norm=instance (every network that has the option)"
        + " (each run changes some of these, as its description says)"
    )


def _plot(
    path: Path, experiment: Experiment, rows: list[dict], metrics: list[str], curves: dict, quick: bool
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dice = [m for m in metrics if m.startswith("dice_")]
    done = [r for r in rows if r["folds_done"]]
    fig, axes = plt.subplots(1, 2 if curves else 1, figsize=(13 if curves else 9, 4.5), squeeze=False)
    ax = axes[0][0]
    width = 0.8 / max(len(done), 1)
    x = np.arange(len(dice))
    for i, row in enumerate(done):
        means = [row.get(f"{m}_mean", math.nan) for m in dice]
        stds = [0.0 if math.isnan(row.get(f"{m}_std", math.nan)) else row[f"{m}_std"] for m in dice]
        ax.bar(x - 0.4 + width * (i + 0.5), means, width, yerr=stds, capsize=2, label=row["run"])
    ax.set_xticks(x)
    ax.set_xticklabels([m[len("dice_") :] for m in dice])
    ax.set_ylim(0, 1)
    ax.set_ylabel("Dice (mean ± std over folds)")
    ax.set_title(f"{experiment.name}" + (" (QUICK SMOKE RUN: not a result)" if quick else ""))
    if done:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no run complete yet", ha="center", va="center", transform=ax.transAxes)
    if curves:
        ax = axes[0][1]
        for run, (epochs, scores) in curves.items():
            ax.plot(epochs, scores, marker=".", label=run)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation score (mean region Dice)")
        ax.set_ylim(0, 1)
        ax.set_title("convergence (mean over folds)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def report_only(name: str, out) -> dict[str, Path]:
    """``--report``: tables and plot from the complete runs, without training anything.

    Args:
        name: the experiment the folder must hold.
        out: the experiment folder.

    Returns:
        {what: path} of the files written.

    Raises:
        InputError: the folder holds another experiment.
    """
    out = Path(out)
    path = out / "experiment.json"
    if path.is_file():
        recorded = json.loads(path.read_text(encoding="utf-8")).get("experiment")
        if recorded != name:
            raise InputError(
                f"{out}: holds experiment '{recorded}', not '{name}'; give that name or another --out"
            )
    return write_report(out)
