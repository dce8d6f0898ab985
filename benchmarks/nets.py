"""Time and memory of the Kayalibay network against two MONAI references on this CPU.

For ``kayalibay`` (4 inputs, 4 classes), MONAI ``SegResNet(init_filters=16)`` and an nnU-Net-like MONAI
``DynUNet``, on one 1 x 4 x 64 x 80 x 72 input, prints: parameters, forward time (eval mode, no grad),
forward + backward + Adam step time (train mode, cross-entropy), each the median over a few repeats after a
warm-up, and the peak resident memory of a fresh process running only that network. Ratios are relative to
``kayalibay``.

DynUNet uses four stages (32, 64, 128, 256 filters; instance norm, LeakyReLU, 3x3x3 kernels): 72 is not a
multiple of 16, so a fifth stage would not fit this input.

Run:  python benchmarks/nets.py [--repeats 3] [--threads 2] [--json results.json]
Timings on a shared machine vary with the load of other processes; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import time

INPUT_SHAPE = (1, 4, 64, 80, 72)
N_CLASSES = 4
NETWORKS = ("kayalibay", "SegResNet(16)", "DynUNet(nnU-Net-like)")


def _build(name: str):
    if name == "kayalibay":
        from medseg3d.nets import build_network

        return build_network("kayalibay", INPUT_SHAPE[1], N_CLASSES)
    if name == "SegResNet(16)":
        from monai.networks.nets import SegResNet

        return SegResNet(spatial_dims=3, in_channels=INPUT_SHAPE[1], out_channels=N_CLASSES, init_filters=16)
    if name == "DynUNet(nnU-Net-like)":
        from monai.networks.nets import DynUNet

        strides = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
        return DynUNet(
            spatial_dims=3,
            in_channels=INPUT_SHAPE[1],
            out_channels=N_CLASSES,
            kernel_size=[[3, 3, 3]] * 4,
            strides=strides,
            upsample_kernel_size=strides[1:],
            filters=(32, 64, 128, 256),
            norm_name=("INSTANCE", {"affine": True}),
            act_name=("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
            deep_supervision=False,
        )
    raise ValueError(name)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _median_ms(step, repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def _measure(name: str, repeats: int, threads: int, queue) -> None:
    """Runs in a fresh process so that the peak RSS belongs to this network alone."""
    import torch

    from medseg3d.train import make_grad_scaler, training_step

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    baseline_mb = _peak_rss_mb()
    model = _build(name)
    parameters = sum(p.numel() for p in model.parameters())
    image = torch.randn(*INPUT_SHAPE)
    target = torch.randint(0, N_CLASSES, (INPUT_SHAPE[0], *INPUT_SHAPE[2:]))

    model.eval()

    def forward() -> None:
        with torch.no_grad():
            model(image)

    forward_ms = _median_ms(forward, repeats)

    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = make_grad_scaler("fp32", "cpu")

    def train_step() -> None:  # the training loop's own step, in float32
        training_step(model, torch.nn.functional.cross_entropy, optimizer, scaler, [(image, target)])

    train_ms = _median_ms(train_step, repeats)
    queue.put(
        {
            "network": name,
            "parameters": parameters,
            "forward_ms": forward_ms,
            "train_step_ms": train_ms,
            "peak_rss_mb": _peak_rss_mb(),
            "rss_after_import_mb": baseline_mb,
        }
    )


def run(repeats: int = 3, threads: int = 2) -> list[dict]:
    """Measure every network, each in its own process, one after the other."""
    context = multiprocessing.get_context("spawn")
    results = []
    for name in NETWORKS:
        queue = context.Queue()
        process = context.Process(target=_measure, args=(name, repeats, threads, queue))
        process.start()
        results.append(queue.get())
        process.join()
    return results


def format_table(results: list[dict], repeats: int, threads: int) -> str:
    reference = results[0]
    header = (
        f"input {'x'.join(map(str, INPUT_SHAPE))}, {N_CLASSES} classes, {threads} threads, "
        f"median of {repeats} after 1 warm-up (shared CPU: other jobs add noise)"
    )
    lines = [
        header,
        "",
        "| network | params | forward ms | fwd+bwd+Adam ms | peak RSS MB | forward x | train x | RSS x |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results:
        lines.append(
            f"| {row['network']} | {row['parameters']:,} | {row['forward_ms']:.0f} "
            f"| {row['train_step_ms']:.0f} "
            f"| {row['peak_rss_mb']:.0f} | {row['forward_ms'] / reference['forward_ms']:.2f} "
            f"| {row['train_step_ms'] / reference['train_step_ms']:.2f} "
            f"| {row['peak_rss_mb'] / reference['peak_rss_mb']:.2f} |"
        )
    lines.append("")
    lines.append(
        "ratios are relative to kayalibay; peak RSS includes the Python + torch baseline of about "
        f"{reference['rss_after_import_mb']:.0f} MB"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats after one warm-up")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    results = run(args.repeats, args.threads)
    print(format_table(results, args.repeats, args.threads))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
