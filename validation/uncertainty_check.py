"""Does the uncertainty mean something? ECE before/after temperature scaling and confidence vs Dice.

Runs the bundled model on the shared cases it was not trained on (the 7 CBICA cases added after its training:
its card lists the 20 it saw), each with 8 mirrored passes
(:func:`medseg3d.uncertainty.mirrored_uncertainty`), and measures on every case:

* the time of one pass (what ``predict`` does by default), of 2 passes and of 8 passes (first case only);
* Dice WT/TC/ET of the mirrored prediction against the reference, and the per-case confidence;
* the ECE (15 equal-width bins, over the brain and over the tumour zone = reference or predicted tumour grown
  by 5 voxels; top-label for softmax models, the mean over regions of the
  binary ECE for region models like the bundled one) of the single-pass and of the mirrored probabilities,
  before and after temperature scaling fitted leave-one-case-out (the temperature for a case is fitted on the
  other cases, so no case is calibrated on itself).

It ends with the pooled ECEs, the temperatures and the Spearman rank correlation of confidence with Dice.

    python validation/uncertainty_check.py [--cases N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg3d.datasets import find_cases
from medseg3d.inference import predict_probabilities
from medseg3d.metrics import dice
from medseg3d.models import load_model, model_card
from medseg3d.preprocess import preprocess, undo_probabilities
from medseg3d.uncertainty import (
    apply_temperature,
    case_confidence,
    expected_calibration_error,
    fit_temperature,
    mirrored_uncertainty,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/brats2018")
    )
    parser.add_argument("--cases", type=int, default=7)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    loaded = load_model("brats", "cpu")
    seen = set(model_card("brats").get("train_cases", []))
    # channels in the model's order, as predict does
    cases = [c.select(loaded.modalities) for c in find_cases(Path(args.data)) if c.case_id not in seen][
        : args.cases
    ]
    sliding, overlap = loaded.inference_settings(None, None)
    patch = loaded.meta.patch if sliding else None
    opts = dict(
        kind=loaded.kind,
        patch=patch,
        overlap=overlap,
        device=loaded.device,
        precision=loaded.compute_precision(),
    )
    scheme = loaded.scheme
    rows, single, mirrored, refs, brains, zones = [], [], [], [], [], []
    for case in cases:
        image, ref_vol, label = case.load(with_label=True)
        x, _, record = preprocess(image, ref_vol.affine, loaded.prep)
        times = {}
        if not rows:  # timing on the first case only: the machine is shared, each pass costs the same
            predict_probabilities(loaded.model, x, mirror=False, **opts)  # warm-up: first-call costs untimed
            t0 = time.perf_counter()
            predict_probabilities(loaded.model, x, mirror=False, **opts)
            t1 = time.perf_counter()
            mirrored_uncertainty(loaded.model, x, passes=2, **opts)
            times = {"s_1pass": round(t1 - t0, 2), "s_2pass": round(time.perf_counter() - t1, 2)}
        t2 = time.perf_counter()
        result = mirrored_uncertainty(loaded.model, x, passes=8, keep_first_pass=True, **opts)
        times["s_8pass"] = round(time.perf_counter() - t2, 2)
        one = result.first_pass
        confidence = case_confidence(result, loaded.kind)
        region = loaded.kind == "region"
        probs8 = undo_probabilities(result.probabilities, record, fill_background=not region)
        probs1 = undo_probabilities(one, record, fill_background=not region)
        classes_ref = scheme.to_classes(label)
        # region outputs (WT, TC, ET sigmoids): painted as predict does; references as region masks
        pred_values = scheme.regions_to_values(probs8 > 0.5) if region else scheme.to_values(probs8.argmax(0))
        ref_values = scheme.to_values(classes_ref)
        target = scheme.region_masks(classes_ref) if region else classes_ref
        row = {"case": case.case_id, **times, **confidence}
        for name, members in scheme.regions.items():
            row[f"dice_{name}"] = round(dice(np.isin(pred_values, members), np.isin(ref_values, members)), 4)
        brain = np.any(image != 0, axis=0)
        # the tumour zone: reference or predicted tumour grown by 5 voxels, where calibration matters
        zone = ndimage.binary_dilation((ref_values > 0) | (pred_values > 0), iterations=5) & brain
        zones.append(zone[brain])
        single.append(probs1[:, brain])
        mirrored.append(probs8[:, brain])
        refs.append(target[:, brain] if region else target[brain])
        brains.append(int(brain.sum()))
        rows.append(row)
        print(json.dumps(row), flush=True)

    kind = loaded.kind

    def loo(probs_list):
        before = expected_calibration_error(probs_list, refs, kind)
        before_zone = expected_calibration_error(probs_list, refs, kind, mask=zones)
        calibrated, temps = [], []
        for i in range(len(probs_list)):
            others = [j for j in range(len(probs_list)) if j != i]
            t = fit_temperature([probs_list[j] for j in others], [refs[j] for j in others], kind)
            temps.append(t)
            calibrated.append(apply_temperature(probs_list[i], t, kind))
        after = expected_calibration_error(calibrated, refs, kind)
        after_zone = expected_calibration_error(calibrated, refs, kind, mask=zones)
        return before, after, before_zone, after_zone, temps

    from scipy.stats import spearmanr

    summary = {}
    for name, probs_list in (("1 pass", single), ("8 mirrored passes", mirrored)):
        before, after, before_zone, after_zone, temps = loo(probs_list)
        summary[name] = {
            "ece_brain_before": round(before, 5),
            "ece_brain_after": round(after, 5),
            "ece_tumour_zone_before": round(before_zone, 5),
            "ece_tumour_zone_after": round(after_zone, 5),
            "temperatures": [[round(v, 3) for v in t] for t in temps],
        }
    conf = [r["confidence"] for r in rows]
    for region in scheme.regions:
        rho, p = spearmanr(conf, [r[f"dice_{region}"] for r in rows])
        summary[f"spearman_confidence_dice_{region}"] = {"rho": round(float(rho), 3), "p": round(float(p), 3)}
    summary["time_ratio_2pass"] = round(rows[0]["s_2pass"] / rows[0]["s_1pass"], 2)
    summary["time_ratio_8pass"] = round(rows[0]["s_8pass"] / rows[0]["s_1pass"], 2)
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"cases": rows, "summary": summary}, indent=1), encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
