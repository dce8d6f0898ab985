"""Issue #40's post-processing levers measured without training: what they cost on v2's held-out label maps
and what they gain where a non-enhancing tumour can be seen.

1. The "no enhancing tumour" rule (:func:`medseg3d.postprocess.relabel_small_enhancing`): enhancing tumour
   becomes necrosis when the case has fewer than N enhancing voxels in all (``total``) or in its largest
   component (``largest``). On v2's kept held-out label maps (``docs/runs/brats-v2-cv/cv27-v1/fold1-4``, 21
   cases, all with enhancing tumour in the reference) it can only cost; the threshold is chosen by nested
   cross-validation across those folds: for each fold, the largest threshold that costs nothing (mean score
   within ``TOLERANCE`` of the best) on the other three folds' cases, scored on the fold's own.
3. Lesion-level clean-up (:func:`medseg3d.postprocess.demote_small_region_components` and the far-component
   removal): a grid of per-region component thresholds, chosen per fold on the other folds (best mean of
   whole-case and lesion-wise Dice of WT, TC and ET together; ties to the gentler setting), scored on the
   fold.

With ``--extra NAME=PRED:REF ...`` (label maps of the bundled model on other cases: the 3 low-grade cases, the
synthetic non-enhancing variants of ``medseg3d synth-nonenhancing``, the shared out-of-sample case) it scores
rule 1 on them for every threshold. All scores on cases cropped to the tumours' box (plus margin), which
changes no Dice; lesion-wise scores by :mod:`medseg3d.lesionwise` (BraTS 2023 GLI rules).

    nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=src python validation/levers_v3.py \\
        docs/runs/brats-v2-cv/cv27-v1 --variant ens-cv27-strong-sw --data ../shared/data/brats2018 \\
        --extra lgg=PRED_DIR:../shared/data/brats2018 --out docs/runs/brats-v3-levers
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from medseg3d.datasets.synthetic import robust_z
from medseg3d.experiments.crossval.scoring import nested_choice
from medseg3d.io import read_volume
from medseg3d.labels import BRATS, value_masks
from medseg3d.lesionwise import lesion_wise_region
from medseg3d.metrics import dice
from medseg3d.postprocess import (
    demote_small_region_components,
    relabel_small_enhancing,
    remove_far_components,
)

REGIONS = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}
COLUMNS = ("WT", "TC", "ET", "lw WT", "lw TC", "lw ET")
ENHANCING_VOXELS = (0, 50, 100, 250, 500, 1000, 1250, 1500, 1750, 2000, 4000)
FAR_MM = (0.0, 20.0)
WT_VOXELS, TC_VOXELS, ET_VOXELS = (0, 100, 500, 1000), (0, 50, 200), (0, 25, 100)
TOLERANCE = 1e-4
MARGIN = 12  # voxels around the tumours' box: more than the lesion-wise dilation's reach (2 x 3 + 1)


def crop_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both maps cut to the box of either's tumour plus :data:`MARGIN` (no Dice changes: outside, both are
    0)."""
    either = (pred > 0) | (ref > 0)
    if not either.any():
        return pred[:1, :1, :1], ref[:1, :1, :1]
    idx = np.nonzero(either)
    box = tuple(slice(max(int(i.min()) - MARGIN, 0), int(i.max()) + MARGIN + 1) for i in idx)
    return pred[box], ref[box]


_MEMO: dict = {}  # (case, region, predicted mask) -> (Dice, lesion-wise Dice): most settings change few masks


def score(pred: np.ndarray, ref: np.ndarray, spacing, case_id: str) -> np.ndarray:
    """Whole-case Dice of WT, TC, ET and their lesion-wise Dice (:data:`COLUMNS`; lesion-wise without
    HD95)."""
    p, r = value_masks(pred, REGIONS), value_masks(ref, REGIONS)
    out = []
    for name in REGIONS:
        key = (case_id, name, hashlib.blake2b(np.packbits(p[name]).tobytes(), digest_size=16).digest())
        if key not in _MEMO:
            _MEMO[key] = (
                dice(p[name], r[name]),
                lesion_wise_region(p[name], r[name], spacing, distances=False)["dice"],
            )
        out.append(_MEMO[key])
    return np.array([d for d, _ in out] + [lw for _, lw in out])


