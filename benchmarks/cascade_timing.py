"""What a 1 mm refinement stage costs per case (issue #22, lever 1), before any refiner is trained.

The refiner's cost depends on the size of the box around the coarse tumour and on how it is run (one pass over
the box, or windows of its 64^3 patch), not on its weights: so the bundled 2 mm model is run at 1 mm as a
stand-in refiner. Each variant segments the same cases in one process, interleaved, after a warm-up:

* ``coarse windows``: the bundled model as ``medseg3d predict brats`` runs it (64^3 windows, overlap 0.5);
* ``coarse whole``: the bundled model in one pass;
* ``cascade box``: coarse whole + the refiner in one pass over the box;
* ``cascade windows``: coarse whole + the refiner in 64^3 windows (overlap 0.5) over the box.

    python benchmarks/cascade_timing.py [--data ../shared/data/brats2018] [--cases 3] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import torch
from interleave import interleaved_seconds  # benchmarks/interleave.py

from medseg3d.cascade import refine
from medseg3d.checkpoint import read_model_file, rewrite_model_metadata
from medseg3d.datasets import find_cases
from medseg3d.models import bundled_models, load_model
from medseg3d.predict import grid_probabilities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("MEDSEG3D_DATA", "../shared/data") + "/brats2018")
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("MEDSEG3D_THREADS", "2")))
    coarse = load_model("brats-v1", device="cpu", refine="none")
    source = bundled_models()["brats-v1"]
    meta, _ = read_model_file(source)
    with tempfile.TemporaryDirectory() as tmp:
        fine = rewrite_model_metadata(
            source,
            {"preprocess": meta["preprocess"] | {"downsample": 1.0}},
            out=Path(tmp) / "fine.safetensors",
        )
        refiner = load_model(fine, device="cpu", refine="none")
    cases = find_cases(args.data)[: args.cases]
    boxes = []

    def run(variant: str):
        def fn(image, affine, case, repeat):
            probs = grid_probabilities(coarse, image, affine, sliding_window=variant == "coarse windows")
            if variant.startswith("cascade"):
                _, info = refine(refiner, image, affine, probs, sliding_window=variant == "cascade windows")
                if repeat == 0 and variant == "cascade box":
                    boxes.append((case.case_id, info.get("box"), info.get("voxels")))

        return fn

    variants = ["coarse windows", "coarse whole", "cascade box", "cascade windows"]
    times = interleaved_seconds(cases, coarse.modalities, {v: run(v) for v in variants}, args.repeats)
    print(
        f"{len(cases)} cases x {args.repeats} repeats, {torch.get_num_threads()} threads, seconds per case "
        "(segment only: no reading, writing or imports)"
    )
    base = statistics.median(times["coarse windows"])
    for variant in variants:
        med = statistics.median(times[variant])
        print(
            f"  {variant:16s} median {med:6.2f}  mean {statistics.mean(times[variant]):6.2f}  "
            f"ratio to coarse windows {med / base:4.2f}"
        )
    for name, box, voxels in boxes:
        size = "none" if box is None else "x".join(str(b - a) for a, b in zip(*box))
        print(f"  {name}: refiner box {size} ({voxels or 0:,} voxels at 1 mm)")


if __name__ == "__main__":
    main()
