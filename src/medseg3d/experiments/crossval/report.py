"""A cross-validation's report from its small records: ``medseg3d crossval RUN --report``.

Everything here reads only ``RUN/fold<k>/pred-<variant>/metrics.csv`` (one row per held-out case, written by
``medseg3d evaluate``) and the JSON records beside them, so a report survives without weights or label maps.
The folder may be one ``medseg3d crossval`` made, or the records v2 was made from (``docs/runs/brats-v2-cv/
cv27-v1``, with its ``crossval.json`` naming the variants to report).

Per variant: the mean Dice and HD95 per fold, mean +- SD over folds, the pooled mean over every held-out case,
and the held-out cases from worst to best; then every variant paired case by case against the reference
(mean difference, cases better / worse, Wilcoxon signed-rank p) and side by side; a picture per comparison.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ...errors import InputError
from ...io import write_text_atomic
from .enhancing import VARIANTS, enhancing_rule_lines
from .pictures import cases_png, side_by_side_png
from .records import FINAL, read_crossval_record
from .scores import (
    BRATS_REGIONS,
    both_scored,
    by_case,
    collect,
    fold_means,
    mean,
    planned_folds,
    regions_of,
    sd,
)


def _f(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _volume_names(regions) -> tuple[str, ...]:
    return ("WT", "ET") if tuple(regions) == BRATS_REGIONS else tuple(regions)


def variant_lines(root: Path, variant: str) -> tuple[list[str], list[dict]]:
    """A variant's per-fold table, pooled row and held-out cases worst first.

    Args:
        root: the crossval run folder.
        variant: the weights scored.

    Returns:
        (Markdown lines, the pooled rows of every held-out case).

    Raises:
        InputError: no fold has scored ``variant``.
    """
    folds = collect(root, variant)
    if not folds:
        raise InputError(f"{root}: no fold*/pred-{variant}/metrics.csv; run `medseg3d crossval` first")
    regions = regions_of(folds)
    planned = planned_folds(root)
    done = (
        f"{len(folds)} of {planned} folds: incomplete"
        if planned and len(folds) < planned
        else f"{len(folds)} folds"
    )
    n = len(regions)
    lines = [
        f"### `{variant}` weights ({done})",
        "",
        "| fold | cases | "
        + " | ".join(regions)
        + f" | HD95 {regions[0]} (mm) | "
        + " | ".join(f"HD95 {r}" for r in regions[1:])
        + " |",
        "|---" * (2 + 2 * n) + "|",
    ]
    dice_by_fold, hd_by_fold = fold_means(folds, regions), fold_means(folds, regions, "hd95")
    per_fold = {r: [d[r] for d in dice_by_fold.values()] for r in regions}
    all_rows = []
    for fold, rows in sorted(folds.items()):
        dice, hd = dice_by_fold[fold], hd_by_fold[fold]
        lines.append(
            f"| {fold} | {len(rows)} | "
            + " | ".join(_f(dice[r]) for r in regions)
            + " | "
            + " | ".join(_f(hd[r], 1) for r in regions)
            + " |"
        )
        all_rows += [dict(row, fold=fold) for row in rows]
    lines.append(
        "| **mean +- SD over folds** | | "
        + " | ".join(f"**{_f(mean(per_fold[r]))}** +- {_f(sd(per_fold[r]))}" for r in regions)
        + " |"
        + " |" * n
    )
    pooled = {r: mean(float(row[f"dice_{r}"]) for row in all_rows) for r in regions}
    hd = {r: mean(float(row[f"hd95_{r}"]) for row in all_rows) for r in regions}
    lines.append(
        f"| pooled over {len(all_rows)} cases | | "
        + " | ".join(_f(pooled[r]) for r in regions)
        + " | "
        + " | ".join(_f(hd[r], 1) for r in regions)
        + " |"
    )
    volumes = _volume_names(regions)
    lines += [
        "",
        f"Held-out cases, worst {regions[0]} first:",
        "",
        "| case | fold | "
        + " | ".join(regions)
        + " | "
        + " | ".join(f"{v} volume (ml)" for v in volumes)
        + " |",
        "|---" * (2 + n + len(volumes)) + "|",
    ]
    for row in sorted(all_rows, key=lambda row: float(row[f"dice_{regions[0]}"])):
        lines.append(
            f"| {row['case']} | {row['fold']} | "
            + " | ".join(_f(float(row[f"dice_{r}"])) for r in regions)
            + " | "
            + " | ".join(f"{float(row[f'vol_ref_{v}']):.1f}" for v in volumes)
            + " |"
        )
    return lines + [""], all_rows


def lesion_lines(root: Path, variant: str) -> list[str]:
    """Pooled lesion-wise scores of ``variant`` (``medseg3d evaluate --lesion-wise`` columns), if it has them.

    Args:
        root: the crossval run folder.
        variant: the weights scored.

    Returns:
        Markdown lines (Dice, HD95 in mm, lesions found, missed and false), or [] without lesion columns.
    """
    rows = [row for rows in collect(root, variant).values() for row in rows]
    names = [k[len("lesion_dice_") :] for k in (rows[0] if rows else {}) if k.startswith("lesion_dice_")]
    if not names:
        return []
    lines = [
        f"Lesion-wise (each connected component of the reference a lesion; `{variant}`, {len(rows)} cases):",
        "",
        "| region | lesion Dice | lesion HD95 (mm) | lesions found | missed | false positives |",
        "|---|---|---|---|---|---|",
    ]

    def total(key, n):
        return int(sum(float(row[f"{key}_{n}"]) for row in rows if row.get(f"{key}_{n}") not in (None, "")))

    for n in names:
        lines.append(
            f"| {n} | {_f(mean(float(row[f'lesion_dice_{n}']) for row in rows))} | "
            f"{_f(mean(float(row[f'lesion_hd95_{n}']) for row in rows), 1)} | {total('lesion_tp', n)} | "
            f"{total('lesion_fn', n)} | {total('lesion_fp', n)} |"
        )
    return lines + [""]


# the group of cases whose reference has little enhancing tumour: the shared set's three low-grade cases have
# 1.6-4.7 ml, issue #40's hidden non-enhancing failures at most 0.3 ml
LITTLE_ENHANCING_ML = 5.0
NO_ENHANCING_ML = 0.1  # about 100 voxels of 1 mm^3: the BraTS 2023 rule's smallest lesion counted


def little_enhancing_lines(root: Path, variant: str) -> list[str]:
    """The held-out cases whose reference has under :data:`LITTLE_ENHANCING_ML` ml of enhancing tumour (BraTS
    regions only), as a group of their own: what the model calls enhancing there, and how it scores.

    Args:
        root: the crossval run folder.
        variant: the weights scored.

    Returns:
        Markdown lines: a table of those cases (reference and predicted ET in ml, Dice and lesion-wise ET),
        their mean, and a sentence saying how many have (almost) none; [] without ET volumes.
    """
    rows = [row for rows in collect(root, variant).values() for row in rows]
    if not rows or "vol_ref_ET" not in rows[0] or "vol_pred_ET" not in rows[0]:
        return []
    group = sorted(
        (r for r in rows if float(r["vol_ref_ET"]) < LITTLE_ENHANCING_ML),
        key=lambda r: float(r["vol_ref_ET"]),
    )
    none = [r for r in group if float(r["vol_ref_ET"]) < NO_ENHANCING_ML]
    head = (
        f"Cases with little enhancing tumour (reference ET under {LITTLE_ENHANCING_ML:g} ml; `{variant}`): "
        f"{len(group)} of {len(rows)}, {len(none)} with (almost) none (under {NO_ENHANCING_ML:g} ml)."
    )
    lines = [head, ""]
    if not none:
        lines += [
            (
                "No held-out case is without enhancing tumour, so this cross-validation cannot show how the "
                "model treats non-enhancing tumours (a tumour with none should get none)."
            ),
            "",
        ]
    if not group:
        return lines
    lw = "lesion_dice_ET" in rows[0]
    lines += [
        "| case | ET ml reference | ET ml predicted | Dice WT / TC / ET |"
        + (" lesion-wise ET |" if lw else ""),
        "|---|---|---|---|" + ("---|" if lw else ""),
    ]
    for r in group:
        dice = " / ".join(_f(float(r[f"dice_{n}"])) for n in BRATS_REGIONS)
        lines.append(
            f"| {r['case']} | {float(r['vol_ref_ET']):.2f} | {float(r['vol_pred_ET']):.2f} | {dice} |"
            + (f" {_f(float(r['lesion_dice_ET']))} |" if lw else "")
        )
    means = " / ".join(_f(mean(float(r[f"dice_{n}"]) for r in group)) for n in BRATS_REGIONS)
    lines.append(
        f"| mean ({len(group)}) | {mean(float(r['vol_ref_ET']) for r in group):.2f} | "
        f"{mean(float(r['vol_pred_ET']) for r in group):.2f} | {means} |"
        + (f" {_f(mean(float(r['lesion_dice_ET']) for r in group))} |" if lw else "")
    )
    return lines + [""]


def paired_lines(root: Path, variants: list[str], reference: str) -> list[str]:
    """Each variant against ``reference`` on the same held-out cases.

    Args:
        root: the crossval run folder.
        variants: the weights scored.
        reference: the variant the others are compared with.

    Returns:
        Markdown lines (mean Dice difference, cases better / worse, Wilcoxon p), or [] when there is
        nothing to pair.
    """
    from ..tables import paired_cells

    by_variant = {v: by_case(root, v) for v in variants}
    others = [v for v in variants if v != reference]
    if reference not in by_variant or not others:
        return []
    regions = regions_of(collect(root, reference))
    lines = [
        f"### Paired against `{reference}` (mean difference; cases better / worse; Wilcoxon p)",
        "",
        "| variant | cases | " + " | ".join(regions) + " |",
        "|---" * (2 + len(regions)) + "|",
    ]
    for v in others:
        n, cells = paired_cells(
            by_variant[reference], by_variant[v], [f"dice_{r}" for r in regions], na="n/a"
        )
        lines.append(f"| {v} | {n} | " + " | ".join(cells) + " |")
    return lines + [""]


def side_by_side_lines(root: Path, reference: str, variant: str) -> list[str]:
    """Every held-out case scored by both: their Dice side by side and the difference, worst ``variant``
    first, then the means and the cases each is worst on.

    Args:
        root: the crossval run folder.
        reference, variant: the two weights compared.

    Returns:
        Markdown lines; a one-line note when no case was scored by both.
    """
    ref, var, folds, cases = both_scored(root, reference, variant)
    if not cases:
        return [f"(no case scored by both `{reference}` and `{variant}`)", ""]
    regions = regions_of(collect(root, variant))
    cases.sort(key=lambda c: var[c][f"dice_{regions[0]}"])
    slash = " / ".join(regions)

    def cells(scores):
        return " / ".join(_f(scores[f"dice_{r}"]) for r in regions)

    lines = [
        (
            f"### `{reference}` and `{variant}` side by side ({len(cases)} held-out cases, worst `{variant}` "
            f"{regions[0]} first; Dice {slash})"
        ),
        "",
        f"| case | fold | `{reference}` | `{variant}` | difference |",
        "|---|---|---|---|---|",
    ]
    for c in cases:
        diff = " / ".join(f"{var[c][f'dice_{r}'] - ref[c][f'dice_{r}']:+.3f}" for r in regions)
        lines.append(f"| {c} | {folds.get(c, '')} | {cells(ref[c])} | {cells(var[c])} | {diff} |")
    means = {
        name: {f"dice_{r}": mean(scores[c][f"dice_{r}"] for c in cases) for r in regions}
        for name, scores in ((reference, ref), (variant, var))
    }
    diff = " / ".join(f"{means[variant][f'dice_{r}'] - means[reference][f'dice_{r}']:+.3f}" for r in regions)
    lines.append(f"| **mean** | | **{cells(means[reference])}** | **{cells(means[variant])}** | {diff} |")
    for r in regions:
        lowest = {
            name: min(cases, key=lambda c: scores[c][f"dice_{r}"])
            for name, scores in ((reference, ref), (variant, var))
        }
        lines.append(
            f"| lowest {r} | | {lowest[reference]} {_f(ref[lowest[reference]][f'dice_{r}'])} | "
            f"{lowest[variant]} {_f(var[lowest[variant]][f'dice_{r}'])} | |"
        )
    return lines + [""]


def splice_lines(root: Path, reference: str, variant: str, names: tuple[str, str]) -> list[str]:
    """A block for a document: the folds done, the side-by-side table, the per-fold means of both and their
    paired
    differences.

    Args:
        root: the crossval run folder.
        reference, variant: the two weights compared.
        names: what the table's columns call them.

    Returns:
        Markdown lines.

    Raises:
        InputError: no case was scored by both.
    """
    from ..tables import paired_cells

    table = side_by_side_lines(root, reference, variant)
    if len(table) < 3:
        raise InputError(f"{root}: no case scored by both `{reference}` and `{variant}`")
    regions = regions_of(collect(root, variant))
    slash = " / ".join(regions)
    table = table[2:-1]
    table[0] = f"| case | fold | {names[0]} {slash} | {names[1]} {slash} | difference |"
    means = {name: fold_means(collect(root, v), regions) for name, v in zip(names, (reference, variant))}
    folds = sorted(set(means[names[0]]) & set(means[names[1]]))
    planned = planned_folds(root)
    n, cells = paired_cells(
        by_case(root, reference), by_case(root, variant), [f"dice_{r}" for r in regions], na="n/a"
    )
    done = ", ".join(map(str, folds[:-1])) + (" and " if len(folds) > 1 else "") + str(folds[-1])
    head = (f"Folds {done}" if len(folds) > 1 else f"Fold {done}") + (f" of {planned}" if planned else "")
    per_fold = "; ".join(
        f"fold {k} "
        + ", ".join(f"{name} " + " / ".join(_f(means[name][k][r]) for r in regions) for name in names)
        for k in folds
    )
    intro = (
        f"{head}: {n} held-out cases, each scored by models that never saw it (written by "
        "`medseg3d crossval --report`)."
    )
    return [
        intro,
        "",
        *table,
        "",
        f"Per fold ({slash}): {per_fold}. Paired over the {n} cases ({names[1]} minus {names[0]}; cases "
        f"better / worse; Wilcoxon p): " + ", ".join(f"{r} {c}" for r, c in zip(regions, cells)) + ".",
    ]


def splice(target: str, lines: list[str]) -> Path:
    """Replace the block between ``<!-- NAME -->`` and ``<!-- /NAME -->`` of a Markdown file, atomically.

    Args:
        target: ``FILE:NAME``.
        lines: the block's new lines.

    Returns:
        The file.

    Raises:
        InputError: ``target`` is not FILE:NAME of an existing file, or the file lacks exactly one pair of
            markers in that order.
    """
    path_text, sep, name = target.rpartition(":")
    path = Path(path_text)
    if not sep or not name or not path.is_file():
        raise InputError(f"--splice {target}: give FILE:NAME, an existing Markdown file and a block name")
    text = path.read_text(encoding="utf-8")
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise InputError(f"{path} needs exactly one '{start}' line and one '{end}' line after it")
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    return write_text_atomic(before + start + "\n" + "\n".join(lines) + "\n" + end + after, path)


def variants_found(root: Path) -> list[str]:
    """The variants scored in some fold of the run (``fold*/pred-<variant>/metrics.csv``), sorted."""
    return sorted({m.parent.name[len("pred-") :] for m in Path(root).glob("fold*/pred-*/metrics.csv")})


def report_text(root: Path, variants: list[str], reference: str, side_by_side: bool = True) -> str:
    """The tables of the report: each variant, then each against ``reference``, paired and side by side.

    Args:
        root: the crossval run folder.
        variants: the weights to report.
        reference: the variant the others are compared with.
        side_by_side: also the per-case side-by-side tables.

    Returns:
        Markdown text.

    Raises:
        InputError: a variant was scored in no fold.
    """
    lines = []
    for variant in variants:
        lines += variant_lines(root, variant)[0]
    lines += paired_lines(root, variants, reference)
    if side_by_side:
        for variant in [v for v in variants if v != reference]:
            lines += side_by_side_lines(root, reference, variant)
    return "\n".join(lines)


def _run_sections(root: Path, record: dict) -> list[str]:
    """What a ``medseg3d crossval`` run adds to the tables: settings, time, post-processing, calibration."""
    lines = [
        f"# Cross-validation of {', '.join(record['members'])} on `{record['dataset']}`",
        "",
        f"{record['folds']} folds (`split.json`), started {record.get('created', '?')}. Command: `medseg3d "
        f"crossval {record['dataset']} --preset {record['members'][0]}"
        + "".join(f" --members {m}" for m in record["members"][1:])
        + f" --folds {record['folds']}"
        + (f" --epochs {record['epochs']}" if record.get("epochs") else "")
        + f" --out {root}`.",
        "",
    ]
    plan = root / "plan.json"
    if plan.is_file():
        lines += ["Planned settings (`medseg3d plan`):", ""]
        lines += [f"- {r}" for r in json.loads(plan.read_text(encoding="utf-8"))["reasons"]] + [""]
    timing = root / "timing.json"
    if timing.is_file():
        seconds = json.loads(timing.read_text(encoding="utf-8"))
        lines += [
            (
                f"Training wall time: {sum(seconds.values()) / 3600:.2f} h over {len(seconds)} trainings "
                "(summed over invocations; `timing.json`)."
            ),
            "",
        ]
    pp = root / "postprocess.json"
    if pp.is_file():
        p = json.loads(pp.read_text(encoding="utf-8"))
        lines += [
            "## Mirroring and post-processing (nested cross-validation)",
            "",
            "Far-component removal, distance chosen per fold on the other folds' cases (mm, 0 off): "
            + ", ".join(f"fold {k} {v:g}" for k, v in p["per_fold"].items())
            + f". Mean Dice ({', '.join(p['judged_on'])}) over {p['cases']} cases: none "
            f"{p['none_mean_dice']:.4f}, nested {p['nested_mean_dice']:.4f}; {len(p['cases_changed'])} "
            "case(s) changed. By distance on all cases: "
            + ", ".join(f"{d} mm {v:.4f}" for d, v in p["mean_dice_by_distance"].items())
            + f". The final model takes {p['chosen_mm']:g} mm.",
            "",
        ]
        if "per_fold_mirror" in p:
            mirrored = p.get("mean_dice_by_distance_mirrored") or {}
            lines += [
                "Test-time mirroring (the mean of the 8 mirrored passes), chosen with the distance: "
                + ", ".join(f"fold {k} {'on' if v else 'off'}" for k, v in p["per_fold_mirror"].items())
                + (
                    ". Mirrored, by distance on all cases: "
                    + ", ".join(f"{d} mm {v:.4f}" for d, v in mirrored.items())
                    if mirrored
                    else " (no mirrored predictions to choose from)"
                )
                + f". The final model runs {'mirrored' if p['chosen_mirror'] else 'in one pass'}.",
                "",
            ]
        if len(p.get("candidates_lesion_mm3") or []) > 1:

            def rule(r: dict) -> str:
                return " / ".join(f"{k} {v:g}" for k, v in r.items()) or "off"

            lines += [
                "Lesion-size rule (components smaller than the threshold, mm^3, become the next outer "
                f"region), chosen with the rest, all judged by the {p['judged_by']}: "
                + ", ".join(f"fold {k} {rule(v)}" for k, v in p["per_fold_lesion_mm3"].items())
                + ". Each rule alone (one pass, no far removal), on all cases: "
                + ", ".join(
                    f"{rule(r)} {v:.4f}"
                    for r, v in zip(p["candidates_lesion_mm3"], p["mean_score_by_lesion_rule"])
                )
                + f". The final model takes {rule(p['chosen_lesion_mm3'])}.",
                "",
            ]
        lines += enhancing_rule_lines(p)
    cal = root / "calibration.json"
    if cal.is_file():
        from ...calibrate import summary_lines

        lines += ["## Calibration (temperature scaling on the held-out cases)", ""]
        lines += [f"- {line}" for line in summary_lines(json.loads(cal.read_text(encoding="utf-8")))] + [""]
    return lines


def write_crossval_report(
    root,
    variants: list[str] | None = None,
    reference: str | None = None,
    names: tuple[str, str] | None = None,
    splice_into: str | None = None,
) -> Path:
    """Write ``ROOT/report.md`` (and ``ROOT/images/*.png``) from the records; returns the report's path.

    Args:
        root: a ``medseg3d crossval`` folder, or kept records with ``fold<k>/pred-<variant>/metrics.csv``.
        variants: the variants to report, first the one the report is about (default: ``crossval.json``'s
            ``report.variants``, else ``final-pp`` and ``final``, else every variant found).
        reference: the variant the others are paired against (default: the last variant).
        names: what a spliced block calls the reference and the first variant.
        splice_into: ``FILE:NAME``: also write the first variant against the reference into that block.

    Raises:
        InputError: nothing scored, or a variant that is not.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such cross-validation folder")
    record = read_crossval_record(root) or {}
    wanted = record.get("report") or {}
    found = variants_found(root)
    if not found:
        raise InputError(
            f"{root}: nothing scored (no fold*/pred-*/metrics.csv); run `medseg3d crossval` first"
        )
    variants = (
        variants or wanted.get("variants") or [v for v in (f"{FINAL}-pp", FINAL) if v in found] or found
    )
    missing = [v for v in variants if v not in found]
    if missing:
        raise InputError(f"{root}: variant(s) {', '.join(missing)} not scored; scored: {', '.join(found)}")
    reference = reference or wanted.get("reference") or variants[-1]
    if reference not in variants:
        variants = [*variants, reference]
    lines = _run_sections(root, record) if "members" in record else []
    lines.append(report_text(root, variants, reference))
    lines += lesion_lines(root, variants[0])
    lines += little_enhancing_lines(root, variants[0])
    if f"{VARIANTS}-pp" in found:
        lines += [
            "### Held-out synthetic non-enhancing variants (each segmented by a fold that never saw it)",
            "",
        ]
        lines += lesion_lines(root, f"{VARIANTS}-pp") + little_enhancing_lines(root, f"{VARIANTS}-pp")
    images = root / "images"
    images.mkdir(exist_ok=True)
    lines += ["![every held-out case](images/cases.png)", ""]
    cases_png(root, variants[0], images / "cases.png")
    if len(variants) > 1:
        side_by_side_png(root, reference, variants[0], images / "side_by_side.png")
        lines += [f"![`{variants[0]}` against `{reference}`, case by case](images/side_by_side.png)", ""]
    names = names or tuple(wanted.get("names") or (f"`{reference}`", f"`{variants[0]}`"))
    if splice_into:
        splice(splice_into, splice_lines(root, reference, variants[0], names))
    return write_text_atomic("\n".join(lines).rstrip("\n") + "\n", root / "report.md")