def load_heldout(root: Path, variant: str, data: Path) -> list[dict]:
    """v2's kept held-out label maps of every ``root/fold<k>/pred-<variant>`` with their references."""
    cases = []
    for fold in sorted(p for p in root.glob("fold*") if p.name[4:].isdigit()):
        for path in sorted((fold / f"pred-{variant}").glob("*.nii.gz")):
            case_id = path.name[: -len(".nii.gz")]
            ref_path = data / case_id / f"{case_id}_seg.nii.gz"
            if not ref_path.is_file():
                sys.exit(
                    f"error: {ref_path}: no reference for {case_id}; give the dataset the CV was made from"
                )
            volume = read_volume(path)
            pred, ref = crop_pair(np.asarray(volume.array), np.asarray(read_volume(ref_path).array))
            cases.append(
                {
                    "case": case_id,
                    "fold": int(fold.name[4:]),
                    "pred": pred,
                    "ref": ref,
                    "spacing": volume.spacing,
                }
            )
    if not cases:
        sys.exit(f"error: {root} holds no fold*/pred-{variant}/*.nii.gz")
    return cases


def enhancing_settings() -> list[tuple[str, int]]:
    return [("total", 0)] + [(by, n) for by in ("total", "largest") for n in ENHANCING_VOXELS[1:]]


def enhancing_table(cases: list[dict], far_mm: float) -> dict[str, np.ndarray]:
    """case -> (settings, columns) scores of rule 1 applied after the far-component removal (v2 as
    bundled)."""
    table = {}
    for c in cases:
        base = remove_far_components(c["pred"], c["spacing"], far_mm)
        table[c["case"]] = np.stack(
            [
                score(relabel_small_enhancing(base, BRATS, n, by=by), c["ref"], c["spacing"], c["case"])
                for by, n in enhancing_settings()
            ]
        )
    return table


def safe_choice(table: dict[str, np.ndarray], fold_of: dict[str, int], settings: list) -> dict[int, int]:
    """Per fold, the row with the largest threshold whose mean score (all columns) over the *other* folds'
    cases is within :data:`TOLERANCE` of the best: the rule's gain is on cases these folds do not have, so
    the most it can be set to without a measured cost."""
    chosen = {}
    for k in sorted(set(fold_of.values())):
        others = [c for c in table if fold_of[c] != k]
        means = np.mean([table[c].mean(axis=1) for c in others], axis=0)
        ok = [
            i
            for i in range(len(settings))
            if means[i] >= means.max() - TOLERANCE and settings[i][0] == "total"
        ]
        chosen[k] = max(ok, key=lambda i: settings[i][1])
    return chosen


def lesion_settings() -> list[tuple[float, int, int, int]]:
    return list(itertools.product(FAR_MM, WT_VOXELS, TC_VOXELS, ET_VOXELS))


def lesion_table(cases: list[dict]) -> dict[str, np.ndarray]:
    table = {}
    for c in cases:
        rows = []
        for far, wt, tc, et in lesion_settings():
            labels = remove_far_components(c["pred"], c["spacing"], far)
            labels = demote_small_region_components(labels, BRATS, {"WT": wt, "TC": tc, "ET": et})
            rows.append(score(labels, c["ref"], c["spacing"], c["case"]))
        table[c["case"]] = np.stack(rows)
    return table


def fmt(values) -> str:
    return " | ".join(f"{v:.3f}" for v in values)


