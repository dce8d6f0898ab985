"""What ``predict --uncertainty`` costs per case against a plain ``predict`` (target: under 2x).

Loads the bundled model once and segments each case with :func:`medseg3d.predict.predict` (read, segment,
write) plainly and with ``--uncertainty 2`` (and 8 with ``--passes-8``), alternating the variants over
``--repeats`` rounds so that a busy machine slows both alike. Prints the wall and CPU seconds of every run and
the ratio of the medians; the first round is a warm-up and is not counted.

    python benchmarks/uncertainty_timing.py [--cases 2] [--repeats 3] [--passes-8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from medseg3d.models import load_model
from medseg3d.predict import predict


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/brats2018")
    )
    parser.add_argument("--cases", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--passes-8", action="store_true", help="also time --uncertainty 8")
    args = parser.parse_args(argv)
    model = load_model("brats", "cpu")
    variants = {"plain": None, "uncertainty 2": 2} | ({"uncertainty 8": 8} if args.passes_8 else {})
    wall = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    out = Path(tempfile.mkdtemp(prefix="medseg3d-unc-"))
    cases = sorted(p for p in Path(args.data).iterdir() if p.is_dir())[: args.cases]
    for round_ in range(args.repeats + 1):
        for case in cases:
            for name, passes in variants.items():
                t0, c0 = time.perf_counter(), time.process_time()
                predict(
                    model,
                    [case],
                    out / f"{name.replace(' ', '')}.nii.gz",
                    uncertainty=passes,
                    force=True,
                    progress=False,
                )
                w, c = time.perf_counter() - t0, time.process_time() - c0
                print(f"round {round_} {case.name} {name}: wall {w:.2f} s, CPU {c:.2f} s", flush=True)
                if round_:  # round 0 warms up (first calls, allocator, file cache)
                    wall[name].append(w)
                    cpu[name].append(c)
    base_w, base_c = statistics.median(wall["plain"]), statistics.median(cpu["plain"])
    for name in variants:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"{name}: median wall {w:.2f} s ({w / base_w:.2f}x), CPU {c:.2f} s ({c / base_c:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
