import json
import shutil

import numpy as np
import pytest

from medseg3d.cli import main
from medseg3d.errors import InputError
from medseg3d.experiments.crossval import bundle, setup
from medseg3d.experiments.crossval.scoring import nested_choice

from .helpers import make_tiny_dataset


def test_nested_choice_picks_on_the_other_folds_only():
    # candidate 1 is better on fold 0's cases only, candidate 0 elsewhere: fold 0 must not choose 1
    scores = {"a": np.array([[0.5], [0.9]]), "b": np.array([[0.8], [0.6]]), "c": np.array([[0.8], [0.7]])}
    per_fold, overall = nested_choice(scores, {"a": 0, "b": 1, "c": 2})
    assert per_fold[0] == 0  # b, c prefer 0
    assert per_fold[1] == 1  # a, c: means 0.65 vs 0.8
    assert per_fold[2] == 1  # a, b: 0.65 vs 0.75
    assert overall == 1  # means 0.7 vs 0.733


def test_nested_choice_ties_go_to_the_gentler_setting():
    scores = {"a": np.array([[0.5], [0.5]]), "b": np.array([[0.5], [0.5]])}
    assert nested_choice(scores, {"a": 0, "b": 1}) == ({0: 0, 1: 0}, 0)


def test_setup_records_the_run_and_refuses_a_different_second_call(tmp_path):
    data = make_tiny_dataset(tmp_path / "d", n_cases=4)
    record, cases = setup(data, tmp_path / "run", folds=2, epochs=1, overrides={"iters_per_epoch": 2})
    assert len(cases) == 4 and record["members"] == ["auto"]
    assert (
        record["settings"]["auto"]["iters_per_epoch"] == 2
        and record["settings"]["auto"]["labels"] == "dataset"
    )
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert sorted(c for f in split["folds"] for c in f["val"]) == sorted(c.case_id for c in cases)
    assert setup(data, tmp_path / "run")[0] == record  # the recorded settings continue
    with pytest.raises(InputError, match="--folds"):
        setup(data, tmp_path / "run", folds=3)
    with pytest.raises(InputError, match="--preset/--members"):
        setup(data, tmp_path / "run", members=["quick"])


def test_setup_refuses_bad_arguments_before_writing(tmp_path):
    data = make_tiny_dataset(tmp_path / "d", n_cases=3)
    with pytest.raises(InputError, match="unknown preset"):
        setup(data, tmp_path / "a", preset="nope", folds=2)
    with pytest.raises(InputError, match="between 2 and"):
        setup(data, tmp_path / "b", folds=4)
    with pytest.raises(InputError, match="each preset once"):
        setup(data, tmp_path / "c", members=["auto"], folds=2)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_bundle_refuses_what_is_not_a_finished_crossval(tmp_path):
    with pytest.raises(InputError, match="not a `medseg3d crossval` folder"):
        bundle(tmp_path, tmp_path / "m.safetensors")
    data = make_tiny_dataset(tmp_path / "d", n_cases=4)
    setup(data, tmp_path / "run", folds=2)
    with pytest.raises(InputError, match="--final"):
        bundle(tmp_path / "run", tmp_path / "m.safetensors")
    with pytest.raises(InputError, match=".safetensors"):
        bundle(tmp_path / "run", tmp_path / "m.onnx")


