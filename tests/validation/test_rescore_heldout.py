"""validation/rescore_heldout.py: a model file's post-processing applied to kept held-out maps reproduces what
that model's card recorded (brats-v2's far-component removal on its cross-validation's maps)."""

import csv
import shutil
from pathlib import Path

import pytest
from conftest import VALIDATION, load_script

from medseg3d.models import bundled_models

rescore = load_script("rescore_heldout", VALIDATION)
KEPT = Path(__file__).resolve().parents[2] / "docs" / "runs" / "brats-v2-cv" / "cv27-v1" / "fold4"


def _rows(path):
    with open(path, newline="") as f:
        return {r["case"]: r for r in csv.DictReader(f)}


def test_v2s_file_on_its_kept_maps_gives_the_scores_its_card_recorded(brats_root, tmp_path):
    if "brats-v2" not in bundled_models():
        pytest.skip("brats-v2 is not bundled")
    kept = sorted((KEPT / "pred-ens-cv27-strong-sw").glob("*.nii.gz"))[:2]
    root = tmp_path / "cv"
    (root / "fold4" / "pred-ens-cv27-strong-sw").mkdir(parents=True)
    for path in kept:
        shutil.copyfile(path, root / "fold4" / "pred-ens-cv27-strong-sw" / path.name)
    written = rescore.rescore(
        root, "ens-cv27-strong-sw", bundled_models()["brats-v2"], "again", brats_root, tmp_path / "scratch"
    )
    assert written == [root / "fold4" / "pred-again" / "metrics.csv"]
    new, recorded = _rows(written[0]), _rows(KEPT / "pred-ens-cv27-strong-sw-md20" / "metrics.csv")
    assert sorted(new) == sorted(p.name[: -len(".nii.gz")] for p in kept)
    for case, row in new.items():
        for key in ("dice_WT", "dice_TC", "dice_ET", "hd95_WT", "hd95_TC", "hd95_ET"):
            assert float(row[key]) == pytest.approx(float(recorded[case][key]), abs=1e-6)
        assert "lesion_dice_WT" in row  # and the lesion-wise scores beside them
