"""What an ensemble of N fold models costs per case (issue #22, lever 4), before the folds are trained.

Cost depends on the number of members and on how each runs (one pass over the cropped volume, or windows of
its 64^3 patch), not on the weights: so N copies of the bundled model stand in for N fold models. Every
variant segments the same cases in one process, interleaved, after a warm-up round that is not counted
(segmenting only: no reading, writing or imports, which a fresh `medseg3d predict` adds, about 4 s here).

    MEDSEG3D_THREADS=2 python benchmarks/ensemble_timing.py [--data DIR] [--cases 3] [--repeats 2] [--members
    1 3 4 5]
        [--all-windows] [--uncertainty]

``--uncertainty`` also times each ensemble in one pass through ``segment_volumes`` (labels and volumes
included) without and with its members' uncertainty (``predict --uncertainty`` on an ensemble: the members'
disagreement and each member's tumour volumes), interleaved the same way.
"""

from __future__ import annotations

import argparse
import os
import statistics
from dataclasses import replace

import torch
from interleave import interleaved_seconds  # benchmarks/interleave.py

from medseg3d.datasets import find_cases
from medseg3d.io import Volume
from medseg3d.models import load_model
from medseg3d.nets.ensemble import EnsembleNet
from medseg3d.predict import grid_probabilities, segment_volumes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("MEDSEG3D_DATA", "../shared/data") + "/brats2018")
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--members", type=int, nargs="+", default=[1, 3, 4, 5])
    parser.add_argument(
        "--all-windows",
        action="store_true",
        help="every ensemble in windows too (default: only the single model, v1's way to run)",
    )
    parser.add_argument(
        "--uncertainty",
        action="store_true",
        help="also time each ensemble (one pass) without and with its members' uncertainty",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("MEDSEG3D_THREADS", "2")))
    single = load_model("brats-v1", device="cpu", refine="none")
    models = {
        n: single
        if n == 1
        else replace(
            single,
            model=EnsembleNet([single.model] * n, single.kind),
            meta=replace(single.meta, ensemble={"members": n}),
        )
        for n in args.members
    }
    variants = [(n, True) for n in args.members if n == 1 or args.all_windows] + [
        (n, False) for n in args.members
    ]
    if args.uncertainty:
        variants += [(n, mode) for n in args.members if n > 1 for mode in ("labels", "labels + members")]

    def run(n: int, windows):
        def fn(image, affine, case, repeat):
            if isinstance(windows, str):  # one pass, labels and volumes, with or without the members' maps
                segment_volumes(
                    models[n],
                    {m: Volume(a, affine) for m, a in zip(single.modalities, image)},
                    sliding_window=False,
                    uncertainty="members" if "members" in windows else None,
                )
            else:
                grid_probabilities(models[n], image, affine, sliding_window=windows)

        return fn

    cases = find_cases(args.data)[: args.cases]
    times = interleaved_seconds(cases, single.modalities, {v: run(*v) for v in variants}, args.repeats)
    print(
        f"{len(cases)} cases x {args.repeats} repeats, {torch.get_num_threads()} threads, seconds per case "
        "to segment (no reading, writing or imports)"
    )
    base = statistics.median(times[(1, True)]) if (1, True) in times else None
    print("| members | inference | median s | ratio to 1 model in windows |\n|---|---|---|---|")
    for n, windows in variants:
        med = statistics.median(times[(n, windows)])
        ratio = f"{med / base:.2f}" if base else "-"
        how = windows if isinstance(windows, str) else "64^3 windows" if windows else "one pass"
        print(f"| {n} | {how} | {med:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
