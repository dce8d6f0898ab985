"""scripts/calibrate_cv.py: a model trained on all cases calibrated on its cross-validation's fold models, each
on the held-out cases it never saw."""

import json

import pytest
import torch
from conftest import load_script
from test_crossval_ensemble import _case

from medseg3d.checkpoint import read_model_file, rewrite_model_metadata, save_model
from medseg3d.models import bundled_models, load_model
from medseg3d.models.ensemble import make_ensemble
from medseg3d.nets import build_network


def _ensemble(folder, seeds, train_cases):
    """A two-member ensemble of small BraTS-like networks, trained (so its metadata says) on ``train_cases``."""
    meta, _ = read_model_file(bundled_models()["brats-v1"])
    meta = {k: v for k, v in meta.items() if k not in ("format", "name", "calibration")}
    meta |= {"net_args": {"norm": "instance", "base_channels": 4}, "train_cases": train_cases}
    folder.mkdir(parents=True, exist_ok=True)
    members = []
    for seed in seeds:
        torch.manual_seed(seed)
        net = build_network("kayalibay", 4, 3, norm="instance", base_channels=4)
        members.append(save_model(net, meta, folder / f"member{seed}.safetensors"))
    return make_ensemble(members, folder / "ens.safetensors", sliding_window=False)


def _finished_fold(run, train_cases):
    """A finished fold: a two-member ensemble trained (so it says) on ``train_cases``, held-out case Case_A."""
    _ensemble(run, (0, 1), train_cases)
    _case(run / "heldout", "Case_A", 0)
    (run / "done").touch()
    return run


def test_calibrate_a_final_ensemble_on_its_folds(tmp_path, capsys):
    script = load_script("calibrate_cv")
    cv = tmp_path / "cv"
    names = [["Case_A", "Case_B"], ["Case_C", "Case_D"]]
    for k, held in enumerate(names):
        run = cv / f"fold{k}"
        _ensemble(run, (2 * k, 2 * k + 1), names[1 - k])
        for i, name in enumerate(held):
            _case(run / "heldout", name, 10 * k + i)
        (run / "done").touch()
    target = _ensemble(tmp_path / "final", (7, 8), [c for held in names for c in held])
    rewrite_model_metadata(target, {"inference": {"sliding_window": True, "overlap": 0.5}})
    out = tmp_path / "calibrated.safetensors"
    assert script.main([str(cv), "ens.safetensors", "--passes", "members", "--into", str(target), "-o", str(out),
                        "--json", str(tmp_path / "c.json")]) == 0
    assert "4 cases, 2 members; temperatures" in capsys.readouterr().out
    loaded = load_model(out)
    calibration = loaded.meta.calibration
    assert calibration["fitted_on"] == ["Case_A", "Case_B", "Case_C", "Case_D"]
    assert calibration["confidence"]["source"] == "members" and calibration["confidence"]["passes"] == 2
    assert len(calibration["confidence"]["held_out"]) == 4 and len(calibration["temperatures"]) == 3
    summary = json.loads((tmp_path / "c.json").read_text())
    assert summary["fold_model"] == "ens.safetensors" and len(summary["per_case"]) == 4
    from medseg3d.datasets import find_cases
    from medseg3d.predict import grid_prediction

    # as the target runs: in windows and in float32 (the fold models' own metadata, copied from brats-v1, asks
    # for mixed precision: bfloat16 on a CPU that has it, which moves the confidence in the fourth decimal)
    fold0 = load_model(cv / "fold0" / "ens.safetensors", precision="fp32")
    case = next(c for c in find_cases(cv / "fold0" / "heldout") if c.case_id == "Case_A")
    image, ref, _ = case.load(with_label=True)
    windowed = grid_prediction(fold0, image, ref.affine, sliding_window=True, passes="members").confidence
    row = next(r for r in summary["per_case"] if r["case"] == "Case_A")
    assert row["confidence"] == windowed["confidence"]  # the fold models ran in the target's windows
    # the target's weights are untouched: only the metadata gained the calibration
    _, before = read_model_file(target)
    _, after = read_model_file(out)
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(SystemExit, match="exists already"):
        script.main([str(cv), "ens.safetensors", "--into", str(target), "-o", str(out)])


def test_a_fold_model_that_saw_its_held_out_cases_is_refused(tmp_path):
    script = load_script("calibrate_cv")
    run = _finished_fold(tmp_path / "cv" / "fold0", ["Case_A"])
    with pytest.raises(SystemExit, match="trained on its fold's held-out case"):
        script.main([str(tmp_path / "cv"), "ens.safetensors", "--into", str(run / "ens.safetensors"),
                     "-o", str(tmp_path / "o.safetensors")])
    with pytest.raises(SystemExit, match="no finished fold"):
        script.main([str(tmp_path / "cv"), "missing.safetensors", "--into", str(run / "ens.safetensors"),
                     "-o", str(tmp_path / "o.safetensors")])


def test_medseg3d_calibrate_takes_members_for_an_ensemble_only(tmp_path, capsys):
    from medseg3d.cli import main

    ensemble = _ensemble(tmp_path / "m", (0, 1), ["other"])
    for i, name in enumerate(("Case_A", "Case_B", "Case_C")):
        _case(tmp_path / "held", name, i)
    out = tmp_path / "single-cal.safetensors"
    assert main(["calibrate", str(tmp_path / "m" / "member0.safetensors"), str(tmp_path / "held"), "--passes",
                 "members", "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "needs an ensemble" in err and len(err.strip().splitlines()) == 1 and not out.exists()
    out = tmp_path / "ens-cal.safetensors"
    assert main(["calibrate", str(ensemble), str(tmp_path / "held"), "--passes", "members", "-o", str(out),
                 "--quiet"]) == 0
    assert "3 cases, 2 members" in capsys.readouterr().out
    confidence = load_model(out).meta.calibration["confidence"]
    assert confidence["source"] == "members" and confidence["passes"] == 2 and len(confidence["held_out"]) == 3


def test_a_target_made_unlike_the_fold_models_is_refused(tmp_path):
    script = load_script("calibrate_cv")
    run = _finished_fold(tmp_path / "cv" / "fold0", ["other"])
    single = run / "member0.safetensors"  # one network: its calibration cannot be the two members'
    with pytest.raises(SystemExit, match="differ in kind, outputs or members"):
        script.main([str(tmp_path / "cv"), "ens.safetensors", "--passes", "members", "--into", str(single),
                     "-o", str(tmp_path / "o.safetensors")])
    assert not (tmp_path / "o.safetensors").exists()
