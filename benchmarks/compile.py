"""Eager against ``torch.compile`` (``medseg3d train --compile``) for one training step on this CPU.

For the ``brats`` preset's network (``kayalibay``, instance norm, 4 inputs, 3 region outputs) and loss
(``region-dice-bce``) on a 64^3 patch: the time to compile (the first two compiled steps, which compile
the forward and the backward graphs), then the median of repeated steps, eager and compiled alternating so
that both see the same machine load; the ratio is what to read on a shared machine. Also checks that one
step from the same weights gives nearly the same loss both ways.

    python benchmarks/compile.py [--precision mixed] [--repeats 6] [--threads 1] [--json out.json]

A second run in the same user account compiles faster: torch caches compiled kernels on disk.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from precision import brats_net, timed_train_step  # benchmarks/precision.py: same network, same step

from medseg3d.losses import build_loss
from medseg3d.precision import describe
from medseg3d.train import compile_for_training

PATCH = (64, 64, 64)


def _setup():
    model = brats_net()
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=["fp32", "mixed"], default="mixed")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, *PATCH, generator=gen)
    y = (torch.rand(1, 3, *PATCH, generator=gen) > 0.8).float()
    loss_fn = build_loss("region-dice-bce")

    eager_model, eager_opt = _setup()
    comp_model, comp_opt = _setup()
    compiled = compile_for_training(comp_model)
    _, loss_eager = timed_train_step(eager_model, eager_opt, loss_fn, x, y, args.precision)
    t0 = time.perf_counter()
    _, loss_comp = timed_train_step(compiled, comp_opt, loss_fn, x, y, args.precision)
    timed_train_step(compiled, comp_opt, loss_fn, x, y, args.precision)
    compile_seconds = time.perf_counter() - t0
    timed_train_step(eager_model, eager_opt, loss_fn, x, y, args.precision)
    eager, comp = [], []
    for _ in range(args.repeats):
        eager.append(timed_train_step(eager_model, eager_opt, loss_fn, x, y, args.precision)[0])
        comp.append(timed_train_step(compiled, comp_opt, loss_fn, x, y, args.precision)[0])
    result = {
        "precision": args.precision,
        "compute_dtype": describe(args.precision, "cpu"),
        "threads": args.threads,
        "patch": list(PATCH),
        "compile_seconds": round(compile_seconds, 1),
        "eager_step_seconds": round(statistics.median(eager), 3),
        "compiled_step_seconds": round(statistics.median(comp), 3),
        "speedup": round(statistics.median(eager) / statistics.median(comp), 2),
        "first_loss_eager": round(loss_eager, 5),
        "first_loss_compiled": round(loss_comp, 5),
    }
    seconds_saved = statistics.median(eager) - statistics.median(comp)
    breakeven = compile_seconds / seconds_saved if seconds_saved > 0 else float("inf")
    print(
        f"training step, kayalibay (instance norm) + region-dice-bce, {PATCH[0]}^3 patch, {args.precision} "
        f"({result['compute_dtype']}), {args.threads} thread(s):"
    )
    print(f"  compile (first two steps): {compile_seconds:.0f} s")
    print(
        f"  eager {result['eager_step_seconds']:.3f} s, compiled {result['compiled_step_seconds']:.3f} s per "
        f"step: {result['speedup']:.2f}x; compiling pays for itself after about {breakeven:.0f} steps"
    )
    print(f"  first-step loss: eager {loss_eager:.5f}, compiled {loss_comp:.5f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result | {"breakeven_steps": round(breakeven)}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
