"""How well the raw-input pipeline works: BraTS cases made "raw", and the real clinical case.

1. ``simulated``: every case of a BraTS dataset is made to look as exported (``medseg3d.raw.simulate``: each
   channel on its own oblique grid, rotations up to 12 degrees, other orientation codes, 3 to 5.5 mm slices in
   some channels, motion of up to 3 mm / 3 degrees between sequences, scaled intensities; seeded per case),
   segmented by the bundled model through ``--preprocess auto`` (which picks the full pipeline), and scored on
   the T1ce's grid against the reference carried there. The same model on the original files gives the
   baseline. Also recorded: the co-registration error against the true motion (largest displacement over
   the brain's bounding box) and each step's seconds.
2. ``real``: the raw TCGA case end to end: brain volume, tumour volumes against the fused reference of the
   same case after another group's BraTS preprocessing, and the region Dice of the ``--space atlas`` output
   against that fused label (a sanity check: the fusion is not a manual truth).

Results go to ``--out`` (default ``/tmp/raw_pipeline.jsonl``), one JSON line per case, so an interrupted run
continues where it stopped; ``--report`` prints the tables from that file.

    python validation/raw_pipeline.py ../shared/data --part simulated --seed 2026
    python validation/raw_pipeline.py ../shared/data --part real
    python validation/raw_pipeline.py ../shared/data --report
    python validation/raw_pipeline.py ../shared/data --part simulated --template-fit rigid --out
    /tmp/rigid.jsonl
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

REGIONS = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}
MODALITIES = ("flair", "t1", "t1ce", "t2")


def region_dice(pred: np.ndarray, ref: np.ndarray) -> dict:
    from medseg3d.metrics import region_dice as dice_per_region

    return dice_per_region(pred, ref, REGIONS)


def _done(path: Path) -> set:
    if not path.exists():
        return set()
    return {
        json.loads(line)["case"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    }


def _append(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def registration_error(
    fitted: np.ndarray, true: np.ndarray, centre_lps: np.ndarray, half: float = 70.0
) -> float:
    """Largest displacement (mm) between two maps over the corners of a 140 mm cube around the brain."""
    corners = (
        np.array([[x, y, z] for x in (-half, half) for y in (-half, half) for z in (-half, half)])
        + centre_lps
    )
    a = corners @ fitted[:3, :3].T + fitted[:3, 3]
    b = corners @ true[:3, :3].T + true[:3, 3]
    return float(np.linalg.norm(a - b, axis=1).max())


def simulated(data: Path, out: Path, seed: int, limit: int | None, template_fit: str | None = None) -> None:
    from medseg3d.datasets import find_cases
    from medseg3d.io import read_volume
    from medseg3d.models import load_model
    from medseg3d.predict import segment_volumes
    from medseg3d.raw.simulate import simulate, true_rigid

    model = load_model("brats")
    done = _done(out)
    cases = find_cases(data / "brats2018")[:limit]
    for k, case in enumerate(cases):
        if case.case_id in done:
            continue
        vols = {m: v for m, _, v in case.select(MODALITIES).read_channels()}
        label = read_volume(case.label)
        t0 = time.perf_counter()
        original = segment_volumes(model, vols, preprocess="none")
        t_original = time.perf_counter() - t0
        sim = simulate(vols, label, seed=seed + k)
        t0 = time.perf_counter()
        raw = segment_volumes(model, sim.volumes, preprocess="auto", template_fit=template_fit)
        t_raw = time.perf_counter() - t0
        prepared = raw.prepared
        middle = (np.asarray(label.shape) - 1) / 2.0
        centre = (label.affine[:3, :3] @ middle + label.affine[:3, 3]) * np.array([-1, -1, 1.0])
        atlas = prepared.transforms.get("atlas", {})
        # BraTS files lie in the template's world: the true template map is the stripped channel's own motion
        atlas_error = (
            round(
                registration_error(np.asarray(atlas["matrix_lps"]), sim.motion[atlas["channel"]], centre), 3
            )
            if "matrix_lps" in atlas
            else None
        )
        coreg = {
            m: round(
                registration_error(
                    np.asarray(prepared.transforms[m]["matrix_lps"]), true_rigid(sim, "t1ce", m), centre
                ),
                3,
            )
            for m in MODALITIES
            if m != "t1ce" and "matrix_lps" in prepared.transforms.get(m, {})
        }
        row = {
            "case": case.case_id,
            "seed": seed + k,
            "mode": prepared.mode,
            "dice_original": region_dice(original.labels.array, label.array),
            "dice_raw": region_dice(raw.labels.array, sim.label.array),
            "coregistration_error_mm": coreg,
            "atlas_error_mm": atlas_error,
            "template_fit_kind": atlas.get("kind"),
            "brain_ml_atlas_grid": round(float(np.count_nonzero(prepared.brain)) / 1000, 1),
            "brain_ml_original": round(
                float(np.count_nonzero(np.any(np.stack([v.array != 0 for v in vols.values()]), 0)))
                * float(np.prod(label.spacing))
                / 1000,
                1,
            ),
            "settings": sim.settings,
            "warnings": prepared.warnings,
            "template_fit": prepared.details.get("template_fit"),
            "brain_ml": prepared.details.get("brain_ml"),
            "seconds": {
                "original": round(t_original, 1),
                "raw": round(t_raw, 1),
                **{s["step"]: s["seconds"] for s in prepared.steps},
                **raw.seconds,
            },
        }
        _append(out, row)
        print(
            json.dumps(
                {
                    k2: row[k2]
                    for k2 in (
                        "case",
                        "dice_original",
                        "dice_raw",
                        "coregistration_error_mm",
                        "atlas_error_mm",
                        "brain_ml_atlas_grid",
                        "brain_ml_original",
                    )
                }
            ),
            flush=True,
        )


def real(data: Path, out: Path, template_fit: str | None = None) -> None:
    from medseg3d.io import read_volume
    from medseg3d.models import load_model
    from medseg3d.predict import background_fill, grid_probabilities, probabilities_to_labels
    from medseg3d.raw.pipeline import model_space, prepare
    from medseg3d.volumes import volume_summary

    case = data / "raw_clinical" / "TCGA-FG-6692"
    t_start = time.perf_counter()
    model = load_model("brats")
    t0 = time.perf_counter()
    vols = {m: read_volume(case / "raw" / f"{m}.nii.gz") for m in MODALITIES}
    seconds = {"load model": round(t0 - t_start, 2), "read": round(time.perf_counter() - t0, 2)}
    prepared = prepare(vols, model_space(model.meta), "auto", progress=print, template_fit=template_fit)
    seconds.update({s["step"]: s["seconds"] for s in prepared.steps})
    t0 = time.perf_counter()
    probs = grid_probabilities(model, prepared.image(model.modalities), prepared.affine)
    seconds["segment"] = round(time.perf_counter() - t0, 2)
    atlas = probabilities_to_labels(model, probs)
    t0 = time.perf_counter()
    native = probabilities_to_labels(model, prepared.to_native(probs, background_fill(model)))
    seconds["map back"] = round(time.perf_counter() - t0, 2)
    fusion = read_volume(case / "brainles_sri24" / "fusion_labels.nii.gz")
    row = {
        "case": "TCGA-FG-6692 (real raw)",
        "mode": prepared.mode,
        "brain_ml": prepared.details.get("brain_ml"),
        "dice_atlas_vs_fusion": region_dice(atlas, fusion.array),
        "volumes_native_ml": volume_summary(native, prepared.native.spacing, model.scheme)["regions"],
        "volumes_atlas_ml": volume_summary(atlas, (1, 1, 1), model.scheme)["regions"],
        "volumes_fusion_ml": volume_summary(fusion.array, fusion.spacing, model.scheme)["regions"],
        "warnings": prepared.warnings,
        "template_fit": prepared.details.get("template_fit"),
        "seconds": seconds,
        "seconds_total_in_process": round(time.perf_counter() - t_start, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    _append(out, row)
    print(json.dumps(row, indent=1))


def report(out: Path) -> None:
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]
    sim = [r for r in rows if "dice_raw" in r]
    if sim:
        print(f"simulated raw cases: {len(sim)}")
        print("| region | original files | raw pipeline | difference (mean) | worst difference (case) |")
        print("|---|---|---|---|---|")
        for reg in REGIONS:
            o = np.array([r["dice_original"][reg] for r in sim])
            w = np.array([r["dice_raw"][reg] for r in sim])
            k = int(np.argmin(w - o))
            print(
                f"| {reg} | {o.mean():.3f} | {w.mean():.3f} | {np.mean(w - o):+.3f} | {(w - o)[k]:+.3f} "
                f"({sim[k]['case']}) |"
            )
        errs = [e for r in sim for e in r["coregistration_error_mm"].values()]
        print(
            f"co-registration error over the brain: median {np.median(errs):.2f} mm, "
            f"max {np.max(errs):.2f} mm"
        )
        atlas = [r["atlas_error_mm"] for r in sim if r.get("atlas_error_mm") is not None]
        if atlas:
            kinds = sorted({r.get("template_fit_kind") for r in sim})
            size = [
                r["brain_ml_atlas_grid"] / r["brain_ml_original"] - 1
                for r in sim
                if r.get("brain_ml_original")
            ]
            print(
                f"template fit ({', '.join(map(str, kinds))}) against BraTS's own alignment, largest "
                f"displacement over the brain: median {np.median(atlas):.2f} mm, max {np.max(atlas):.2f} mm; "
                f"brain size on the atlas grid against the original: median {np.median(size):+.1%}, range "
                f"{min(size):+.1%} to {max(size):+.1%}"
            )
        tot = [r["seconds"]["raw"] for r in sim]
        print(
            f"raw pipeline seconds per case (in process, model loaded): median {np.median(tot):.1f}, "
            f"max {np.max(tot):.1f}"
        )
        worst = sorted(sim, key=lambda r: r["dice_raw"]["WT"])[:3]
        print(
            "worst WT on raw input: "
            + "; ".join(
                f"{r['case']} {r['dice_raw']['WT']:.3f} (original {r['dice_original']['WT']:.3f})"
                for r in worst
            )
        )
    for r in rows:
        if "dice_atlas_vs_fusion" in r:
            print(json.dumps(r, indent=1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", nargs="?", default="../shared/data")
    p.add_argument("--part", choices=["simulated", "real", "both"], default="both")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--cases", type=int, help="only the first N cases")
    p.add_argument("--out", default="/tmp/raw_pipeline.jsonl")
    p.add_argument(
        "--template-fit",
        choices=["rigid", "affine"],
        help="the map to the template of the full pipeline (default: medseg3d's own)",
    )
    p.add_argument("--report", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    if not args.report:
        if args.part in ("real", "both"):
            real(Path(args.data), out, args.template_fit)
        if args.part in ("simulated", "both"):
            simulated(Path(args.data), out, args.seed, args.cases, args.template_fit)
    report(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
