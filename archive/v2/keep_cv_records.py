"""Keep a cross-validation's small records in the repository, so that its report outlives the machine.

A fold's trained weights and predicted volumes are large and stay in ``runs/`` (which a new machine does not
have); what the reports and the model card are made of is small: each finished fold's ``config.json`` (split,
preset, software), ``log.csv`` and ``curves.png`` (the training), its ``done`` marker (so that readers of
finished folds, e.g. ``scripts/learning_curves.py``, read the kept copy too), its ``robustness*.json``
(``validation/pipeline_robustness.py`` on the other pipeline's case) and every scored variant's per-case
``pred-VARIANT/metrics.csv``. This copies those of every finished fold (``foldK/done``) from ``SOURCE`` into
``DEST`` in the same layout, so that ``scripts/crossval_report.py DEST`` and ``bundle_model.py --cv DEST``
read them as they read the run folder:

    python scripts/keep_cv_records.py runs/cv27-v1 docs/runs/brats-v2-cv/cv27-v1 [--labels ens-cv27-strong-sw]

``--labels VARIANT`` also keeps that variant's predicted label maps (``pred-VARIANT/*.nii.gz``, about 70 kB a
case): what ``scripts/postprocess_sweep.py KEPT --data DATA`` needs to choose post-processing by
cross-validation on a machine without the fold models.

Each file is written atomically and only when it changed; nothing is ever deleted from ``DEST``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from medseg3d.io.atomic import atomic_write

FOLD_FILES = ("config.json", "log.csv", "curves.png", "done")  # done: finished, as in the run folder


def records(fold: Path, labels: tuple[str, ...] = ()) -> list[Path]:
    """The small files of a finished fold worth keeping, relative to the fold folder; with ``labels``, those
    variants' predicted label maps too."""
    kept = [Path(name) for name in FOLD_FILES if (fold / name).is_file()]
    kept += sorted(p.relative_to(fold) for p in fold.glob("robustness*.json"))
    kept += sorted(p.relative_to(fold) for p in fold.glob("pred-*/metrics.csv"))
    for variant in labels:
        kept += sorted(p.relative_to(fold) for p in (fold / f"pred-{variant}").glob("*.nii.gz"))
    return kept


def _copy_atomic(src: Path, dst: Path) -> bool:
    """Copy ``src`` to ``dst`` through a temporary file; False (and nothing written) if they are already
    equal."""
    if dst.is_file() and dst.read_bytes() == src.read_bytes():
        return False
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))
    return True


def keep(source: Path, dest: Path, labels: tuple[str, ...] = ()) -> list[Path]:
    """Copy the records of ``source``'s finished folds into ``dest``; returns the files written."""
    if not source.is_dir():
        raise SystemExit(f"error: {source}: no such cross-validation folder")
    folds = sorted(
        (f for f in source.glob("fold*") if f.name[4:].isdigit() and (f / "done").is_file()),
        key=lambda f: int(f.name[4:]),
    )
    if not folds:
        raise SystemExit(f"error: {source}: no finished fold (foldK/done); nothing to keep")
    written = []
    for fold in folds:
        for rel in records(fold, labels):
            if _copy_atomic(fold / rel, dest / fold.name / rel):
                written.append(dest / fold.name / rel)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the cross-validation run folder (fold*/done)")
    parser.add_argument("dest", type=Path, help="where its records are kept (same layout)")
    parser.add_argument(
        "--labels",
        action="append",
        default=[],
        metavar="VARIANT",
        help="also keep pred-VARIANT's label maps (repeatable)",
    )
    args = parser.parse_args(argv)
    written = keep(args.source, args.dest, tuple(args.labels))
    print(
        f"{args.source} -> {args.dest}: {len(written)} file(s) written" + "".join(f"\n  {p}" for p in written)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
