"""The bundled BraTS model: listed with its card, loads safely, segments a shared case on its own grid."""

import numpy as np
import pytest

from medseg3d.io import read_volume
from medseg3d.models import bundled_models, describe_models, load_model, model_card
from medseg3d.predict import predict

pytestmark = pytest.mark.skipif("brats" not in bundled_models(), reason="no bundled brats model installed")


def test_card_and_metadata():
    card = model_card("brats")
    for key in ("trained_on", "command", "training_time", "held_out_scores", "licence"):
        assert key in card
    text = describe_models()
    assert "brats" in text and "flair, t1, t1ce, t2" in text
    model = load_model("brats", device="cpu")
    assert model.modalities == ("flair", "t1", "t1ce", "t2") and model.scheme.values == (0, 1, 2, 4)
    assert bundled_models()["brats"].stat().st_size < 10_000_000


def test_segments_a_shared_case(brats_root, tmp_path):
    case = brats_root / "Brats18_2013_2_1"
    out = predict("brats", [case], tmp_path / "sub" / "tumour.nii.gz", progress=False, device="cpu")[0]
    pred, ref = read_volume(out), read_volume(case / "Brats18_2013_2_1_seg.nii.gz")
    assert pred.shape == ref.shape and np.allclose(pred.affine, ref.affine)
    assert set(np.unique(pred.array)) <= {0, 1, 2, 4}
    wt_p, wt_r = pred.array > 0, ref.array > 0
    # a case the model was trained on: the whole tumour must be found (guards against a broken pipeline)
    assert 2 * (wt_p & wt_r).sum() / (wt_p.sum() + wt_r.sum()) > 0.6


@pytest.mark.slow  # slow: keeps the default suite near 5 minutes; run with -m slow
def test_min_enhancing_moves_enhancing_to_necrosis(brats_root):
    from medseg3d.predict import segment

    case = brats_root / "Brats18_2013_2_1"
    # a threshold above any real volume: every enhancing voxel becomes necrosis, the tumour core stays
    labels = segment("brats", case, min_enhancing=10**9).array
    ref = read_volume(case / "Brats18_2013_2_1_seg.nii.gz").array
    assert not (labels == 4).any() and (labels == 1).any()
    tc_p, tc_r = np.isin(labels, (1, 4)), np.isin(ref, (1, 4))
    assert 2 * (tc_p & tc_r).sum() / (tc_p.sum() + tc_r.sum()) > 0.6


def test_every_version_stays_selectable_by_name():
    from medseg3d.models import model_aliases

    aliases = model_aliases()
    assert aliases["brats"] in bundled_models() and "brats-v1" in bundled_models()
    assert bundled_models()["brats"] == bundled_models()[aliases["brats"]]
    assert (
        model_card("brats") == model_card(aliases["brats"]) and model_card("brats-v1")["name"] == "brats-v1"
    )
    assert load_model("brats-v1", device="cpu").name == "brats-v1"
    listing = describe_models()
    assert listing.splitlines()[0] == f"brats = {aliases['brats']} (what `medseg3d predict brats` runs)"
    # listed once, not per alias
    assert sum(line.startswith("brats-v1  (") for line in listing.splitlines()) == 1


def test_v2_is_two_members_trained_on_every_shared_case_with_their_cross_validation(brats_root):
    if "brats-v2" not in bundled_models():
        pytest.skip("brats-v2 is not bundled")
    card, model = model_card("brats-v2"), load_model("brats-v2", device="cpu")
    assert bundled_models()["brats-v2"].stat().st_size < 20_000_000  # #22: at most 20 MB of weights
    # windows by default
    assert model.meta.members == 2 and model.inference_settings(None, None) == (
        True,
        0.5,
    )
    assert len(model.meta.temperatures) == 3 and model.meta.calibration["confidence"]["source"] == "members"
    shared = sorted(p.name for p in brats_root.iterdir() if p.is_dir() and p.name.startswith("Brats18_"))
    assert card["train_cases"] == shared == sorted(model.meta.train_cases)  # all 27: nothing shared is unseen
    cv = card["cross_validation"]
    # the card's scores are the same recipe cross-validated: windows, the two presets' fold models as one
    # ensemble, and the far-component removal v2 runs by default (chosen by cross-validation), at the same
    # distance
    distance = model.max_distance(None)
    assert distance > 0 and f"farther than {distance:g} mm" in card["inference"]
    assert (
        cv["weights"] == f"ens-cv27-strong-sw-md{distance:g}"
        and cv["folds_planned"] == 5
        and 1 <= cv["folds"] <= 5
    )
    assert (
        f"farther than {distance:g} mm from the largest one are removed (--max-distance 0 keeps them)"
        in describe_models()
    )
    assert set(card["held_out_cases"]) <= set(shared) and len(card["held_out_cases"]) >= 6
    assert {"WT", "TC", "ET"} == set(card["worst_cases"]) and "core-hours" in card["training_time"]


