"""Fingerprints of what ``medseg3d predict`` writes, to show that a refactoring changed no result.

Runs the bundled models on the shared cases through :func:`medseg3d.predict.predict` (the path the command
takes) and records, per model and case, a SHA-256 of the label array and affine and of every file written
beside it (JSON with its timings and paths taken out). Run it before and after a change and diff the two JSON
files::

    python scripts/label_fingerprints.py ../shared/data -o before.json
    python scripts/label_fingerprints.py ../shared/data -o after.json
    diff before.json after.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

TIMING_KEYS = {"seconds", "output", "inputs", "map", "raw_input_seconds"}


def _strip(value):
    """JSON without what differs between runs (timings, temporary paths)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, str) and tempfile.gettempdir() in value:
        return "<tmp>"
    return value


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def fingerprint(folder: Path, stem: str) -> dict:
    """label array + affine hash, and each companion file's hash (JSON normalised)."""
    import nibabel as nib

    out = {}
    for path in sorted(folder.glob(stem + "*")):
        if path.name.endswith((".nii.gz", ".mha")) and path.name.startswith(stem + "."):
            from medseg3d.io import read_volume

            vol = read_volume(path)
            out["labels"] = _digest(
                np.ascontiguousarray(vol.array).tobytes() + np.round(vol.affine, 5).tobytes()
            )
            out["label_counts"] = {int(v): int(c) for v, c in zip(*np.unique(vol.array, return_counts=True))}
        elif path.suffix == ".json":
            out[path.name[len(stem) :]] = _strip(json.loads(path.read_text()))
        elif path.name.endswith(".nii.gz"):
            img = nib.load(path)
            out[path.name[len(stem) :]] = _digest(np.asarray(img.dataobj).tobytes())
        else:
            out[path.name[len(stem) :]] = "present"
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data", type=Path, help="the shared data folder (holds brats2018/, raw_clinical/ ...)"
    )
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--models", default="brats-v1,brats-v2")
    parser.add_argument("--limit", type=int, default=0, help="only the first N BraTS cases (0: all)")
    args = parser.parse_args(argv)

    from medseg3d.models import load_model
    from medseg3d.predict import predict

    brats = sorted(p for p in (args.data / "brats2018").iterdir() if p.is_dir())
    if args.limit:
        brats = brats[: args.limit]
    raw = args.data / "raw_clinical" / "TCGA-FG-6692"
    mha = args.data / "brats2012_mha"
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            model = load_model(name)
            rows = result.setdefault(name, {})
            jobs = [(c.name, [c], {}) for c in brats]
            jobs.append(("brainles_sri24", [raw / "brainles_sri24"], {"report": True}))
            jobs.append(("raw", [raw / "raw"], {"report": True, "uncertainty": "auto"}))
            jobs.append(("brats2012", [mha], {}))
            for case, inputs, extra in jobs:
                folder = Path(tmp) / name / case
                folder.mkdir(parents=True)
                suffix = ".mha" if case == "brats2012" else ".nii.gz"
                try:
                    predict(model, inputs, folder / f"seg{suffix}", progress=False, force=True, **extra)
                    rows[case] = fingerprint(folder, "seg")
                except Exception as exc:  # noqa: BLE001 - recorded: a refactoring must fail the same way
                    rows[case] = {"error": f"{type(exc).__name__}: {exc}"}
                print(name, case, rows[case].get("labels", rows[case].get("error")), flush=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
