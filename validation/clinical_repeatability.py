"""How far ``medseg3d compare`` can be trusted: repeat scans with no change, and scans with a known change.

Two stages, each resumable (work already done is kept and skipped):

``segment``: for each shared BraTS case (in order), the project's raw simulator (:mod:`medseg3d.raw.simulate`)
makes two "acquisitions" of the same head, each with its own seed: its own oblique grids, axis codes, voxel
sizes and thick slices, motion between sequences and intensity gains. Each is segmented as ``compare`` does it
(:func:`medseg3d.clinical.compare.segment_timepoint`: full raw pipeline, labels on the BraTS grid). For every
third case a third acquisition is made from a **changed** copy of the case: the tumour and its surroundings
scaled about the tumour's centre (:func:`scale_tumour`, alternately shrunk to 25% and grown to 160% of its
volume), the reference scaled with it, so the true change is known. Each time point is saved (labels and T1ce
on the BraTS grid, the seconds it took) under ``--work``.

``measure``: runs :func:`medseg3d.clinical.compare.compare_timepoints` on each saved pair (A->B, and A->C for
the changed ones) and writes one JSON with every pair's volumes, products and categories, and the summary:
within-pair coefficient of variation (CoV) of WT/TC/ET volume and of the ET sum of products, the ICC(3,1)
(two-way mixed, consistency, single measure, as test-retest studies report it) of the volumes, the false
calls (any category other than stable on a pair without change), and for the changed pairs the measured
against the true relative change.

    OMP_NUM_THREADS=1 nice -n 10 python validation/clinical_repeatability.py segment --work runs/clinical_rep
    OMP_NUM_THREADS=1 nice -n 10 python validation/clinical_repeatability.py measure --work runs/clinical_rep
    \
        --out docs/runs/clinical_repeatability.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

MODALITIES = ("flair", "t1", "t1ce", "t2")
REGIONS = ("WT", "TC", "ET")
SEEDS = {"A": 1000, "B": 2000, "C": 3000}
CHANGE_EVERY = 3
SCALES = (0.25, 1.6)  # volume factors of the changed scans, alternately: a response and a progression
# (the first runs shrank to 0.35: -65% in volume and -50% in product, on both thresholds; kept, recorded per
# scan)


def scale_tumour(vols: dict, label, volume_factor: float, margin_mm: float = 20.0):
    """The case with its tumour scaled about the tumour's centre by ``volume_factor`` (in volume).

    Inside the sphere of radius R0 that holds the whole tumour, everything is scaled by s = factor^(1/3) about
    the centre (the tumour keeps its shape and texture, its volume changes by exactly the factor up to the
    voxels); between R0 and R0 + ``margin_mm`` the surrounding brain is stretched or compressed radially to
    meet the unchanged brain outside. Images are resampled linearly, the reference by nearest neighbour.

    Returns ``(volumes, label)`` as new Volumes on the same grid.
    """
    from scipy import ndimage

    ref = np.asarray(label.array)
    tumour = np.argwhere(ref > 0).astype(np.float64)
    spacing = np.asarray(label.spacing, dtype=np.float64)
    centre = tumour.mean(axis=0)
    r0 = float(np.max(np.linalg.norm((tumour - centre) * spacing, axis=1))) + 2.0
    s = volume_factor ** (1.0 / 3.0)
    r1 = max(r0, s * r0) + margin_mm
    grid = np.indices(ref.shape, dtype=np.float64)
    offset = (grid - centre[:, None, None, None]) * spacing[:, None, None, None]
    r = np.sqrt(np.sum(offset**2, axis=0))
    inner = s * r0
    # source radius for each output radius: r / s inside, linear from (s r0, r0) to (r1, r1), identity beyond
    source = np.where(r <= inner, r / s, np.where(r < r1, r0 + (r - inner) * (r1 - r0) / (r1 - inner), r))
    factor = np.where(r > 0, source / np.maximum(r, 1e-9), 1.0 / s)
    coords = centre[:, None, None, None] + offset * factor / spacing[:, None, None, None]
    out = {
        m: v.with_array(
            ndimage.map_coordinates(np.asarray(v.array, dtype=np.float32), coords, order=1).astype(np.float32)
        )
        for m, v in vols.items()
    }
    new_label = label.with_array(ndimage.map_coordinates(ref, coords, order=0).astype(np.uint8))
    return out, new_label


def _region_volumes_ml(labels: np.ndarray, spacing) -> dict:
    from medseg3d.labels import get_scheme
    from medseg3d.volumes import volume_summary

    return volume_summary(labels, spacing, get_scheme("brats"))["regions"]


def segment_stage(data: Path, work: Path, limit: int | None) -> None:
    from medseg3d.clinical.compare import save_timepoint, segment_timepoint
    from medseg3d.datasets import find_cases
    from medseg3d.io import read_volume
    from medseg3d.models import load_model
    from medseg3d.raw.simulate import simulate

    model = load_model("brats")
    cases = find_cases(data / "brats2018")[:limit]
    for k, case in enumerate(cases):
        scans = ["A", "B"] + (["C"] if k % CHANGE_EVERY == 0 else [])
        todo = [s for s in scans if not (work / case.case_id / s / "timepoint.json").exists()]
        if not todo:
            continue
        vols = {m: v for m, _, v in case.select(MODALITIES).read_channels()}
        label = read_volume(case.label)
        truth = {"original_ml": _region_volumes_ml(label.array, label.spacing)}
        for scan in todo:
            source_vols, source_label = vols, label
            if scan == "C":
                factor = SCALES[(k // CHANGE_EVERY) % len(SCALES)]
                source_vols, source_label = scale_tumour(vols, label, factor)
                truth.update(
                    volume_factor=factor, changed_ml=_region_volumes_ml(source_label.array, label.spacing)
                )
            sim = simulate(source_vols, source_label, seed=SEEDS[scan] + k)
            t0 = time.perf_counter()
            point = segment_timepoint(model, sim.volumes, source=f"{case.case_id} scan {scan} (simulated)")
            seconds = time.perf_counter() - t0
            save_timepoint(
                point,
                work / case.case_id / scan,
                extra={
                    "truth": truth,
                    "seconds": round(seconds, 1),
                    "seed": SEEDS[scan] + k,
                    "settings": sim.settings,
                },
            )
            print(
                json.dumps(
                    {
                        "case": case.case_id,
                        "scan": scan,
                        "seconds": round(seconds, 1),
                        "volumes_ml": point.volumes_ml,
                    }
                ),
                flush=True,
            )


def icc_3_1(pairs: np.ndarray) -> float:
    """ICC(3,1) of n subjects x k repeats (two-way mixed, consistency, single measure; Shrout and Fleiss)."""
    x = np.asarray(pairs, dtype=np.float64)
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * np.sum((x.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((x.mean(axis=0) - grand) ** 2)
    ss_err = np.sum((x - grand) ** 2) - ss_rows - ss_cols
    ms_rows, ms_err = ss_rows / (n - 1), ss_err / ((n - 1) * (k - 1))
    return float((ms_rows - ms_err) / (ms_rows + (k - 1) * ms_err))


def within_cov(pairs: np.ndarray) -> float:
    """Within-subject coefficient of variation (root mean square of each pair's SD over its mean), in %."""
    x = np.asarray(pairs, dtype=np.float64)
    x = x[x.mean(axis=1) > 0]
    if not len(x):
        return float("nan")
    sd = x.std(axis=1, ddof=1)
    return float(100.0 * np.sqrt(np.mean((sd / x.mean(axis=1)) ** 2)))


def measure_stage(work: Path, out: Path) -> dict:
    from medseg3d.clinical import rano
    from medseg3d.clinical.compare import compare_timepoints, load_timepoint
    from medseg3d.clinical.diameters import region_diameters
    from medseg3d.io.atomic import write_json_atomic

    def spd_by_diameter_rule(point):  # the other slice rule, to compare the two on the same labels
        return region_diameters(point.labels.array == 4, point.labels.affine, rule="diameter")[
            "sum_products_mm2"
        ]

    rows = []
    for case_dir in sorted(p for p in work.iterdir() if p.is_dir()):
        if not (case_dir / "A" / "timepoint.json").exists():
            continue
        prior = load_timepoint(case_dir / "A")
        for scan in ("B", "C"):
            if not (case_dir / scan / "timepoint.json").exists():
                continue
            current = load_timepoint(case_dir / scan)
            t0 = time.perf_counter()
            result = compare_timepoints(prior, current)
            seconds = time.perf_counter() - t0
            truth = json.loads((case_dir / scan / "timepoint.json").read_text())["extra"]["truth"]
            row = {
                "case": case_dir.name,
                "pair": f"A-{scan}",
                "compare_seconds": round(seconds, 1),
                "registration": result["registration"],
                "volumes_ml": {
                    r: [
                        result["regions"][r]["volume_ml"]["prior"],
                        result["regions"][r]["volume_ml"]["current"],
                    ]
                    for r in REGIONS
                },
                "sum_products_mm2": [
                    result["regions"]["ET"]["sum_products_mm2"]["prior"],
                    result["regions"]["ET"]["sum_products_mm2"]["current"],
                ],
                "sum_products_mm2_diameter_rule": [
                    spd_by_diameter_rule(prior),
                    spd_by_diameter_rule(current),
                ],
                "rano_2010": result["response"]["rano_2010"]["category"],
                "rano_2_volumetric": result["response"]["rano_2_volumetric"]["category"],
                "new_lesions": {r: len(result["regions"][r]["new_lesions"]) for r in REGIONS},
                "vanished_lesions": {r: len(result["regions"][r]["vanished_lesions"]) for r in REGIONS},
            }
            et = result["regions"]["ET"]["lesions"]
            row["rano_2010_diameter_rule"] = rano.rano_2010(
                *row["sum_products_mm2_diameter_rule"],
                prior_lesions=et["prior"],
                current_lesions=et["current"],
                new_measurable=sum(le["measurable"] for le in result["regions"]["ET"]["new_lesions"]),
            )["category"]
            if scan == "C":
                row["true_relative_change_percent"] = {
                    r: round(100.0 * (truth["changed_ml"][r] / truth["original_ml"][r] - 1.0), 1)
                    if truth["original_ml"][r]
                    else None
                    for r in REGIONS
                }
                row["measured_relative_change_percent"] = {
                    r: result["regions"][r]["relative_change_percent"] for r in REGIONS
                }
                row["volume_factor"] = truth["volume_factor"]
            rows.append(row)
            print(
                json.dumps(
                    {k: row[k] for k in ("case", "pair", "volumes_ml", "rano_2010", "rano_2_volumetric")}
                ),
                flush=True,
            )
    same = [r for r in rows if r["pair"] == "A-B"]
    summary: dict = {"pairs_without_change": len(same), "pairs_with_change": len(rows) - len(same)}
    if len(same) >= 2:
        for region in REGIONS:
            v = np.array([r["volumes_ml"][region] for r in same])
            summary[f"cov_volume_{region}_percent"] = round(within_cov(v), 2)
            summary[f"icc_volume_{region}"] = round(icc_3_1(v), 4)
        spd = np.array([r["sum_products_mm2"] for r in same])
        summary["cov_sum_products_ET_percent"] = round(within_cov(spd), 2)
        spd_d = np.array([r["sum_products_mm2_diameter_rule"] for r in same])
        summary["cov_sum_products_ET_percent_diameter_rule"] = round(within_cov(spd_d), 2)
        summary["icc_sum_products_ET"] = round(icc_3_1(spd), 4)
        summary["false_calls_rano_2010_diameter_rule"] = sum(
            r["rano_2010_diameter_rule"] not in ("stable", "not assessable") for r in same
        )
        # "not assessable" (no enhancing tumour at either scan) is no call; anything else but stable is false
        summary["false_calls_rano_2010"] = sum(
            r["rano_2010"] not in ("stable", "not assessable") for r in same
        )
        summary["false_calls_rano_2_volumetric"] = sum(
            r["rano_2_volumetric"] not in ("stable", "not assessable") for r in same
        )
        summary["pairs_with_new_or_vanished_lesions"] = {
            reg: sum(1 for r in same if r["new_lesions"][reg] or r["vanished_lesions"][reg])
            for reg in REGIONS
        }
        summary["largest_abs_change_percent"] = {
            reg: round(
                max(abs(100 * (b - a) / a) for a, b in (r["volumes_ml"][reg] for r in same) if a > 0), 1
            )
            for reg in REGIONS
        }
        summary["calls_without_change"] = {
            key: sorted({r[key] for r in same}) for key in ("rano_2010", "rano_2_volumetric")
        }
    changed = [r for r in rows if r["pair"] != "A-B"]
    if changed:
        errors = {
            reg: [
                r["measured_relative_change_percent"][reg] - r["true_relative_change_percent"][reg]
                for r in changed
                if r["true_relative_change_percent"][reg] is not None
                and r["measured_relative_change_percent"][reg] is not None
            ]
            for reg in REGIONS
        }
        summary["change_error_percent_points"] = {
            reg: {
                "median_abs": round(float(np.median(np.abs(e))), 1),
                "max_abs": round(float(np.max(np.abs(e))), 1),
            }
            for reg, e in errors.items()
            if e
        }
    if rows:
        seg = [
            json.loads((work / r["case"] / scan / "timepoint.json").read_text())["extra"]["seconds"]
            for r in rows
            for scan in ("A", r["pair"][-1])
        ]
        summary["seconds"] = {
            "segment_median": round(float(np.median(seg)), 1),
            "segment_max": round(max(seg), 1),
            "compare_median": round(float(np.median([r["compare_seconds"] for r in rows])), 1),
        }
        summary["registration_shift_at_centre_mm"] = {
            "median": round(float(np.median([r["registration"]["shift_at_centre_mm"] for r in rows])), 2),
            "max": round(max(r["registration"]["shift_at_centre_mm"] for r in rows), 2),
        }
    record = {"schema": 1, "command": " ".join(sys.argv), "rows": rows, "summary": summary}
    write_json_atomic(record, out)
    print(json.dumps(summary, indent=1))
    return record


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=("segment", "measure"))
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    p.add_argument("--work", type=Path, default=Path("runs/clinical_rep"))
    p.add_argument("--out", type=Path, default=Path("docs/runs/clinical_repeatability.json"))
    p.add_argument("--limit", type=int, default=None)
    args = p.parse_args(argv)
    if args.stage == "segment":
        segment_stage(args.data, args.work, args.limit)
    else:
        measure_stage(args.work, args.out)


if __name__ == "__main__":
    main()
