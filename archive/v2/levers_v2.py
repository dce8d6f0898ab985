"""Which lever of issue #22 did what, fold by fold: each choice against the v1 preset in windows, case by
case.

Reads the kept cross-validation records (``docs/runs/brats-v2-cv/cv27-v1`` and ``cv27-strong``, or the run
folders) and prints one Markdown table: a row per lever, per fold the mean Dice difference WT / TC / ET on
that fold's held-out cases, and over all folds that scored it the paired cell (mean difference, cases better /
worse, Wilcoxon p). Every lever is paired with the v1 preset's last weights in 64^3 windows (``last-sw``: v1's
inference) on the same cases:

- one whole-volume pass instead of windows (``last``), mirroring (``last-tta``, one pass with 8 flips), the
  best validation epoch (``best``, optimistic: the held-out cases chose it), all of the v1 preset;
- strong augmentation alone (``cv27-strong``'s ``last-sw``);
- the two presets' fold models as one ensemble, one pass each (``ens-cv27-strong``) and in windows
  (``ens-cv27-strong-sw``: exactly v2 as bundled).

    python scripts/levers_v2.py [docs/runs/brats-v2-cv] [--splice docs/results.md:levers]

``--splice FILE:NAME`` writes the table into FILE between ``<!-- NAME -->`` and ``<!-- /NAME -->``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crossval_report import REGIONS, collect, scores_by_case, splice

from medseg3d.experiments import paired_cells

REFERENCE = ("cv27-v1", "last-sw")
LEVERS = (
    ("one whole-volume pass instead of windows", "cv27-v1", "last"),
    ("mirroring (`--tta`, one pass, 8 flips)", "cv27-v1", "last-tta"),
    ("best validation epoch (optimistic)", "cv27-v1", "best"),
    ("3. strong augmentation alone (`--augment strong`, windows)", "cv27-strong", "last-sw"),
    ("4. the two presets as one ensemble, one pass each", "cv27-v1", "ens-cv27-strong"),
    ("**v2: the two presets as one ensemble in windows**", "cv27-v1", "ens-cv27-strong-sw"),
)


def lever_lines(root: Path) -> list[str]:
    """The table: a row per lever scored anywhere, a column per fold with a reference score, then all
    folds."""
    ref_folds = collect(root / REFERENCE[0], REFERENCE[1])
    if not ref_folds:
        raise SystemExit(f"error: {root / REFERENCE[0]}: no fold*/pred-{REFERENCE[1]}/metrics.csv")
    reference = scores_by_case(collect(root / REFERENCE[0], REFERENCE[1]))
    folds = sorted(ref_folds)
    intro = (
        "Each row minus the v1 preset in windows on the same held-out cases, Dice WT / TC / ET "
        f"(`python scripts/levers_v2.py {root}`):"
    )
    lines = [
        intro,
        "",
        "| lever | "
        + " | ".join(f"fold {k}" for k in folds)
        + " | all folds it was scored on: WT | TC | ET |",
        "|---|" + "---|" * len(folds) + "---|---|---|",
    ]
    for label, cv, variant in LEVERS:
        by_fold = collect(root / cv, variant)
        if not by_fold:
            continue
        scores = scores_by_case(by_fold)
        cells = []
        for k in folds:
            cases = [row["case"] for row in by_fold.get(k, []) if row["case"] in reference]
            if not cases:
                cells.append("-")
                continue
            cells.append(
                " / ".join(
                    f"""{
                        sum(scores[c][f"dice_{r}"] - reference[c][f"dice_{r}"] for c in cases)
                        / len(cases):+.3f}"""
                    for r in REGIONS
                )
                + f" ({len(cases)})"
            )
        _, paired = paired_cells(reference, scores, [f"dice_{r}" for r in REGIONS], na="n/a")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {' | '.join(paired)} |")
    legend = (
        'A cell per fold: the mean difference over that fold\'s cases (how many in brackets); "-": not '
        "scored on that fold. Last columns: mean difference (cases better / worse, Wilcoxon p) over every "
        "case the lever was scored on."
    )
    return [*lines, "", legend]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "root",
        nargs="?",
        type=Path,
        default=Path("docs/runs/brats-v2-cv"),
        help="the folder holding cv27-v1 and cv27-strong (kept records or runs/)",
    )
    parser.add_argument("--splice", metavar="FILE:NAME", help="also write the table into FILE's block NAME")
    args = parser.parse_args(argv)
    lines = lever_lines(args.root)
    print("\n".join(lines))
    if args.splice:
        print(f"spliced: {splice(args.splice, lines)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
