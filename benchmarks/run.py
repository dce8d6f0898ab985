"""One command for speed and memory (issue 8): writes ``results.md`` and ``results.json``.

    python benchmarks/run.py [--quick] [--dataset DIR] [--case ID] [--out DIR]

By default into ``runs/benchmarks/`` (ignored by git), so a run leaves the committed
``benchmarks/results.md`` alone; ``--out benchmarks`` replaces it on purpose.

1. **Inference, one full BraTS case** (four 240x240x155 NIfTI files in, label NIfTI out) through the real
   ``medseg3d.predict.predict``, timed end to end and split into read / preprocess / network / postprocess /
   write, for several CPU paths (PyTorch eager fp32, channels-last, bf16 autocast, ``torch.compile``, ONNX
   Runtime, 1 or 2 threads); each path's labels are compared with eager fp32. Reference point: MONAI
   ``sliding_window_inference`` with SegResNet(init_filters=16), 128^3 windows, overlap 0.5, on the same
   case's brain crop at full resolution.
2. **Training throughput** of the ``brats`` preset (its patch, network, loss and augmentation, real prepared
   patches) and of MONAI SegResNet-16 on the same patches.
3. **Scaling with input size**: network time and peak memory for 64^3, 128^3, 192^3 and 240x240x155, whole
   volume and sliding window.
4. **Data pipeline**: cases/s of ``prepare`` and, per training step, seconds spent loading/augmenting vs
   computing.

The model is the bundled ``brats`` if installed, else the newest ``runs/*/model.safetensors`` (else a run's
``best``/``last.safetensors``), else a randomly initialised ``brats``-preset network: timing does not depend
on the weights (the report says which was used; label agreement between paths is only meaningful for
trained weights). Every configuration runs in its own process so that its peak resident memory
(``getrusage``) is its own. Figures are median / min / max over repeats. On a machine shared with other jobs
the medians move with their load: the report records the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CASE = "Brats18_2013_2_1"
# ignored by git: results.md in benchmarks/ changes only when asked
DEFAULT_OUT = REPO / "runs" / "benchmarks"
TARGETS = {"e2e_seconds": 10.0, "peak_rss_gib": 3.0, "monai_ratio": 3.0}


# ----------------------------------------------------------------------------------------------------------
# helpers (run in the workers)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


class _Adapter:
    """Attributes that inference reads (size_multiple, spatial_dims) around a transformed network."""

    @staticmethod
    def wrap(fn, like):
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.size_multiple = getattr(like, "size_multiple", None)
                self.spatial_dims = getattr(like, "spatial_dims", 3)
                self.inner = fn if isinstance(fn, torch.nn.Module) else None
                self.fn = fn

            def forward(self, x):
                return self.fn(x)

        return Wrapped()


def _variant_model(model_path: str, variant: str, onnx_path: str | None):
    """(LoadedModel, extra predict_probabilities kwargs, seconds spent preparing) for a CPU path."""
    import torch

    from medseg3d.models import load_model

    t0 = time.perf_counter()
    if variant.startswith("onnx"):
        return load_model(onnx_path, device="cpu"), {}, time.perf_counter() - t0
    loaded = load_model(model_path, device="cpu")
    extra = {"amp": True} if "bf16" in variant else {}
    model = loaded.model
    if "channels-last" in variant:
        model = model.to(memory_format=torch.channels_last_3d)
        inner = model
        loaded.model = _Adapter.wrap(
            lambda x: inner(x.contiguous(memory_format=torch.channels_last_3d)), inner
        )
    if "compile" in variant:
        compiled = torch.compile(model, dynamic=False)
        loaded.model = _Adapter.wrap(compiled, model)
    return loaded, extra, time.perf_counter() - t0


def worker_e2e(cfg: dict) -> dict:
    """End-to-end ``predict()`` on one case, instrumented stage by stage."""
    import numpy as np
    import torch

    import medseg3d.predict as predict_mod
    from medseg3d import datasets

    torch.set_num_threads(cfg["threads"])
    loaded, extra, setup_s = _variant_model(cfg["model"], cfg["variant"], cfg.get("onnx"))
    stage: dict[str, float] = {}

    def timed(name, fn, **more):
        def inner(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs, **more)
            finally:
                stage[name] = stage.get(name, 0.0) + time.perf_counter() - t0

        return inner

    original_load = datasets.Case.load
    datasets.Case.load = timed("read", original_load)
    predict_mod.preprocess = timed("preprocess", predict_mod.preprocess)
    predict_mod.predict_probabilities = timed("network", predict_mod.predict_probabilities, **extra)
    predict_mod.write_volume = timed("write", predict_mod.write_volume)
    out_dir = Path(cfg["tmp"]) / f"e2e-{cfg['variant']}-{cfg['threads']}"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "labels.nii.gz"
    runs = []
    first_s = None
    for i in range(cfg["repeats"] + 1):  # the first run warms up (and compiles, for torch.compile)
        stage.clear()
        t0 = time.perf_counter()
        predict_mod.predict(loaded, [cfg["case"]], target, force=True, progress=False)
        total = time.perf_counter() - t0
        if i == 0:
            first_s = total
            continue
        row = dict(stage, total=total)
        row["postprocess"] = total - sum(
            stage.get(k, 0.0) for k in ("read", "preprocess", "network", "write")
        )
        runs.append(row)
    from medseg3d.io import read_volume

    labels = read_volume(target).array
    np.save(out_dir / "labels.npy", labels)
    keys = ["read", "preprocess", "network", "postprocess", "write", "total"]
    return {
        "variant": cfg["variant"],
        "threads": cfg["threads"],
        "setup_seconds": setup_s,
        "first_run_seconds": first_s,
        "stages": {k: _stats([r.get(k, 0.0) for r in runs]) for k in keys},
        "labels": str(out_dir / "labels.npy"),
        "peak_rss_mb": _peak_rss_mb(),
        "label_counts": {int(v): int(c) for v, c in zip(*np.unique(labels, return_counts=True))},
    }


def worker_monai(cfg: dict) -> dict:
    """MONAI SegResNet-16 sliding windows on the brain crop at full resolution (the reference point), and our
    network on the same crop."""
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import SegResNet

    from medseg3d.datasets import find_cases
    from medseg3d.inference import predict_probabilities
    from medseg3d.models import load_model
    from medseg3d.preprocess import PrepConfig, preprocess

    torch.set_num_threads(cfg["threads"])
    case = next(c for c in find_cases(Path(cfg["case"]).parent) if c.case_id == Path(cfg["case"]).name)
    image, ref, _ = case.load(with_label=False)
    x, _, _ = preprocess(image, ref.affine, PrepConfig(crop="bbox"))
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    torch.manual_seed(0)
    net = SegResNet(spatial_dims=3, init_filters=16, in_channels=4, out_channels=3).eval()
    times = []
    for _ in range(cfg["repeats"]):
        t0 = time.perf_counter()
        with torch.no_grad():
            sliding_window_inference(t, (128, 128, 128), 1, net, overlap=0.5)
        times.append(time.perf_counter() - t0)
    monai_rss = _peak_rss_mb()
    ours = load_model(cfg["model"], device="cpu")
    ours_times = []
    for _ in range(cfg["repeats"]):
        t0 = time.perf_counter()
        predict_probabilities(ours.model, x, kind=ours.kind)
        ours_times.append(time.perf_counter() - t0)
    return {
        "crop_shape": list(x.shape[1:]),
        "segresnet_sw": _stats(times),
        "segresnet_peak_rss_mb": monai_rss,
        "ours_whole_same_crop": _stats(ours_times),
        "peak_rss_mb": _peak_rss_mb(),
    }


def worker_train(cfg: dict) -> dict:
    """Training steps of the brats preset (patch, loss, augmentation) with our network or SegResNet-16,
    through the training loop's own step (``medseg3d.train.training_step``)."""
    import numpy as np
    import torch

    from medseg3d.augment import build_augment
    from medseg3d.cache import open_cache
    from medseg3d.labels import get_scheme
    from medseg3d.losses import build_loss
    from medseg3d.nets import build_network
    from medseg3d.sampling import PatchSampler
    from medseg3d.train import TrainConfig, make_grad_scaler, plan_global_batch, region_targets, training_step

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    preset = TrainConfig.from_preset("brats")
    scheme = get_scheme(preset.labels)
    loss_fn = build_loss(preset.loss, n_classes=scheme.n_outputs)
    if cfg["net"] == "segresnet":
        from monai.networks.nets import SegResNet

        model = SegResNet(spatial_dims=3, init_filters=16, in_channels=4, out_channels=scheme.n_outputs)
    else:
        model = build_network(preset.net, 4, scheme.n_outputs, **preset.net_args)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=preset.lr)
    scaler = make_grad_scaler(preset.precision, "cpu")
    _, cases = open_cache(cfg["cache"])
    cases = list(cases.values())
    sampler = PatchSampler(preset.patch, preset.foreground_p, 8)
    augment = build_augment(preset.augment)
    np_rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    data_s, compute_s = [], []
    for i in range(cfg["steps"] + cfg["warmup"]):
        t0 = time.perf_counter()
        ((k, box, seed),) = plan_global_batch(cases, sampler, np_rng, gen, 1)
        image, label = sampler.crop(cases[k], box)
        image_t, label_t, _ = augment(
            torch.from_numpy(image), torch.from_numpy(label), torch.Generator().manual_seed(seed)
        )
        x, y = image_t[None], label_t[None].long()
        target = region_targets(y, scheme)
        t1 = time.perf_counter()
        training_step(model, loss_fn, optimizer, scaler, [(x, target)], precision=preset.precision)
        t2 = time.perf_counter()
        if i >= cfg["warmup"]:
            data_s.append(t1 - t0)
            compute_s.append(t2 - t1)
    step = [a + b for a, b in zip(data_s, compute_s)]
    voxels = int(np.prod(preset.patch))
    return {
        "net": cfg["net"],
        "patch": list(preset.patch),
        "params": sum(p.numel() for p in model.parameters()),
        "step_seconds": _stats(step),
        "data_seconds": _stats(data_s),
        "compute_seconds": _stats(compute_s),
        "it_per_s": 1.0 / statistics.median(step),
        "voxels_per_s": voxels / statistics.median(step),
        "peak_rss_mb": _peak_rss_mb(),
    }


