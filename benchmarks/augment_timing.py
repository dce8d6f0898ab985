"""Time per training sample of the "default" and "strong" augmentation presets (issue #22), on one thread.

A training sample is a 64^3 patch at 2 mm: a (4, 64, 64, 64) float32 image (z-scored, background 0 outside
a brain-like ellipsoid) with its (3, 64, 64, 64) float32 region label (WT/TC/ET), or with ``--label
classes`` the (64, 64, 64) int64 class map the training loop passes today. The presets are drawn
interleaved (default then strong, seed by seed), so a change of machine load hits both alike; the median
and the mean over the draws are printed with their ratio, then the median of each op of "strong" applied
with certainty (p=1, every channel), to show where the time goes.

    python benchmarks/augment_timing.py [--draws 200] [--threads 1] [--label regions|classes] [--json F]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from medseg3d import augment as A

SHAPE = (64, 64, 64)


def patch(label_kind: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A brain-like patch: noise inside an ellipsoid filling most of the box, exactly 0 outside."""
    g = torch.Generator().manual_seed(seed)
    axes = [torch.linspace(-1, 1, n) for n in SHAPE]
    x, y, z = torch.meshgrid(*axes, indexing="ij")
    r2 = (x / 0.95) ** 2 + (y / 0.9) ** 2 + (z / 0.85) ** 2
    brain = r2 <= 1
    image = torch.randn((4, *SHAPE), generator=g) * brain
    classes = torch.zeros(SHAPE, dtype=torch.int64)
    classes[r2 <= 0.2] = 2  # oedema
    classes[r2 <= 0.08] = 4  # enhancing rim
    classes[r2 <= 0.03] = 1  # necrotic core
    if label_kind == "classes":
        return image, classes
    regions = torch.stack([classes > 0, (classes == 1) | (classes == 4), classes == 4]).float()
    return image, regions


def _elapsed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_presets(image, label, draws: int) -> dict[str, list[float]]:
    presets = {name: A.build_augment(name) for name in ("default", "strong")}
    for augment in presets.values():  # warm-up: first calls allocate and pick kernels
        augment(image, label, torch.Generator().manual_seed(0))
    seconds: dict[str, list[float]] = {name: [] for name in presets}
    for seed in range(1, draws + 1):
        for name, augment in presets.items():
            seconds[name].append(
                _elapsed(lambda: augment(image, label, torch.Generator().manual_seed(seed)))  # noqa: B023
            )
    return seconds


def strong_ops(n_channels: int) -> dict[str, A.AugmentParams]:
    """Each op of "strong" at a typical strength, on every channel."""
    both = [0.8, 1.2] * (n_channels // 2) + [0.8] * (n_channels % 2)
    return {
        "rotation (one plane, 100 deg) + scaling 1.2": A.RotateScaleParams(
            matrix=A.rotation_matrix([0.0, 0.0, 100.0], 3), scale=1.2
        ),
        "Gaussian noise std 0.15": A.NoiseParams(std=0.15, seed=1),
        "Gaussian blur sigma 1.0 (radius 3)": A.BlurParams(sigma=[1.0] * n_channels),
        "brightness": A.IntensityParams(scale=both, shift=[0.0] * n_channels),
        "contrast": A.ContrastParams(factor=both),
        "low resolution factor 1.5": A.LowResolutionParams(factor=[1.5] * n_channels),
        "inverted gamma": A.GammaParams(gamma=both, invert=True),
        "gamma": A.GammaParams(gamma=both),
        "mirroring 3 axes": A.FlipParams(axes=(0, 1, 2)),
    }


def time_ops(image, label, repeats: int) -> dict[str, float]:
    out = {}
    for name, record in strong_ops(image.shape[0]).items():
        record.apply(image, label)
        out[name] = statistics.median(_elapsed(lambda: record.apply(image, label)) for _ in range(repeats))  # noqa: B023
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--draws", type=int, default=200, help="samples per preset (default 200)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--label", choices=("regions", "classes"), default="regions")
    parser.add_argument("--op-repeats", type=int, default=20, help="calls per op for the breakdown")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    image, label = patch(args.label)

    seconds = time_presets(image, label, args.draws)
    stats = {
        name: {"median_ms": 1000 * statistics.median(s), "mean_ms": 1000 * statistics.fmean(s)}
        for name, s in seconds.items()
    }
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), image {tuple(image.shape)} "
        f"float32, label {tuple(label.shape)} {str(label.dtype).replace('torch.', '')}, "
        f"{args.draws} draws each\n"
    )
    print("| preset | median ms/sample | mean ms/sample |")
    print("|---|---:|---:|")
    for name, st in stats.items():
        print(f"| {name} | {st['median_ms']:.1f} | {st['mean_ms']:.1f} |")
    ratio = {k: stats["strong"][k] / stats["default"][k] for k in ("median_ms", "mean_ms")}
    print(f"| strong / default | {ratio['median_ms']:.2f}x | {ratio['mean_ms']:.2f}x |")
    extra_s = (stats["strong"]["mean_ms"] - stats["default"]["mean_ms"]) / 1000
    print(
        f"\nstrong adds {extra_s * 1000:.1f} ms per sample on average: {50 * extra_s:.2f} s per epoch of 50 "
        "one-sample iterations"
    )

    ops = time_ops(image, label, args.op_repeats)
    print("\n| op of strong, applied with p=1 | median ms |")
    print("|---|---:|")
    for name, s in ops.items():
        print(f"| {name} | {1000 * s:.1f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "threads": args.threads,
                    "label": args.label,
                    "draws": args.draws,
                    "presets": stats,
                    "ops_median_ms": {k: 1000 * v for k, v in ops.items()},
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