def test_the_listing_shows_what_the_aliases_name_first_then_the_newest(monkeypatch):
    from medseg3d.models import describe

    v1 = bundled_models()["brats-v1"]
    models = {"brats-v1": v1, "brats-v10": v1, "brats-v9": v1, "other-v2": v1, "brats": v1}
    monkeypatch.setattr(describe, "bundled_models", lambda: models)
    monkeypatch.setattr(describe, "model_aliases", lambda: {"brats": "brats-v9"})
    monkeypatch.setattr(describe, "model_card", lambda name: {})
    heads = [line.split()[0] for line in describe.describe_models().splitlines() if not line.startswith(" ")]
    # v10 after v9 by number, not text
    assert heads == [
        "brats",
        "brats-v9",
        "other-v2",
        "brats-v10",
        "brats-v1",
    ]


def test_v2_1_is_v2s_networks_with_the_lesion_rule_its_card_scores(brats_root):
    """brats-v2.1 = brats-v2's weights unchanged, plus the lesion-size rule; its card's held-out scores are
    v2's kept held-out maps post-processed as v2.1 runs
    (``docs/runs/brats-v2-cv/cv27-v1/fold*/pred-v2.1``)."""
    import csv
    import json
    from pathlib import Path

    from medseg3d.checkpoint import read_model_file

    if "brats-v2.1" not in bundled_models():
        pytest.skip("brats-v2.1 is not bundled")
    meta21, state21 = read_model_file(bundled_models()["brats-v2.1"])
    meta2, state2 = read_model_file(bundled_models()["brats-v2"])
    assert state21.keys() == state2.keys() and all(bool((state21[k] == state2[k]).all()) for k in state2)
    assert meta21["name"] == "brats-v2.1" and meta21["calibration"] == meta2["calibration"]
    rule = meta21["inference"]["min_lesion_mm3"]
    assert meta21["inference"] == meta2["inference"] | {"min_lesion_mm3": rule}
    card = model_card("brats-v2.1")
    for region in ("WT", "TC", "ET"):
        assert f"{region} {rule[region]:g}" in card["inference"]
    repo = Path(__file__).resolve().parents[2]
    levers = json.loads((repo / "docs/runs/brats-v3-levers/levers.json").read_text())
    assert {r: float(v) for r, v in levers["lesion"]["chosen_on_all"].items() if r != "far_mm"} == rule
    # the card's pooled lesion-wise Dice is the mean of the kept per-case scores
    root = repo / "docs/runs/brats-v2-cv/cv27-v1"
    rows = [r for f in sorted(root.glob("fold*/pred-v2.1/metrics.csv")) for r in csv.DictReader(f.open())]
    assert len(rows) == len(card["held_out_cases"]) == len(card["held_out_per_case"])
    for region in ("WT", "TC", "ET"):
        mean = sum(float(r[f"lesion_dice_{region}"]) for r in rows) / len(rows)
        assert card["held_out_scores"][f"lesion_dice_{region}"] == pytest.approx(mean, abs=5e-5)
    # lesion-wise: the rule's reason to exist; whole-case: no cost (both on the same 21 cases)
    v2 = model_card("brats-v2")["held_out_scores"]
    v21 = card["held_out_scores"]
    assert all(v21[f"lesion_dice_{r}"] >= v2[f"lesion_dice_{r}"] for r in ("WT", "TC", "ET"))
    assert all(v21[f"dice_{r}"] >= v2[f"dice_{r}"] - 1e-3 for r in ("WT", "TC", "ET"))
    listing = describe_models()
    assert "lesion-wise Dice 0.824 / 0.722 / 0.588" in listing
    assert (
        "components under WT 1000, TC 200, ET 100 mm^3 become the next outer region, the largest" in listing
    )
