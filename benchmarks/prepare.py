"""Time ``medseg3d cache`` on the shared BraTS cases and the loading of one prepared case.

Targets (issue 3): preparing the 20 shared cases in under 2 minutes on the 2-core development machine with
the default settings, and loading one prepared case for training in under 50 ms.

    python benchmarks/prepare.py [DATASET] [--workers N] [--loads 20] [--json out.json]

DATASET defaults to ``$MEDSEG3D_DATA/brats2018`` or ``../shared/data/brats2018``. Everything is written
to a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from medseg3d.cache import PreparedCase, open_cache, prepare_dataset
from medseg3d.preprocess import PrepConfig

REPO = Path(__file__).resolve().parents[1]
PREPARE_TARGET_S = 120.0
LOAD_TARGET_MS = 50.0


def default_dataset() -> Path:
    env = os.environ.get("MEDSEG3D_DATA")
    return (Path(env) if env else REPO.parent / "shared" / "data") / "brats2018"


def time_prepare(dataset: Path, out: Path, config: PrepConfig, workers: int | None) -> dict:
    t0 = time.perf_counter()
    summary = prepare_dataset(dataset, out, config, workers=workers, progress=False)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = prepare_dataset(dataset, out, config, workers=workers, progress=False)
    rerun = time.perf_counter() - t0
    if summary["failed"]:
        print(f"  failed cases: {summary['failed']}", file=sys.stderr)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {
        "cases": len(summary["prepared"]),
        "failed": len(summary["failed"]),
        "seconds": round(first, 2),
        "seconds_per_case": round(first / max(len(summary["prepared"]), 1), 3),
        "rerun_seconds": round(rerun, 3),
        "rerun_skipped": len(again["skipped"]),
        "cache_mb": round(size / 2**20, 1),
    }


def time_loads(out: Path, n: int) -> dict:
    """Median time to load one prepared case fully into memory as float32 (image) and int64-ready labels,
    over ``n`` loads cycling through the cases, each from a freshly opened case (no Python-level caching).
    The OS page cache is warm after the first pass, as it is during training."""
    _, cases = open_cache(out)
    ids = sorted(cases)
    times = []
    shape = None
    for i in range(n):
        case_dir = out / ids[i % len(ids)]
        t0 = time.perf_counter()
        case = PreparedCase(case_dir)
        image = np.asarray(case.image, dtype=np.float32)
        label = np.array(case.label) if case.label is not None else None
        times.append(time.perf_counter() - t0)
        shape = image.shape
        del image, label
    return {
        "loads": n,
        "median_ms": round(1000 * statistics.median(times), 2),
        "max_ms": round(1000 * max(times), 2),
        "example_shape": list(shape),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=default_dataset())
    parser.add_argument(
        "--workers", type=int, default=None, help="prepare workers (default: as prepare chooses)"
    )
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not args.dataset.is_dir():
        print(
            f"benchmark: {args.dataset}: dataset not found; pass its path or set MEDSEG3D_DATA",
            file=sys.stderr,
        )
        return 2
    results = {"dataset": str(args.dataset), "cpus": os.cpu_count(), "load_average": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="medseg3d-bench-") as tmp:
        for name, config in (("default", PrepConfig()), ("downsample2", PrepConfig(downsample=2))):
            out = Path(tmp) / name
            prep = time_prepare(args.dataset, out, config, args.workers)
            load = time_loads(out, args.loads)
            results[name] = {"prepare": prep, "load": load}
            ok_p = "OK" if prep["seconds"] < PREPARE_TARGET_S else "OVER TARGET"
            ok_l = "OK" if load["median_ms"] < LOAD_TARGET_MS else "OVER TARGET"
            print(
                f"[{name}] prepare {prep['cases']} cases: {prep['seconds']:.1f} s "
                f"({prep['seconds_per_case']:.2f} s/case; target < {PREPARE_TARGET_S:.0f} s: {ok_p}); "
                f"re-run (all skipped): {prep['rerun_seconds']:.2f} s; cache {prep['cache_mb']} MB"
            )
            print(
                f"[{name}] load one case as float32 {tuple(load['example_shape'])}: median "
                f"{load['median_ms']:.1f} ms over {load['loads']} loads (max {load['max_ms']:.1f} ms; "
                f"target < {LOAD_TARGET_MS:.0f} ms: {ok_l})"
            )
    print(f"machine: {results['cpus']} CPUs, load average at start {results['load_average'][0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
