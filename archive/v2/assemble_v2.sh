#!/usr/bin/env bash
# Bring the BraTS model v2 of issue #22 up to date with whatever cross-validation has been finished: run it after
# each fold that scripts/queue_v2.sh finishes, on any machine; every step is idempotent.
#   1. the finished folds' small records (configs, training logs and curves, per-case metrics of every scored
#      variant, v2's held-out label maps) are kept in the repository, docs/runs/brats-v2-cv/ (scripts/keep_cv_records.py): runs/ does not
#      outlive its machine, and everything below reads the kept records, so folds finished on other machines
#      count too;
#   2. the cross-validation of v2's recipe against the v1 preset's, case by case (docs/runs/brats-v2-cv/report.md,
#      the pooled held-out rows docs/runs/brats-v2-cv/pooled-ens-cv27-strong-sw.csv, the picture
#      docs/images/v1_v2_cv27.png, the table of docs/results.md between <!-- v1-v2 --> and <!-- /v1-v2 -->), each lever fold by fold
#      (scripts/levers_v2.py, docs/results.md's block <!-- levers -->), each preset's held-out Dice over the epochs
#      (scripts/learning_curves.py: learning-curves-*.md, docs/images/learning_curves_*.png), and every fold's models on the other pipeline's case (robustness.md);
#   3. the card of the bundled v2 (src/medseg3d/weights/brats-v2.json): its held-out scores and per-fold
#      cross-validation of exactly what `medseg3d predict brats` runs, i.e. with the far-component removal that
#      the cross-validation chose (--max-distance 20, written into v2's inference metadata; scored from the kept
#      label maps by scripts/postprocess_variant.py, so a fold kept without its label maps is left out of the
#      card until it is scored again); the weights stay as bundled (the two members trained on all 27 cases);
#   4. its temperatures and held-out confidences, from the fold models present on this machine
#      (scripts/calibrate_cv.py), only if they cover more held-out cases than the calibration it has.
# It never changes the weights, nor the windows and precision they run in; the one inference setting it writes is
# the far-component removal (3.).
#
#   scripts/assemble_v2.sh            # from the repository root; DATA=... if the cases are not in ../shared/data/brats2018
set -euo pipefail
data=${DATA:-../shared/data/brats2018}
# v2's far-component removal (mm): nested cross-validation chose 20 mm in every fold of folds 1-4, no case worse
# (docs/runs/brats-v2-cv/postprocess-ens-cv27-strong-sw.md)
max_distance=20
weights=src/medseg3d/weights
kept=docs/runs/brats-v2-cv
[[ -e "$weights/brats-v2.safetensors" ]] \
    || { echo "error: $weights/brats-v2.safetensors is not bundled; bundle its members first (docs/results.md)" >&2; exit 1; }

# v2's held-out label maps too (about 70 kB a case): post-processing can then be chosen by cross-validation on any
# machine (scripts/postprocess_sweep.py docs/runs/brats-v2-cv/cv27-v1 --variant ens-cv27-strong-sw --data DATA)
for cv in cv27-v1 cv27-strong; do
    labels=(); [[ $cv == cv27-v1 ]] && labels=(--labels ens-cv27-strong-sw)  # v2's variant lives in cv27-v1
    if ls runs/$cv/fold*/done > /dev/null 2>&1; then python scripts/keep_cv_records.py "runs/$cv" "$kept/$cv" "${labels[@]}"; fi
done
ls "$kept"/cv27-v1/fold*/pred-ens-cv27-strong-sw/metrics.csv > /dev/null 2>&1 \
    || { echo "error: no fold in $kept/cv27-v1 has scored the ensemble yet (scripts/queue_v2.sh)" >&2; exit 1; }

pooled="$kept/pooled-ens-cv27-strong-sw.csv"
exact="ens-cv27-strong-sw-md$max_distance"  # v2 as `predict brats` runs it: with its far-component removal
python scripts/postprocess_variant.py "$kept/cv27-v1" --variant ens-cv27-strong-sw --max-distance "$max_distance" --data "$data"
python scripts/crossval_report.py "$kept/cv27-v1" --reference ens-cv27-strong-sw --variant "$exact" \
    --csv "$kept/pooled-$exact.csv" --side-by-side > "$kept/report-$exact.md.tmp"
mv "$kept/report-$exact.md.tmp" "$kept/report-$exact.md"
python scripts/crossval_report.py "$kept/cv27-v1" --reference last-sw --variant ens-cv27-strong-sw --variant last-sw \
    --csv "$pooled" --side-by-side --png docs/images/v1_v2_cv27.png \
    --splice docs/results.md:v1-v2 --names "v1 preset" "v2 recipe" > "$kept/report.md.tmp"
mv "$kept/report.md.tmp" "$kept/report.md"
python scripts/levers_v2.py "$kept" --splice docs/results.md:levers > /dev/null
# lever 2: is either preset still improving at the end of its budget? (held-out Dice over each fold's epochs)
for cv in cv27-v1 cv27-strong; do
    python scripts/learning_curves.py "$kept/$cv" --png "docs/images/learning_curves_$cv.png" > "$kept/learning-curves-$cv.md.tmp" \
        && mv "$kept/learning-curves-$cv.md.tmp" "$kept/learning-curves-$cv.md" || rm -f "$kept/learning-curves-$cv.md.tmp"
done
echo "report: $kept/report.md, picture: docs/images/v1_v2_cv27.png"

# lever 5: each fold's models (and their ensemble in windows, as v2 runs) on the other pipeline's case
shopt -s nullglob; rows=(); for k in 0 1 2 3 4; do rows+=("$kept"/cv27-*/fold$k/robustness*.json); done; shopt -u nullglob
if (( ${#rows[@]} )); then
    python validation/pipeline_robustness.py --table "${rows[@]}" > "$kept/robustness.md.tmp"
    mv "$kept/robustness.md.tmp" "$kept/robustness.md"
    echo "other pipeline: $kept/robustness.md"
fi

# mixed precision: bfloat16 on CPUs that have it natively (float32 elsewhere); on fold 1's six held-out cases the
# same Dice as float32 to 0.001 (pred-ens-cv27-strong-sw-bf16) and 1.27x faster end to end (docs/results.md)
python scripts/bundle_model.py --keep-weights --name brats-v2 --cv "$kept/cv27-v1" --cv-variant "$exact" \
    --metrics "$kept/pooled-$exact.csv" --sliding-window --precision mixed --max-distance "$max_distance" > /dev/null
echo "card: $weights/brats-v2.json"

# calibration needs the fold models themselves, which only the machine that trained them has
here=$(python -c "
from pathlib import Path
print(sum(len(list((f.parent / 'heldout').iterdir())) for f in Path('runs/cv27-v1').glob('fold*/ensemble-cv27-strong.safetensors')))")
has=$(python -c "
from medseg3d.checkpoint import read_model_file
meta, _ = read_model_file('$weights/brats-v2.safetensors')
print(len(meta.get('calibration', {}).get('fitted_on', [])))")
if (( here > has )); then
    calibrated=runs/brats-v2-calibrated.safetensors
    rm -f "$calibrated"
    python scripts/calibrate_cv.py runs/cv27-v1 ensemble-cv27-strong.safetensors --passes members \
        --into "$weights/brats-v2.safetensors" -o "$calibrated" --json "$kept/calibration.json"
    mv "$calibrated" "$weights/brats-v2.safetensors"
else
    echo "calibration kept: fitted on $has held-out cases; the fold models here hold out $here"
fi
medseg3d models | sed -n '/^brats-v2 /,/^brats-v[^2]/p'