def header(first: list[str], groups: list[str]) -> list[str]:
    """A Markdown table head: the ``first`` columns, then :data:`COLUMNS` once per group (named in the
    first)."""
    cells = list(first)
    for group in groups:
        cells += [f"{group}: {COLUMNS[0]}", *COLUMNS[1:]]
    return ["| " + " | ".join(cells) + " |", "|" + "---|" * len(cells)]


def report_enhancing(cases, table, fold_of) -> tuple[list[str], dict]:
    settings = enhancing_settings()
    lines = [
        "## Lever 1: the no-enhancing-tumour rule on v2's held-out maps (cost only)",
        "",
        (
            f"{len(cases)} held-out cases (folds {', '.join(map(str, sorted(set(fold_of.values()))))}), "
            "v2 as bundled (far components > 20 mm removed first), then enhancing tumour -> necrosis below N "
            "enhancing voxels in all (total) or in the largest component (largest)."
        ),
        "",
        "| rule | N voxels | " + " | ".join(COLUMNS) + " | cases changed |",
        "|---|---|" + "---|" * (len(COLUMNS) + 1),
    ]
    for i, (by, n) in enumerate(settings):
        changed = [c for c in table if not np.allclose(table[c][i], table[c][0])]
        lines.append(
            f"| {by} | {n} | {fmt(np.mean([table[c][i] for c in table], axis=0))} | "
            f"{', '.join(changed) or '-'} |"
        )
    chosen = safe_choice(table, fold_of, settings)
    lines += [
        "",
        "Nested choice (largest total threshold costing nothing on the other folds), scored on each fold:",
        "",
        *header(["fold", "chosen N"], ["off", "with the rule"]),
    ]
    nested = {}
    for k, row in chosen.items():
        own = [c for c in table if fold_of[c] == k]
        for c in own:
            nested[c] = table[c][row]
        lines.append(
            f"| {k} | {settings[row][1]} | {fmt(np.mean([table[c][0] for c in own], axis=0))} | "
            f"{fmt(np.mean([table[c][row] for c in own], axis=0))} |"
        )
    lines.append(
        f"| all | | {fmt(np.mean([table[c][0] for c in table], axis=0))} | "
        f"{fmt(np.mean(list(nested.values()), axis=0))} |"
    )
    return lines, {"per_fold_voxels": {str(k): settings[r][1] for k, r in chosen.items()}}