def worker_scale(cfg: dict) -> dict:
    """Network time and peak memory for one input size, whole volume or sliding window."""
    import torch

    from medseg3d.inference import predict_probabilities
    from medseg3d.models import load_model

    torch.set_num_threads(cfg["threads"])
    loaded = load_model(cfg["model"], device="cpu")
    x = torch.randn(4, *cfg["size"], generator=torch.Generator().manual_seed(0))
    base = _rss_mb()
    patch = tuple(cfg["window"]) if cfg["mode"] == "window" else None
    times = []
    for _ in range(cfg["repeats"]):
        t0 = time.perf_counter()
        predict_probabilities(loaded.model, x, kind=loaded.kind, patch=patch, overlap=0.5, max_voxels=10**10)
        times.append(time.perf_counter() - t0)
    peak = _peak_rss_mb()
    return {
        "size": cfg["size"],
        "mode": cfg["mode"],
        "window": cfg.get("window") if patch else None,
        "seconds": _stats(times),
        "peak_rss_mb": peak,
        "rss_before_mb": base,
        "increase_mb": peak - base,
    }


WORKERS = {"e2e": worker_e2e, "monai": worker_monai, "train": worker_train, "scale": worker_scale}


# ----------------------------------------------------------------------------------------------------------
# the driver


