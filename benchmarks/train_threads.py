"""One training with every core, or one training per core side by side: which does more steps per second?

Times the ``brats`` preset's training step (network, loss and step function of ``medseg3d train``, float32,
64^3 patch) in separate processes: one process with ``--threads`` threads alone, then ``--threads`` processes
with one thread each at the same time. Their summed steps per second against the single process's is the
gain of running that many trainings side by side (``archive/v2/queue_v2.sh`` runs its two presets that way).
Run it on an otherwise idle machine.

    python benchmarks/train_threads.py [--threads 2] [--steps 15]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def _worker(threads: int, steps: int) -> None:
    import statistics

    import torch
    from precision import brats_net, timed_train_step  # benchmarks/precision.py: same network, same step

    from medseg3d.losses import build_loss

    torch.set_num_threads(threads)
    model = brats_net()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = build_loss("region-dice-bce")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 64, 64, 64, generator=gen)
    y = (torch.rand(1, 3, 64, 64, 64, generator=gen) > 0.8).float()
    # 3 warm-up steps
    times = [timed_train_step(model, opt, loss_fn, x, y, "fp32")[0] for _ in range(steps + 3)][3:]
    print(f"{statistics.median(times):.4f}", flush=True)


def _run(threads: int, copies: int, steps: int) -> list[float]:
    """Median seconds per step of each of ``copies`` processes started together."""
    here = Path(__file__).resolve().parent
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", str(threads), "--steps", str(steps)],
            cwd=here,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(copies)
    ]
    return [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.steps)
        return 0
    alone = _run(args.threads, 1, args.steps)[0]
    side = _run(1, args.threads, args.steps)
    rate_alone, rate_side = 1 / alone, sum(1 / s for s in side)
    print(f"one process, {args.threads} threads: {alone:.3f} s per step ({rate_alone:.2f} steps/s)")
    print(
        f"{args.threads} processes, 1 thread each: "
        + ", ".join(f"{s:.3f}" for s in side)
        + f" s per step ({rate_side:.2f} steps/s together)"
    )
    print(f"side by side / alone: {rate_side / rate_alone:.2f}x the steps per second")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
