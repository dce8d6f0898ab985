"""Time the augmentation ops on brain-crop-sized samples, on one CPU thread.

Prints a Markdown table of median milliseconds per call for a full-size crop (4 x 140 x 170 x 140) and a
2x down-sampled one (4 x 72 x 88 x 72), each with an int64 label map (rotation includes the label).

    python benchmarks/augment.py [--repeats 7] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from medseg3d import augment as A

SIZES = {"full 4x140x170x140": (140, 170, 140), "half 4x72x88x72": (72, 88, 72)}


def _sample(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn((4, *shape), generator=g)
    label = torch.randint(0, 4, shape, generator=g)
    # a background shell of zeros, as after brain cropping and z-scoring
    image[:, :8] = 0
    image[:, -8:] = 0
    label[:8] = 0
    label[-8:] = 0
    return image, label


def _median_ms(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _pipeline(name, image, label):
    augment = A.build_augment(name)
    state = {"seed": 0}

    def run():
        state["seed"] += 1
        augment(image, label, torch.Generator().manual_seed(state["seed"]))

    return run


def cases(image, label):
    gen = torch.Generator().manual_seed(0)
    all_planes = A.rotation_matrix([17.0, -23.0, 31.0], 3)
    return {
        "flip 1 axis": lambda: A.flip(image, label, [0]),
        "flip 3 axes": lambda: A.flip(image, label, [0, 1, 2]),
        "rotate plane (1,2) + scale": lambda: A.rotate_scale(image, label, [0, 0, 23.0], 1.1),
        "rotate plane (0,2) + scale": lambda: A.rotate_scale(image, label, [0, 23.0, 0], 1.1),
        "rotate plane (0,1) + scale": lambda: A.rotate_scale(image, label, [23.0, 0, 0], 1.1),
        "rotate plane (0,1)": lambda: A.rotate_scale(image, label, [23.0, 0, 0]),
        "scale only": lambda: A.rotate_scale(image, label, [0, 0, 0], 1.1),
        "rotate all planes + scale (3D grid)": lambda: A.rotate_scale(image, label, all_planes, 1.1),
        "rotate plane (0,1), label one-hot": lambda: A.rotate_scale(
            image, label, [23.0, 0, 0], label_order=1
        ),
        "intensity": lambda: A.intensity(image, [1.1, 0.9, 1.05, 0.95], [0.1, -0.1, 0.05, 0.0]),
        "gamma": lambda: A.gamma(image, [0.8, 1.3, 0.9, 1.2]),
        "gaussian noise": lambda: A.gaussian_noise(image, 0.05, gen),
        "pipeline paper (mean over seeds)": _pipeline("paper", image, label),
        "pipeline default (mean over seeds)": _pipeline("default", image, label),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    results = {}
    for size_name, shape in SIZES.items():
        image, label = _sample(shape)
        results[size_name] = {}
        for name, fn in cases(image, label).items():
            repeats = args.repeats * 3 if name.startswith("pipeline") else args.repeats
            if name.startswith("pipeline"):  # random draws: report the mean over many seeds
                fn()
                start = time.perf_counter()
                for _ in range(repeats):
                    fn()
                ms = (time.perf_counter() - start) * 1000 / repeats
            else:
                ms = _median_ms(fn, repeats)
            results[size_name][name] = round(ms, 1)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), numpy {np.__version__}\n")
    names = list(next(iter(results.values())))
    print("| op | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{results[s][name]:.1f} ms" for s in results) + " |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {"threads": args.threads, "torch": torch.__version__, "median_ms": results}, f, indent=2
            )


if __name__ == "__main__":
    main()
