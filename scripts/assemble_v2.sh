#!/usr/bin/env bash
# Bundle (or bring up to date) the BraTS model v2 of issue #22 from whatever the queue (scripts/queue_v2.sh)
# has finished: run it again after each fold; every step is idempotent.
#   1. the cross-validation of v2's recipe against the v1 preset's, case by case (runs/v2-report.md, the pooled
#      held-out rows runs/v2-pooled.csv and the picture docs/images/v1_v2_cv27.png);
#   2. the two members trained on all 27 cases (runs/v2-v1, runs/v2-strong) as one ensemble in the package,
#      src/medseg3d/weights/brats-v2.safetensors, with its card (the first time), or the card's scores and
#      cross-validation brought up to date (afterwards: same weights);
#   3. its temperatures and held-out confidences from every finished fold's two models (scripts/calibrate_cv.py).
# It never changes what `medseg3d predict brats` runs: give `--default-for brats` to bundle_model.py for that.
#
#   scripts/assemble_v2.sh            # from the repository root
set -euo pipefail
weights=src/medseg3d/weights
for run in runs/v2-v1 runs/v2-strong; do
    [[ -e "$run/done" ]] || { echo "error: $run has not finished training; run scripts/queue_v2.sh first" >&2; exit 1; }
done
ls runs/cv27-v1/fold*/pred-ens-cv27-strong-sw/metrics.csv > /dev/null 2>&1 \
    || { echo "error: no fold of runs/cv27-v1 has scored the ensemble yet (scripts/crossval_ensemble.py)" >&2; exit 1; }

python scripts/crossval_report.py runs/cv27-v1 --reference last-sw --variant ens-cv27-strong-sw --variant last-sw \
    --csv runs/v2-pooled.csv --side-by-side --png docs/images/v1_v2_cv27.png > runs/v2-report.md.tmp
mv runs/v2-report.md.tmp runs/v2-report.md
echo "report: runs/v2-report.md, picture: docs/images/v1_v2_cv27.png"

card=(--name brats-v2 --cv runs/cv27-v1 --cv-variant ens-cv27-strong-sw --metrics runs/v2-pooled.csv --sliding-window)
if [[ -e "$weights/brats-v2.safetensors" ]]; then
    python scripts/bundle_model.py --keep-weights "${card[@]}" > /dev/null
else
    python scripts/bundle_model.py --members runs/v2-v1 runs/v2-strong --model last "${card[@]}" > /dev/null
fi
echo "bundled: $weights/brats-v2.safetensors and its card $weights/brats-v2.json"

calibrated=runs/brats-v2-calibrated.safetensors
rm -f "$calibrated"
python scripts/calibrate_cv.py runs/cv27-v1 ensemble-cv27-strong.safetensors --passes members \
    --into "$weights/brats-v2.safetensors" -o "$calibrated" --json runs/calibrate-v2.json
mv "$calibrated" "$weights/brats-v2.safetensors"
medseg3d models | sed -n '/^brats-v2 /,/^brats-v[^2]/p'