def run_worker(kind: str, cfg: dict, timeout: float = 1800) -> dict:
    """Run one configuration in a fresh process; its peak RSS is its own."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = str(cfg.get("threads", os.cpu_count() or 1))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, json.dumps(cfg)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        print(f"  {kind} {cfg.get('variant', '')} failed: {' | '.join(tail)}", file=sys.stderr)
        return {"error": " | ".join(tail)}
    result = json.loads(lines[-1][len("RESULT ") :])
    result["wall_seconds"] = time.perf_counter() - t0
    return result


def choose_model(tmp: Path) -> tuple[str, str]:
    """(path, description): bundled brats > newest run model > random brats-preset network."""
    from medseg3d.models import bundled_models

    bundled = bundled_models()
    if "brats" in bundled:
        return str(bundled["brats"]), "bundled model `brats`"
    for pattern in ("runs/*/model.safetensors", "runs/*/best.safetensors", "runs/*/last.safetensors"):
        found = sorted(REPO.glob(pattern), key=lambda p: p.stat().st_mtime)
        if found:
            # a copy: a running job may replace its file while we read it
            copy = tmp / "model.safetensors"
            copy.write_bytes(found[-1].read_bytes())
            return str(copy), f"`{found[-1].relative_to(REPO)}` (trained; no bundled model installed)"
    import torch

    from medseg3d.checkpoint import save_model
    from medseg3d.labels import get_scheme
    from medseg3d.losses import build_loss
    from medseg3d.nets import build_network
    from medseg3d.train import TrainConfig, model_metadata

    cfg = TrainConfig.from_preset("brats", dataset="-", out="-")
    scheme = get_scheme(cfg.labels)
    torch.manual_seed(0)
    model = build_network(cfg.net, 4, scheme.n_outputs, **cfg.net_args)
    kind = getattr(build_loss(cfg.loss, n_classes=scheme.n_outputs), "kind", "multiclass")
    meta = model_metadata(cfg, scheme, ["flair", "t1", "t1ce", "t2"], 4, kind, model.size_multiple)
    path = tmp / "random-brats.safetensors"
    save_model(model, meta, path)
    return str(path), "randomly initialised `brats`-preset network (no bundled or trained model found)"


def prepare_section(dataset: Path, cases: list[str], tmp: Path) -> tuple[dict, Path]:
    from medseg3d.cache import prepare_dataset
    from medseg3d.train import TrainConfig

    subset = tmp / "subset"
    subset.mkdir()
    for c in cases:
        (subset / c).symlink_to(dataset / c, target_is_directory=True)
    cache = tmp / "cache"
    prep = TrainConfig.from_preset("brats").prep_config()
    t0 = time.perf_counter()
    summary = prepare_dataset(subset, cache, prep, "regions", progress=False)
    seconds = time.perf_counter() - t0
    n = len(summary["prepared"])
    return {
        "cases": n,
        "seconds": seconds,
        "cases_per_s": n / seconds,
        "settings": prep.to_dict(),
        "workers": "default (cores, at most 4)",
    }, cache


def _fmt(s: dict, unit: str = "s", digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} {unit} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def compare_labels(reference: str, other: str) -> dict:
    import numpy as np

    a, b = np.load(reference), np.load(other)
    differ = int((a != b).sum())
    wt_a, wt_b = a > 0, b > 0
    inter = int((wt_a & wt_b).sum())
    denom = int(wt_a.sum() + wt_b.sum())
    return {
        "voxels_differing": differ,
        "fraction": differ / a.size,
        "dice_wt": 2 * inter / denom if denom else 1.0,
    }


def _write_text(path: Path, text: str) -> None:
    """Temporary file, then rename: an interrupted benchmark never leaves half a report."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_report(results: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_text(out_dir / "results.json", json.dumps(results, indent=1))
    env = results["environment"]
    lines = [
        "# medseg3d benchmarks",
        "",
        f"Written by `python benchmarks/run.py{' --quick' if results['quick'] else ''}` on {env['date']}. "
        f"Machine: {env['cpu']}, {env['cores']} cores, {env['memory_gib']:.0f} GiB; torch {env['torch']}, "
        f"onnxruntime {env['onnxruntime']}, MONAI {env['monai']}. Load average before/after: "
        f"{env['load_before']} / {env['load_after']}"
        + (
            " - **the machine was shared with another job; medians "
            "are inflated by it, minima are closer to an idle machine.**"
            if env["load_before"][0] > 0.5 * env["cores"]
            else "."
        ),
        "",
        (
            f"Model: {results['model']}. Case: `{results['case']}` (4 x 240x240x155 NIfTI). Figures are "
            "median (min-max) over repeats; "
            "each configuration ran in its own process (peak RSS = its `ru_maxrss`)."
        ),
        "",
    ]
    e2e = results["inference"]
    lines += [
        "## 1. Inference on one full BraTS case, end to end",
        "",
        (
            "| path | threads | total | read | preprocess | network "
            "| postprocess | write | peak RSS | labels vs eager fp32 |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in e2e["variants"]:
        if "error" in r:
            lines.append(
                f"| {r['variant']} | {r.get('threads', '')} | failed: {r['error'][:80]} | | | | | | | |"
            )
            continue
        st = r["stages"]
        agree = r.get("agreement")
        agree_s = (
            "reference"
            if agree is None
            else f"{agree['voxels_differing']} voxels differ (WT Dice {agree['dice_wt']:.4f})"
        )
        lines.append(
            f"| {r['variant']} | {r['threads']} | {_fmt(st['total'])} | {st['read']['median']:.2f} | "
            f"{st['preprocess']['median']:.2f} | {st['network']['median']:.2f} | "
            f"{st['postprocess']['median']:.2f} | {st['write']['median']:.2f} | "
            f"{r['peak_rss_mb'] / 1024:.2f} GiB | {agree_s} |"
        )
    extra = [
        r for r in e2e["variants"] if r.get("variant", "").startswith("torch.compile") and "error" not in r
    ]
    for r in extra:
        lines.append(f"\n`torch.compile`: first run (compilation) {r['first_run_seconds']:.1f} s.")
    m = e2e.get("monai", {})
    if "segresnet_sw" in m:
        best = min(
            (r for r in e2e["variants"] if "error" not in r), key=lambda r: r["stages"]["total"]["median"]
        )
        default = e2e["default_variant"]
        ratio = m["segresnet_sw"]["median"] / default["stages"]["total"]["median"]
        reference = (
            f"Reference: MONAI `sliding_window_inference` (128^3 windows, overlap 0.5, batch 1) with "
            f"SegResNet(init_filters=16) on the brain crop at full resolution "
            f"({'x'.join(map(str, m['crop_shape']))} voxels): network {_fmt(m['segresnet_sw'])}, peak RSS "
            f"{m['segresnet_peak_rss_mb'] / 1024:.2f} GiB. Our network, whole volume on the same 1 mm crop: "
            f"{_fmt(m['ours_whole_same_crop'])}."
        )
        ratios = (
            f"- Ratio MONAI reference network time / medseg3d **end-to-end** time (default path "
            f"`{default['variant']}`): **{ratio:.1f}x** (median), "
            f"{m['segresnet_sw']['min'] / default['stages']['total']['min']:.1f}x (min); fastest path "
            f"`{best['variant']}` ({best['threads']} threads): "
            f"{m['segresnet_sw']['median'] / best['stages']['total']['median']:.1f}x."
        )
        same = (
            f"- Network to network on the same 1 mm crop: "
            f"{m['segresnet_sw']['median'] / m['ours_whole_same_crop']['median']:.1f}x."
        )
        targets = (
            f"- Targets: end to end < {TARGETS['e2e_seconds']:.0f} s (default path: "
            f"{default['stages']['total']['median']:.1f} s median), peak RSS < {TARGETS['peak_rss_gib']:.0f} "
            f"GiB ({default['peak_rss_mb'] / 1024:.2f} GiB), >= {TARGETS['monai_ratio']:.0f}x faster than "
            f"the reference ({ratio:.1f}x)."
        )
        lines += ["", reference, "", ratios, same, targets]
    tr = results["training"]
    lines += [
        "",
        "## 2. Training throughput (brats preset: patch, loss, augmentation; batch 1)",
        "",
        "| network | parameters | step | it/s | voxels/s | of which data | compute | peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in tr:
        if "error" in r:
            lines.append(f"| {r.get('net', '?')} | failed: {r['error'][:80]} | | | | | | |")
            continue
        lines.append(
            f"| {r['net']} | {r['params']:,} | {_fmt(r['step_seconds'])} | {r['it_per_s']:.2f} | "
            f"{r['voxels_per_s'] / 1e6:.2f} M | {r['data_seconds']['median']:.3f} s | "
            f"{r['compute_seconds']['median']:.2f} s | {r['peak_rss_mb'] / 1024:.2f} GiB |"
        )
    ok = [r for r in tr if "error" not in r]
    if len(ok) == 2:
        lines.append(
            f"\nRatio (it/s, medseg3d / SegResNet-16 on the same {'x'.join(map(str, ok[0]['patch']))} "
            f"patches): **{ok[0]['it_per_s'] / ok[1]['it_per_s']:.2f}x**."
        )
    lines += [
        "",
        "## 3. Network time and peak memory by input size (4 channels, default threads)",
        "",
        "| input | mode | time | peak RSS | increase over the process before inference |",
        "|---|---|---|---|---|",
    ]
    for r in results["scaling"]:
        if "error" in r:
            lines.append(f"| {r.get('size')} | {r.get('mode')} | failed: {r['error'][:80]} | | |")
            continue
        mode = (
            r["mode"]
            if r["mode"] == "whole"
            else f"sliding window {'x'.join(map(str, r['window']))}, overlap 0.5"
        )
        lines.append(
            f"| {'x'.join(map(str, r['size']))} | {mode} | {_fmt(r['seconds'])} | "
            f"{r['peak_rss_mb'] / 1024:.2f} GiB | {r['increase_mb'] / 1024:.2f} GiB |"
        )
    dp = results["data"]
    pr = dp["prepare"]
    lines += [
        "",
        "## 4. Data pipeline",
        "",
        (
            f"- `prepare` (brats preset preprocessing: {pr['settings']}): {pr['cases']} cases in "
            f"{pr['seconds']:.1f} s = **{pr['cases_per_s']:.2f} cases/s** ({pr['workers']} workers)."
        ),
    ]
    for r in ok:
        share = r["data_seconds"]["median"] / r["step_seconds"]["median"]
        lines.append(
            f"- Training step ({r['net']}): loading + augmenting {r['data_seconds']['median']:.3f} s vs "
            f"computing {r['compute_seconds']['median']:.2f} s: the step waits for data {100 * share:.0f}% "
            "of the time (the loop is synchronous: no loader process, so every data second is a wait)."
        )
    lines += ["", "## Notes", ""] + [f"- {n}" for n in results["notes"]]
    _write_text(out_dir / "results.md", "\n".join(lines) + "\n")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats and variants: a few minutes")
    p.add_argument(
        "--dataset",
        type=Path,
        default=Path(os.environ.get("MEDSEG3D_DATA", REPO.parent / "shared" / "data")) / "brats2018",
    )
    p.add_argument("--case", default=DEFAULT_CASE)
    p.add_argument(
        "--out",
        "--out-dir",
        dest="out_dir",
        type=Path,
        default=DEFAULT_OUT,
        help="folder for results.md and results.json (default runs/benchmarks, ignored by git; "
        "--out benchmarks updates the committed results)",
    )
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        result = WORKERS[args.worker[0]](json.loads(args.worker[1]))
        print("RESULT " + json.dumps(result))
        return 0

    import onnxruntime
    import torch

    quick = args.quick
    cores = os.cpu_count() or 1
    case_dir = args.dataset / args.case
    if not case_dir.is_dir():
        print(f"no case {case_dir}; pass --dataset and --case", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    load_before = [round(v, 2) for v in os.getloadavg()]
    notes = []
    with tempfile.TemporaryDirectory(prefix="medseg3d-bench-") as tmp_s:
        tmp = Path(tmp_s)
        model_path, model_desc = choose_model(tmp)
        print(f"model: {model_desc}")
        from medseg3d.export import export_model

        onnx_path = tmp / "model.onnx"
        export_model(model_path, "onnx", onnx_path)

        # 4a first: the prepared cache feeds the training benchmark
        cases = sorted(c.name for c in args.dataset.iterdir() if c.is_dir())
        cases = cases[:3] if quick else cases
        print(f"prepare: {len(cases)} cases")
        prep, cache = prepare_section(args.dataset, cases, tmp)

        repeats = 2 if quick else 5
        variants = [("eager-fp32", cores), ("eager-fp32", 1), ("channels-last", cores)]
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            variants += [("bf16-autocast", cores)]
        else:
            notes.append("bf16 autocast skipped: this CPU has no native bf16 support (oneDNN).")
        variants += [("onnxruntime", cores), ("onnxruntime", 1)]
        if not quick:
            variants += [("torch.compile", cores), ("channels-last+bf16", cores)]
        else:
            notes.append(
                "--quick: torch.compile (about 30 s of compilation here, no gain when last measured) and "
                "channels-last+bf16 are left out; run without --quick for them."
            )
        inference = {"variants": []}
        base = {
            "model": model_path,
            "onnx": str(onnx_path),
            "case": str(case_dir),
            "tmp": str(tmp),
            "repeats": repeats,
        }
        for variant, threads in variants:
            print(f"inference: {variant}, {threads} thread(s)")
            r = run_worker("e2e", base | {"variant": variant, "threads": threads})
            r.setdefault("variant", variant)
            r.setdefault("threads", threads)
            inference["variants"].append(r)
        ref = inference["variants"][0]
        for r in inference["variants"][1:]:
            if "error" not in r and "error" not in ref:
                r["agreement"] = compare_labels(ref["labels"], r["labels"])
        inference["default_variant"] = next(
            r for r in inference["variants"] if r.get("variant") == "eager-fp32" and r.get("threads") == cores
        )
        print("inference: MONAI SegResNet-16 reference")
        inference["monai"] = run_worker(
            "monai",
            {"model": model_path, "case": str(case_dir), "threads": cores, "repeats": 1 if quick else 3},
        )

        training = []
        for net in ("medseg3d", "segresnet"):
            print(f"training: {net}")
            training.append(
                run_worker(
                    "train",
                    {
                        "net": net,
                        "cache": str(cache),
                        "threads": cores,
                        "steps": 2 if quick else 10,
                        "warmup": 1 if quick else 2,
                    },
                )
            )

        from medseg3d.models import load_model

        window = load_model(model_path, device="cpu").meta.patch or (128, 128, 128)
        scaling = []
        sizes = [[64, 64, 64], [128, 128, 128], [192, 192, 192], [240, 240, 155]]
        for size in sizes:
            for mode in ("whole", "window"):
                # sliding windows only where they matter (--quick: only the full volume)
                if mode == "window" and (size[0] < 128 or (quick and size != [240, 240, 155])):
                    continue
                print(f"scaling: {'x'.join(map(str, size))} {mode}")
                scaling.append(
                    run_worker(
                        "scale",
                        {
                            "model": model_path,
                            "size": size,
                            "mode": mode,
                            "window": window,
                            "threads": cores,
                            "repeats": 1 if quick else 3,
                        },
                    )
                )

    notes.append(f"Benchmark wall time {time.perf_counter() - t_start:.0f} s.")
    results = {
        "quick": quick,
        "model": model_desc,
        "case": args.case,
        "environment": {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "cpu": _cpu_name(),
            "cores": cores,
            "memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "monai": _monai_version(),
            "python": platform.python_version(),
            "load_before": load_before,
            "load_after": [round(v, 2) for v in os.getloadavg()],
        },
        "inference": inference,
        "training": training,
        "scaling": scaling,
        "data": {"prepare": prep},
        "notes": notes,
    }
    write_report(results, args.out_dir)
    print(f"wrote {args.out_dir / 'results.md'} and results.json")
    return 0


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _monai_version() -> str:
    import monai

    return monai.__version__


if __name__ == "__main__":
    sys.exit(main())