def report_lesion(cases, table, fold_of) -> tuple[list[str], dict]:
    settings = lesion_settings()
    per_fold, overall = nested_choice(table, fold_of)
    bundled = settings.index((20.0, 0, 0, 0))
    lines = [
        "## Lever 3: per-region component thresholds and the far-component rule, nested CV",
        "",
        (
            f"Grid: far {FAR_MM} mm x WT {WT_VOXELS} x TC {TC_VOXELS} x ET {ET_VOXELS} voxels "
            f"({len(settings)} settings); each fold's setting chosen on the other folds (best mean of the "
            "six columns, ties to the gentler), scored on the fold."
        ),
        "",
        *header(
            ["fold", "chosen far mm / WT / TC / ET"], ["none", "v2 as bundled (far 20)", "nested choice"]
        ),
    ]
    rows = {"none": [], "bundled": [], "nested": []}
    for k, row in per_fold.items():
        own = [c for c in table if fold_of[c] == k]
        far, wt, tc, et = settings[row]
        means = [np.mean([table[c][r] for c in own], axis=0) for r in (0, bundled, row)]
        for key, r in zip(rows, (0, bundled, row)):
            rows[key] += [table[c][r] for c in own]
        lines.append(f"| {k} | {far:g} / {wt} / {tc} / {et} | " + " | ".join(fmt(m) for m in means) + " |")
    lines.append("| all | | " + " | ".join(fmt(np.mean(rows[key], axis=0)) for key in rows) + " |")
    # the card already removes far components (20 mm): the region thresholds chosen with that kept
    keep = [i for i, st in enumerate(settings) if st[0] == 20.0]
    sub_fold, sub_all = nested_choice({c: t[keep] for c, t in table.items()}, fold_of)
    fixed = {c: table[c][keep[sub_fold[fold_of[c]]]] for c in table}
    lines += [
        "",
        "With the far-component removal kept at the card's 20 mm, the region thresholds chosen per fold: "
        + ", ".join(
            f"fold {k} {'/'.join(str(v) for v in settings[keep[r]][1:])}" for k, r in sub_fold.items()
        )
        + f"; held out: {fmt(np.mean(list(fixed.values()), axis=0))} (chosen on all: "
        f"{'/'.join(str(v) for v in settings[keep[sub_all]][1:])}).",
    ]
    rows["nested, far 20 kept"] = list(fixed.values())
    far, wt, tc, et = settings[overall]
    lines += [
        "",
        (
            f"Chosen on all {len(table)} cases (what a card would carry): far {far:g} mm, WT {wt}, TC {tc}, "
            f"ET {et} voxels."
        ),
        "",
        "Per case (none -> nested choice), where anything changed:",
        "",
        *header(["case", "fold"], ["none", "nested"]),
    ]
    for c in sorted(table):
        row = per_fold[fold_of[c]]
        if not np.allclose(table[c][row], table[c][0]):
            lines.append(f"| {c} | {fold_of[c]} | {fmt(table[c][0])} | {fmt(table[c][row])} |")
    top = sorted(range(len(settings)), key=lambda i: -np.mean([table[c][i].mean() for c in table]))[:8]
    lines += [
        "",
        "Best settings on all cases (mean of the six columns; in-sample for the choice, for orientation):",
        "",
        "| far mm / WT / TC / ET | " + " | ".join(COLUMNS) + " | mean |",
        "|" + "---|" * (len(COLUMNS) + 2),
    ]
    for i in [0, bundled] + [i for i in top if i not in (0, bundled)]:
        m = np.mean([table[c][i] for c in table], axis=0)
        far, wt, tc, et = settings[i]
        lines.append(f"| {far:g} / {wt} / {tc} / {et} | {fmt(m)} | {m.mean():.4f} |")
    record = {
        "per_fold": {
            str(k): dict(zip(("far_mm", "WT", "TC", "ET"), settings[r])) for k, r in per_fold.items()
        },
        "chosen_on_all": dict(zip(("far_mm", "WT", "TC", "ET"), settings[overall])),
        "means": {key: [round(float(v), 4) for v in np.mean(rows[key], axis=0)] for key in rows},
    }
    return lines, record


def report_extra(groups: dict[str, list[dict]]) -> list[str]:
    lines = [
        "## Lever 1 where it can be seen: the bundled v2 on other cases",
        "",
        (
            "Label maps of `medseg3d predict brats` (v2 as bundled, far components removed). The 3 low-grade "
            "cases and the synthetic variants' parents are among v2's 27 training cases: **in-sample**."
        ),
        "",
        "| group | case | ET ml ref | ET ml pred | largest ET comp. voxels | "
        + " | ".join(f"ET / lw ET / TC at N={n}" for n in (0, 500, 1000, 2000, 4000))
        + " |",
        "|---|---|---|---|---|" + "---|" * 5,
    ]
    for name, cases in groups.items():
        means = {n: [] for n in (0, 500, 1000, 2000, 4000)}
        for c in cases:
            et_pred = int((c["pred"] == 4).sum())
            from scipy import ndimage

            comp, _ = ndimage.label(c["pred"] == 4, structure=np.ones((3, 3, 3), bool))
            largest = int(np.bincount(comp.ravel())[1:].max()) if et_pred else 0
            voxel_ml = float(np.prod(c["spacing"])) / 1000
            cells = []
            for n, rows in means.items():
                s = score(
                    relabel_small_enhancing(c["pred"], BRATS, n),
                    c["ref"],
                    c["spacing"],
                    f"{name}/{c['case']}",
                )
                rows.append(s)
                cells.append(f"{s[2]:.3f} / {s[5]:.3f} / {s[1]:.3f}")
            lines.append(
                f"| {name} | {c['case']} | {(c['ref'] == 4).sum() * voxel_ml:.2f} | {et_pred * voxel_ml:.2f} "
                f"| {largest} | " + " | ".join(cells) + " |"
            )
        lines.append(
            f"| {name} | mean of {len(cases)} | | | | "
            + " | ".join(
                f"{m[2]:.3f} / {m[5]:.3f} / {m[1]:.3f}" for m in (np.mean(v, axis=0) for v in means.values())
            )
            + " |"
        )
    return lines


