"""Would an ensemble help? Score, fold by fold, the ensemble of several cross-validations' fold models on the
held-out cases none of them saw, exactly as `medseg3d predict` runs an ensemble file.

For each fold finished in every CV folder (same split file), the fold's ``last.safetensors`` of each are
combined with ``medseg3d ensemble`` into ``FIRST/foldK/ensemble-TAG.safetensors`` (TAG: the other folders'
names, e.g. ``cv27-strong``), which segments the fold's held-out cases in one pass per member
(``pred-ens-TAG``) and, with ``--windows``, in windows of the training patch too (``pred-ens-TAG-sw``); both
are scored as ``scripts/crossval.sh`` scores its variants, so that ``scripts/crossval_report.py FIRST`` pairs
them with the single models case by case:

    python scripts/crossval_ensemble.py runs/cv27-v1 runs/cv27-strong [--windows] [--folds 0 1]
    python scripts/crossval_report.py runs/cv27-v1 --reference last-sw --variant last-sw --variant last \\
        --variant ens-cv27-strong
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medseg3d.cli import main as medseg3d


def finished_folds(roots: list[Path]) -> list[int]:
    """Folds with ``done`` in every root, refused unless every root's fold names the same split file
    (``config.json``)."""
    folds = []
    for run in sorted(roots[0].glob("fold*"), key=lambda p: p.name):
        name = run.name
        if not name[4:].isdigit() or not all((root / name / "done").is_file() for root in roots):
            continue
        splits = {
            json.loads((root / name / "config.json").read_text(encoding="utf-8")).get("split_file")
            for root in roots
        }
        if len(splits) != 1:
            raise SystemExit(
                f"{name}: the folders were cross-validated on different splits ({sorted(map(str, splits))})"
            )
        folds.append(int(name[4:]))
    return folds


def run(command: list[str]) -> None:
    """``medseg3d COMMAND...`` in this process; its one-line error stops the script."""
    print("+ medseg3d", " ".join(command), flush=True)
    if medseg3d(command) != 0:
        raise SystemExit(f"medseg3d {command[0]} failed (its error is above)")


def score(model: Path, held: Path, pred: Path, *options: str) -> None:
    """Segment the fold's held-out cases and evaluate them (as scripts/crossval.sh's ``score``)."""
    run(["predict", str(model), str(held), "-o", str(pred), "--force", "--quiet", *options])
    run(["evaluate", str(pred), str(held), "--labels", "brats", "--hd95-penalty", "--quiet"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", type=Path, nargs="+", help="two or more scripts/crossval.sh OUT folders")
    parser.add_argument(
        "--folds", type=int, nargs="+", help="only these folds (default: every fold all have finished)"
    )
    parser.add_argument(
        "--windows", action="store_true", help="also score the ensemble in windows of the patch"
    )
    parser.add_argument(
        "--weights", default="last", choices=["last", "best"], help="which weights of each fold"
    )
    args = parser.parse_args(argv)
    if len(args.roots) < 2:
        parser.error("give two or more cross-validation folders")
    folds = [k for k in finished_folds(args.roots) if args.folds is None or k in args.folds]
    if not folds:
        print("no fold is finished in every folder yet", file=sys.stderr)
        return 1
    tag = "-".join(root.name for root in args.roots[1:]) + ("" if args.weights == "last" else "-best")
    for k in folds:
        first = args.roots[0] / f"fold{k}"
        model = first / f"ensemble-{tag}.safetensors"
        run(
            [
                "ensemble",
                *[str(root / f"fold{k}" / f"{args.weights}.safetensors") for root in args.roots],
                "-o",
                str(model),
                "--force",
            ]
        )
        score(model, first / "heldout", first / f"pred-ens-{tag}", "--whole-volume")
        if args.windows:
            score(model, first / "heldout", first / f"pred-ens-{tag}-sw", "--sliding-window")
    print(
        f"scored folds {folds}: python scripts/crossval_report.py {args.roots[0]} --reference last-sw "
        f"--variant last-sw --variant ens-{tag}" + (f" --variant ens-{tag}-sw" if args.windows else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
