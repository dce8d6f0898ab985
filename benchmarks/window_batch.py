"""How many windows per network call (``medseg3d.inference.WINDOW_BATCH``) segment a case fastest on this CPU?

For each batch size, a fresh process preprocesses one case for the bundled model (the BraTS model, 64^3
windows) and times ``predict_probabilities`` in windows (median of ``--repeats`` after a warm-up); it reports
that and its peak resident memory, and the largest probability difference to one window at a time.

    MEDSEG3D_THREADS=2 python benchmarks/window_batch.py [CASE] [--batches 1 2 4 8] [--repeats 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_CASE = Path(__file__).resolve().parents[1].parent / "shared/data/brats2018/Brats18_2013_2_1"


def _worker(case: str, batch: int, repeats: int, save: str) -> None:
    import os
    import resource
    import statistics
    import time

    import numpy as np
    import torch

    from medseg3d.datasets import resolve_case_channels
    from medseg3d.inference import model_input, predict_probabilities
    from medseg3d.models import load_model

    torch.set_num_threads(int(os.environ.get("MEDSEG3D_THREADS", "2")))
    model = load_model("brats-v1", "cpu", refine="none")
    found, _ = resolve_case_channels([Path(case)], model.modalities)
    volumes = [vol for _, _, vol in found.read_channels()]
    image = np.stack([v.array for v in volumes]).astype(np.float32)
    x, _, settings = model_input(model, image, volumes[0].affine, sliding_window=True)
    times = []
    for i in range(repeats + 1):  # the first call warms up
        t0 = time.perf_counter()
        probs = predict_probabilities(model.model, x, window_batch=batch, **settings)
        if i:
            times.append(time.perf_counter() - t0)
    np.save(save, probs.numpy())
    print(
        json.dumps(
            {
                "batch": batch,
                "seconds": statistics.median(times),
                "shape": list(x.shape[1:]),
                "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            }
        )
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", nargs="?", default=str(DEFAULT_CASE))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.case, args.worker, args.repeats, args.save)
        return 0
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for batch in args.batches:
            save = f"{tmp}/p{batch}.npy"
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    args.case,
                    "--worker",
                    str(batch),
                    "--repeats",
                    str(args.repeats),
                    "--save",
                    save,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]) | {"probs": save})
        first = np.load(rows[0]["probs"])
        print(
            f"{Path(args.case).name}, crop {'x'.join(map(str, rows[0]['shape']))} on the model's grid, "
            f"median of {args.repeats}"
        )
        print(
            "| windows per call | seconds | peak GB | largest "
            "probability difference to the first |\n|---|---|---|---|"
        )
        for row in rows:
            diff = float(np.abs(np.load(row["probs"]) - first).max())
            print(f"| {row['batch']} | {row['seconds']:.2f} | {row['peak_gb']:.2f} | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