def report_contrast(data: Path, synth: Path, low_grade: list[str]) -> list[str]:
    """Lever 2's check: does the variants' former enhancing region look like the real low-grade cores on
    T1ce?"""
    lines = [
        "## Lever 2: T1ce of the synthetic non-enhancing core against the real low-grade cores",
        "",
        (
            "Median T1ce of a region, in interquartile ranges of the case's normal brain from its median "
            "(`medseg3d.datasets.synthetic.robust_z`)."
        ),
        "",
        "| case | kind | region | robust z |",
        "|---|---|---|---|",
    ]

    def load(folder: Path, case_id: str):
        t1ce = np.asarray(read_volume(folder / case_id / f"{case_id}_t1ce.nii.gz").array)
        return t1ce, np.asarray(read_volume(folder / case_id / f"{case_id}_seg.nii.gz").array)

    for case_id in low_grade:
        t1ce, seg = load(data, case_id)
        lines.append(
            f"| {case_id} | real low-grade | core (1 + 4) | {robust_z(t1ce, np.isin(seg, (1, 4)), seg):.2f} |"
        )
    for folder in sorted(p for p in synth.iterdir() if p.name.endswith("_nonenh")):
        parent = folder.name[: -len("_nonenh")]
        t1ce, seg = load(data, parent)
        new_t1ce, _ = load(synth, folder.name)
        enhancing = seg == 4
        lines.append(f"| {parent} | original | enhancing (4) | {robust_z(t1ce, enhancing, seg):.2f} |")
        lines.append(f"| {parent} | original | necrosis (1) | {robust_z(t1ce, seg == 1, seg):.2f} |")
        lines.append(
            f"| {folder.name} | synthetic | former enhancing | {robust_z(new_t1ce, enhancing, seg):.2f} |"
        )
        lines.append(
            f"| {folder.name} | synthetic | core (1 + 4) | "
            f"{robust_z(new_t1ce, np.isin(seg, (1, 4)), seg):.2f} |"
        )
    return lines


