"""float32 against mixed precision (bfloat16 autocast) on this CPU: training steps and inference passes.

For the ``brats`` preset's network (``kayalibay``, instance norm, 4 inputs, 3 region outputs) and loss
(``region-dice-bce``): one training step (forward, loss, backward, Adam) on a 64^3 patch, and one inference
pass over a brain crop at 2 mm (72 x 88 x 72), each the median over repeats after a warm-up. The two
precisions alternate, so that both see the same machine load; the ratio is what to read on a shared machine.
Also prints the largest difference between the two precisions' probabilities for the same weights.

    python benchmarks/precision.py [--repeats 5] [--threads 1] [--json out.json]

A CPU without native bfloat16 (no AVX-512 BF16 / AMX) runs ``mixed`` in float32; the script says so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from medseg3d.losses import build_loss
from medseg3d.nets import build_network
from medseg3d.precision import autocast, describe, native_bf16
from medseg3d.train import make_grad_scaler, training_step

PATCH = (64, 64, 64)
CROP = (72, 88, 72)


def brats_net():
    """The ``brats`` preset's network (kayalibay, instance norm, 4 inputs, 3 region outputs), seeded."""
    torch.manual_seed(0)
    return build_network("kayalibay", 4, 3, norm="instance")


def timed_train_step(model, opt, loss_fn, x, y, precision):
    """(seconds, loss) of one step of the training loop's own step function."""
    scaler = make_grad_scaler(precision, "cpu")
    start = time.perf_counter()
    loss = training_step(model, loss_fn, opt, scaler, [(x, y)], precision=precision, device="cpu")
    return time.perf_counter() - start, loss


@torch.no_grad()
def _infer(model, x, precision):
    start = time.perf_counter()
    with autocast(precision, "cpu"):
        out = torch.sigmoid(model(x).float())
    return time.perf_counter() - start, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((1, 4, *PATCH), generator=g)
    y = (torch.rand((1, 3, *PATCH), generator=g) > 0.5).float()
    crop = torch.randn((1, 4, *CROP), generator=g)
    loss_fn = build_loss("region-dice-bce", n_classes=3)
    precisions = ("fp32", "mixed")
    models = {p: brats_net() for p in precisions}
    opts = {p: torch.optim.Adam(models[p].parameters(), lr=1e-3) for p in precisions}
    train_t = {p: [] for p in precisions}
    infer_t = {p: [] for p in precisions}
    for p in precisions:  # warm-up
        timed_train_step(models[p], opts[p], loss_fn, x, y, p)
        _infer(models[p].eval(), crop, p)
        models[p].train()
    for _ in range(args.repeats):
        for p in precisions:
            train_t[p].append(timed_train_step(models[p], opts[p], loss_fn, x, y, p)[0])
    evaluator = brats_net().eval()
    outs = {}
    for _ in range(args.repeats):
        for p in precisions:
            t, outs[p] = _infer(evaluator, crop, p)
            infer_t[p].append(t)
    med = {
        k: {p: statistics.median(v[p]) for p in precisions}
        for k, v in (("train", train_t), ("infer", infer_t))
    }
    result = {
        "native_bf16": native_bf16(),
        "mixed_runs_in": describe("mixed", "cpu"),
        "threads": args.threads,
        "train_step_s": med["train"],
        "infer_pass_s": med["infer"],
        "train_ratio": med["train"]["fp32"] / med["train"]["mixed"],
        "infer_ratio": med["infer"]["fp32"] / med["infer"]["mixed"],
        "max_probability_difference": float((outs["fp32"] - outs["mixed"]).abs().max()),
    }
    print(
        f"mixed precision runs in {result['mixed_runs_in']} on this CPU ({args.threads} thread(s), "
        f"median of {args.repeats})"
    )
    print("| | float32 | mixed | float32 / mixed |\n|---|---|---|---|")
    print(
        f"| training step, 64^3 patch | {med['train']['fp32']:.3f} s | {med['train']['mixed']:.3f} s | "
        f"{result['train_ratio']:.2f}x |"
    )
    print(
        f"| inference pass, 72x88x72 | {med['infer']['fp32']:.3f} s | {med['infer']['mixed']:.3f} s | "
        f"{result['infer_ratio']:.2f}x |"
    )
    print(f"largest probability difference, same weights: {result['max_probability_difference']:.4f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
