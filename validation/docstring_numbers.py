"""Measure the figures that the code's docstrings used to quote, so that docs/ holds them with this command.

Issue 35: measurements live in docs, with a one-line pointer in the docstring. Each figure below is what a
docstring states as a reason for a design choice; this script measures it again on this machine:

* ``raw.pipeline.looks_skull_stripped``: the foreground volume (ml) of each sequence of the raw shared case
  (a head with skull and neck), against ``MAX_STRIPPED_ML``;
* ``raw.pipeline.Aligned.image``: the seconds to build a BraTS case's (C, X, Y, Z) float32 array once;
* ``raw.qc.check_modalities``: each raw channel's correlation with the templates after the full alignment;
* ``raw.register.rigid``: the seconds of a co-registration through a 3 mm and a 2 mm isotropic grid, and how
  far apart (mm, at the brain's corners) the two maps put the points;
* ``augment.functional._blur_channel``: milliseconds for a 64^3 channel, sigma 1, one thread, against
  separable ``conv1d`` and a full ``conv3d`` (replicate padding for all three);
* ``export._verify``: the largest logit and probability differences between the bundled model's ONNX export
  (ONNX Runtime) and PyTorch (float32), on one random input.

    nice -n 10 python validation/docstring_numbers.py ../shared/data [--skip-export]

Prints one JSON object. Timings are the best of ``--repeats`` runs (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medseg3d.io import read_volume

SEQUENCES = ("flair", "t1", "t1ce", "t2")


def best_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def raw_volumes(raw: Path) -> dict:
    from medseg3d.raw.pipeline import MAX_STRIPPED_ML, foreground

    out = {}
    for m in SEQUENCES:
        vol = read_volume(raw / f"{m}.nii.gz")
        out[m] = round(float(foreground(vol.array).sum()) * float(np.prod(vol.spacing)) / 1000.0, 1)
    return {"foreground_ml": out, "max_stripped_ml": MAX_STRIPPED_ML}


def image_seconds(case_dir: Path) -> float:
    """One conversion of a BraTS case's channels into one float32 (C, X, Y, Z) array, in a fresh process
    (the best of three processes)."""
    code = (
        "import time, numpy as np; from medseg3d.io import read_volume; "
        f"vols = [read_volume(p).array for p in sorted(__import__('pathlib').Path({str(case_dir)!r}).glob("
        "'*_[ft]*.nii.gz')) if not p.name.endswith('seg.nii.gz')]; "
        "t0 = time.perf_counter(); a = np.stack([v.astype(np.float32) for v in vols]); "
        "print(time.perf_counter() - t0, a.nbytes)"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
        for _ in range(3)
    ]
    return {"seconds": round(min(float(r[0]) for r in runs), 3), "megabytes": round(int(runs[0][1]) / 1e6, 1)}


def raw_alignment(raw: Path) -> dict:
    from medseg3d.raw.pipeline import BRATS_SPACE, align
    from medseg3d.raw.register import rigid

    volumes = {m: read_volume(raw / f"{m}.nii.gz") for m in SEQUENCES}
    aligned = align(volumes, BRATS_SPACE, "full")
    correlation = aligned.details.get("modality_correlation")
    rigid_out = {}
    maps = {}
    for spacing in (3.0, 2.0):
        t0 = time.perf_counter()
        fit = rigid(volumes["t1ce"], volumes["t2"], spacing=spacing, what="co-registration of t2 to t1ce")
        rigid_out[f"{spacing:g} mm seconds"] = round(time.perf_counter() - t0, 2)
        maps[spacing] = fit.matrix
    corners = np.array([[x, y, z, 1.0] for x in (-70, 70) for y in (-90, 90) for z in (-60, 60)])
    moved = (corners @ maps[3.0].T - corners @ maps[2.0].T)[:, :3]
    rigid_out["largest difference mm"] = round(float(np.linalg.norm(moved, axis=1).max()), 3)
    return {"modality_correlation": correlation, "rigid_t2_to_t1ce": rigid_out}


def blur_milliseconds(repeats: int) -> dict:
    from medseg3d.augment.functional import _blur_channel, gaussian_kernel

    torch.set_num_threads(1)
    x = torch.randn(64, 64, 64)
    weights = gaussian_kernel(1.0).tolist()
    k = torch.tensor(weights)
    r = len(weights) // 2

    def conv1d():
        y = x
        for axis in range(3):
            moved = y.movedim(axis, -1)
            shape = moved.shape
            flat = moved.reshape(-1, 1, shape[-1])
            flat = F.pad(flat, (r, r), mode="replicate")
            y = F.conv1d(flat, k.view(1, 1, -1)).reshape(shape).movedim(-1, axis)
        return y

    kernel3 = (k[:, None, None] * k[None, :, None] * k[None, None, :])[None, None]

    def conv3d():
        return F.conv3d(F.pad(x[None, None], (r,) * 6, mode="replicate"), kernel3)[0, 0]

    out = {
        "shifted views (ours)": best_seconds(lambda: _blur_channel(x, weights), repeats),
        "conv1d, separable": best_seconds(conv1d, repeats),
        "conv3d": best_seconds(conv3d, repeats),
    }
    assert torch.allclose(conv1d(), _blur_channel(x, weights), atol=1e-5)
    assert torch.allclose(conv3d(), _blur_channel(x, weights), atol=1e-5)
    torch.set_num_threads(2)
    return {name: round(1000 * s, 2) for name, s in out.items()} | {"taps": len(weights)}


def export_differences() -> dict:
    from medseg3d.export import export_model
    from medseg3d.models import load_model
    from medseg3d.models.exported import load_onnx_model

    loaded = load_model("brats", device="cpu", refine="none")
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model("brats", "onnx", Path(tmp) / "brats.onnx")
        onnx = load_onnx_model(path, device="cpu")
        multiple = int(loaded.meta.size_multiple or 16)
        x = torch.randn(
            1, loaded.meta.in_channels, *(3 * multiple,) * 3, generator=torch.Generator().manual_seed(0)
        )
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            expected = loaded.model.float()(x).float()
            actual = onnx.model(x).float()
    probs = torch.sigmoid if loaded.kind == "region" else (lambda t: torch.softmax(t, dim=1))
    return {
        "model": loaded.name,
        "kind": loaded.kind,
        "input": list(x.shape),
        "largest logit difference": float((actual - expected).abs().max()),
        "largest probability difference": float((probs(actual) - probs(expected)).abs().max()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder (brats2018/, raw_clinical/)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--only-export", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    raw = args.data / "raw_clinical" / "TCGA-FG-6692" / "raw"
    if args.only_export:
        print(json.dumps({"export": export_differences()}, indent=1))
        return 0
    result = {
        "cpu": platform.processor() or platform.machine(),
        "looks_skull_stripped": raw_volumes(raw),
        "Aligned.image": image_seconds(args.data / "brats2018" / "Brats18_2013_2_1"),
        "blur_ms": blur_milliseconds(args.repeats),
        **raw_alignment(raw),
    }
    if not args.skip_export:
        result["export"] = export_differences()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