def picture(case_dir: Path, variant_dir: Path, pred_case: Path, pred_variant: Path, out: Path) -> Path:
    """One axial slice (the one with most enhancing tumour): T1ce and the bundled model's labels, on the case
    and on its synthetic non-enhancing variant, with the reference labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    def read(path):
        return np.asarray(read_volume(path).array)

    cid, vid = case_dir.name, variant_dir.name
    t1ce, variant = read(case_dir / f"{cid}_t1ce.nii.gz"), read(variant_dir / f"{vid}_t1ce.nii.gz")
    ref, ref_v = read(case_dir / f"{cid}_seg.nii.gz"), read(variant_dir / f"{vid}_seg.nii.gz")
    z = int(np.argmax((ref == 4).sum(axis=(0, 1))))
    top = float(np.percentile(t1ce[t1ce > 0], 99.5))
    colours = ListedColormap(
        ["none", "tab:red", "tab:green", "none", "gold"]
    )  # 1 necrosis, 2 oedema, 4 enhancing
    panels = [
        ("T1ce", t1ce, None),
        ("reference", t1ce, ref),
        ("v2 (in-sample)", t1ce, read(pred_case)),
        ("T1ce, variant", variant, None),
        ("reference, variant", variant, ref_v),
        ("v2 on the variant", variant, read(pred_variant)),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(10.5, 7.4))
    for ax, (title, image, labels) in zip(axes.ravel(), panels):
        ax.imshow(np.rot90(image[:, :, z]), cmap="gray", vmin=0, vmax=top)
        if labels is not None:
            ax.imshow(
                np.rot90(np.ma.masked_equal(labels[:, :, z], 0)),
                cmap=colours,
                vmin=0,
                vmax=4,
                alpha=0.55,
                interpolation="nearest",
            )
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.suptitle(
        f"{cid}, slice {z}: red necrosis / non-enhancing core, green oedema, yellow enhancing", fontsize=10
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96), h_pad=1.5)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=72)
    return out


def load_extra(spec: str) -> tuple[str, list[dict]]:
    """``NAME=PRED_DIR:REF`` -> (NAME, cases): each ``PRED_DIR/<case>.nii.gz`` against
    ``REF/<case>/<case>_seg.nii.gz`` (a dataset folder) or, when REF is a file, that one reference."""
    name, _, paths = spec.partition("=")
    pred_dir, _, ref = paths.partition(":")
    cases = []
    for path in sorted(Path(pred_dir).glob("*.nii.gz")):
        case_id = path.name[: -len(".nii.gz")]
        ref_path = Path(ref) if Path(ref).is_file() else Path(ref) / case_id / f"{case_id}_seg.nii.gz"
        if not ref_path.is_file():
            continue
        volume = read_volume(path)
        pred, truth = crop_pair(np.asarray(volume.array), np.asarray(read_volume(ref_path).array))
        cases.append({"case": case_id, "pred": pred, "ref": truth, "spacing": volume.spacing})
    if not cases:
        sys.exit(f"error: --extra {spec}: no prediction with a reference")
    return name, cases


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="a cross-validation's records (fold*/pred-VARIANT/*.nii.gz)")
    ap.add_argument("--variant", default="ens-cv27-strong-sw")
    ap.add_argument("--data", type=Path, required=True, help="the dataset the cross-validation was made from")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=PRED_DIR:REF")
    ap.add_argument("--out", type=Path, help="write levers.md and levers.json here (else print)")
    ap.add_argument(
        "--picture",
        nargs=5,
        metavar=("CASE_DIR", "VARIANT_DIR", "PRED", "PRED_VARIANT", "PNG"),
        help="only draw a case, its variant and the bundled model's labels on both",
    )
    ap.add_argument(
        "--contrast",
        type=Path,
        metavar="SYNTH_DIR",
        help="only compare the T1ce of the variants in SYNTH_DIR with the low-grade cores of --data",
    )
    args = ap.parse_args(argv)
    if args.picture:
        print(picture(*[Path(p) for p in args.picture]))
        return 0
    if args.contrast:
        from medseg3d.train.config import LOW_GRADE_2018

        print("\n".join(report_contrast(args.data, args.contrast, list(LOW_GRADE_2018))))
        return 0
    cases = load_heldout(args.root, args.variant, args.data)
    fold_of = {c["case"]: c["fold"] for c in cases}
    lines = ["# Issue #40 levers without training (`validation/levers_v3.py`)", ""]
    enh_lines, enh_record = report_enhancing(cases, enhancing_table(cases, 20.0), fold_of)
    les_lines, les_record = report_lesion(cases, lesion_table(cases), fold_of)
    lines += enh_lines + [""] + les_lines
    if args.extra:
        lines += [""] + report_extra(dict(load_extra(spec) for spec in args.extra))
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "levers.md").write_text(text, encoding="utf-8")
        (args.out / "levers.json").write_text(
            json.dumps({"enhancing": enh_record, "lesion": les_record}, indent=1), encoding="utf-8"
        )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