@pytest.mark.slow
def test_crossval_end_to_end_resume_report_and_bundle(tmp_path, monkeypatch, capsys):
    """4 tiny cases, 2 folds, 1 epoch of 2 iterations: train (and the final member), score, choose, calibrate,
    report; again (nothing to do); the report from the records alone; the bundled file predicts."""
    from medseg3d.checkpoint import read_model_file
    from medseg3d.io import read_volume

    monkeypatch.setenv("MEDSEG3D_CACHE", str(tmp_path / "cache"))
    data = make_tiny_dataset(tmp_path / "d", n_cases=4)
    run = tmp_path / "run"
    args = [
        "crossval",
        str(data),
        "--out",
        str(run),
        "--folds",
        "2",
        "--epochs",
        "1",
        "--iters-per-epoch",
        "2",
        "--final",
        "--quiet",
    ]
    assert main(args) == 0
    for k in (0, 1):
        rows = (run / f"fold{k}" / "pred-final" / "metrics.csv").read_text().splitlines()
        assert len(rows) == 3 and "lesion_dice_foreground" in rows[0]  # 2 held-out cases, lesion-wise scored
        assert (run / f"fold{k}" / "pred-final-pp" / "metrics.csv").is_file()
        mirrored = (run / f"fold{k}" / "pred-final-mirror" / "metrics.csv").read_text().splitlines()
        assert len(mirrored) == 3 and mirrored[0] == rows[0]  # the same cases, mirrored: a candidate
        meta, _ = read_model_file(run / f"fold{k}" / "model.safetensors")
        held = json.loads((run / "split.json").read_text())["folds"][k]["val"]
        assert not set(meta["train_cases"]) & set(held)
    choice = json.loads((run / "postprocess.json").read_text())
    assert choice["candidates_mirror"] == [False, True] and set(choice["per_fold_mirror"]) == {"0", "1"}
    assert len(choice["mean_dice_by_distance_mirrored"]) == len(choice["mean_dice_by_distance"])
    report = (run / "report.md").read_text()
    assert "Test-time mirroring (the mean of the 8 mirrored passes), chosen with the distance" in report
    assert (
        "## Mirroring and post-processing (nested cross-validation)" in report
        and "### `final-pp` weights (2 folds)" in report
    )
    assert "Lesion-wise" in report and (run / "images" / "cases.png").is_file()
    stamp = (run / "report.md").stat().st_mtime_ns
    assert main(args) == 0  # resumed: nothing left to train or score
    assert json.loads((run / "timing.json").read_text()).keys() == {
        "members/auto/fold0",
        "members/auto/fold1",
        "members/auto/all",
    }
    # the records alone rebuild the same tables
    for heavy in [*run.rglob("*.safetensors"), *run.rglob("*.pt"), *run.rglob("*.nii.gz")]:
        if "members" not in heavy.parts:
            heavy.unlink()
    assert main(["crossval", str(run), "--report"]) == 0
    assert (run / "report.md").read_text() == report and (run / "report.md").stat().st_mtime_ns != stamp
    model = tmp_path / "tiny.safetensors"
    capsys.readouterr()
    assert main(["bundle", str(run), "-o", str(model)]) == 0
    meta, _ = read_model_file(model)
    card = json.loads(model.with_suffix(".json").read_text())
    assert meta["card"] == card and card["cross_validation"]["cases"] == 4
    assert (
        card["training_time"]["trainings"] == 3 and card["training_time"]["cpu_core_hours_all_trainings"] > 0
    )
    assert "calibration" in meta and card["calibration"]["cases"] == 4
    assert card["postprocessing"]["mirror"] is choice["chosen_mirror"]
    assert "state no licence" in card["licence"]  # the tiny dataset.json states none: the card says so
    assert meta["inference"].get("mirror", False) is choice["chosen_mirror"]  # the file runs as it was scored
    assert main(["bundle", str(run), "-o", str(model)]) == 2  # exists
    out = tmp_path / "pred.nii.gz"
    case = min((data / "imagesTr").iterdir())
    assert main(["predict", str(model), str(case), "-o", str(out), "--quiet"]) == 0
    assert read_volume(out).shape == read_volume(case).shape
    assert main(["export", str(model), "-o", str(tmp_path / "tiny.onnx")]) == 0  # a model file like any other
    assert (
        main(
            [
                "calibrate",
                str(model),
                str(data),
                "-o",
                str(tmp_path / "again.safetensors"),
                "--quiet",
                "--include-trained",
            ]
        )
        == 0
    )


def test_torchrun_needs_one_fold_and_the_fold_must_exist(tmp_path, monkeypatch):
    from medseg3d.experiments.crossval import run_crossval

    data = make_tiny_dataset(tmp_path / "d", n_cases=4)
    with pytest.raises(InputError, match="--fold must be between 0 and 1"):
        run_crossval(data, tmp_path / "run", folds=2, fold=2, progress=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(InputError, match="give --fold K"):
        run_crossval(data, tmp_path / "run", progress=False)


@pytest.mark.slow
def test_an_interrupted_fold_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """A fold stopped after epoch 1 of 2 (last.pt, no model.safetensors) continues at epoch 2, not from 0."""
    import csv

    from medseg3d.experiments.catalogue import train_config
    from medseg3d.experiments.crossval import run_crossval
    from medseg3d.experiments.crossval.run import fold_tasks
    from medseg3d.train import train

    monkeypatch.setenv("MEDSEG3D_CACHE", str(tmp_path / "cache"))
    data = make_tiny_dataset(tmp_path / "d", n_cases=4)
    run = tmp_path / "run"
    record, _ = setup(data, run, folds=2, epochs=2, overrides={"iters_per_epoch": 2, "val_every": 2})
    first = fold_tasks(record, run)[0]
    train(train_config(first.overrides | {"epochs": 1}))  # "killed" after one epoch
    (first.folder / "model.safetensors").unlink()
    summary = run_crossval(data, run, progress=False, report=False)
    assert summary["ran"] == 2 and summary["folds_scored"] == [0, 1]
    with open(first.folder / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and int(rows[-1]["iteration"]) == 4


def test_setup_takes_a_given_split_and_refuses_one_for_other_cases(tmp_path):
    from medseg3d.datasets import make_split, save_split

    data = make_tiny_dataset(tmp_path / "d", n_cases=4)
    ids = [f"tiny_{i:03d}" for i in range(4)]
    given = make_split(ids, folds=2, seed=7)
    save_split(given, tmp_path / "given.json")
    setup(data, tmp_path / "run", epochs=1, split_file=tmp_path / "given.json")
    kept = json.loads((tmp_path / "run" / "split.json").read_text())
    assert [sorted(f["val"]) for f in kept["folds"]] == [sorted(f["val"]) for f in given["folds"]]
    save_split(make_split(ids[:3], folds=3, seed=0), tmp_path / "three.json")
    with pytest.raises(InputError, match="do not hold out each original case"):
        setup(data, tmp_path / "other", split_file=tmp_path / "three.json")
    with pytest.raises(InputError, match="leave --folds out"):
        setup(data, tmp_path / "other", folds=3, split_file=tmp_path / "given.json")
    assert not (tmp_path / "other").exists()


def test_the_card_carries_the_data_licence_from_dataset_json(tmp_path):
    from medseg3d.experiments.crossval.bundle import data_licence

    info = {"name": "Hippocampus", "licence": "CC BY-SA 4.0", "reference": "Simpson et al. 2019"}
    (tmp_path / "dataset.json").write_text(json.dumps(info))
    assert data_licence(tmp_path) == (
        "trained on Hippocampus data under CC BY-SA 4.0, whose terms the model inherits; "
        "cite Simpson et al. 2019"
    )
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0}}))
    assert "state no licence" in data_licence(tmp_path) and tmp_path.name in data_licence(tmp_path)


def test_heldout_variants_must_be_variants_and_are_recorded_once(tmp_path):
    from medseg3d.experiments.crossval import run_crossval
    from medseg3d.experiments.crossval.run import _record_variants

    data = make_tiny_dataset(tmp_path / "d", n_cases=4)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no labelled synthetic variants"):
        run_crossval(data, tmp_path / "run", folds=2, epochs=1, heldout_variants=empty, progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything was written
    setup(data, tmp_path / "run", folds=2, epochs=1)
    # a folder with a variant is recorded in crossval.json; another folder later is refused
    variants = make_tiny_dataset(tmp_path / "v", n_cases=1)
    for sub, suffix in (("imagesTr", "_0000.nii.gz"), ("labelsTr", ".nii.gz")):
        (variants / sub / f"tiny_000{suffix}").rename(variants / sub / f"tiny_000_nonenh{suffix}")
    record = json.loads((tmp_path / "run" / "crossval.json").read_text())
    record = _record_variants(tmp_path / "run", record, variants)
    assert json.loads((tmp_path / "run" / "crossval.json").read_text())["heldout_variants"] == str(
        variants.resolve()
    )
    other = tmp_path / "v2"
    shutil.copytree(variants, other)
    with pytest.raises(InputError, match="was scored with --heldout-variants"):
        _record_variants(tmp_path / "run", record, other)
