"""Running grids: --quick end to end, skip and resume, --report alone, claims, the synthetic hand phantom."""

import json
import shutil
import subprocess
import sys

import pytest
from conftest import SMALL_CASES as CASES  # the cases of the `small_dataset` fixture

from medseg3d.checkpoint import read_model_file
from medseg3d.cli import main
from medseg3d.errors import InputError
from medseg3d.experiments import (
    EXPERIMENTS,
    claim_task,
    estimate_seconds,
    plan_experiment,
    release_task,
    report_only,
    run_experiment,
    runner,
)
from medseg3d.preprocess import PrepConfig, target_shape

from .helpers import make_synthetic_hand_dataset, read_table

# one run keeps the default suite short; test_quick_ablations_all_runs (slow) runs the whole grid
SUBSET = ["single-map"]


@pytest.fixture(scope="module")
def quick_ablations(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "ablations"
    summary = run_experiment("ablations", small_dataset, out, quick=True, runs=SUBSET, progress=False)
    return out, summary


def test_quick_ablations_write_table_and_plot(quick_ablations, small_dataset):
    out, summary = quick_ablations
    assert summary["ran"] == 2
    for name in ("table.md", "table.csv", "plot.png", "split.json", "experiment.json", "cases.csv"):
        assert (out / name).is_file(), name
    split = json.loads((out / "split.json").read_text(encoding="utf-8"))
    assert split["kind"] == "kfold" and len(split["folds"]) == 2
    assert sorted(split["folds"][0]["train"] + split["folds"][0]["val"]) == sorted(CASES)[:2]
    for run in SUBSET:
        for k in range(2):
            fold = out / run / f"fold{k}"
            for name in (
                "model.safetensors",
                "last.pt",
                "log.csv",
                "metrics.csv",
                "train.log",
                "timing.json",
            ):
                assert (fold / name).is_file(), (run, k, name)
            metrics = read_table(fold / "metrics.csv")
            assert [r["case"] for r in metrics] == split["folds"][k]["val"]
    rows = read_table(out / "table.csv")
    assert [r["run"] for r in rows] == [r.name for r in EXPERIMENTS["ablations"].runs]
    done = {r["run"]: r for r in rows if r["folds_done"] != "0"}
    assert sorted(done) == sorted(SUBSET)
    dice_cols = [
        f"dice_{n}_{s}" for n in ("NCR/NET", "edema", "enhancing", "WT", "TC", "ET") for s in ("mean", "std")
    ]
    assert set(dice_cols + ["hd95_WT_mean", "hd95_ET_std", "iterations", "train_minutes"]) <= set(rows[0])
    for row in done.values():
        assert row["folds_done"] == "2" and float(row["iterations"]) == 4
        for col in dice_cols:
            assert 0.0 <= float(row[col]) <= 1.0, (col, row[col])
    md = (out / "table.md").read_text(encoding="utf-8")
    assert "QUICK SMOKE RUN" in md and "not yet run" in md and "## Convergence" in md
    assert "| single-map |" in md and "| concat-jaccard |" in md and "WT 0.85" in md
    # every held-out case once, with the fold that scored it; no paired section without the reference run
    per_case = md.split("## Per case")[1].split("##")[0]
    for k, fold in enumerate(split["folds"]):
        for case in fold["val"]:
            assert f"| {case} | {k} |" in per_case
    assert "## Paired" not in md


def test_second_invocation_skips_complete_runs(quick_ablations, small_dataset, capsys):
    out, _ = quick_ablations
    stamp = (out / "single-map" / "fold0" / "model.safetensors").stat().st_mtime_ns
    summary = run_experiment("ablations", small_dataset, out, quick=True, runs=SUBSET)
    assert summary["ran"] == 0
    assert (out / "single-map" / "fold0" / "model.safetensors").stat().st_mtime_ns == stamp
    assert "2 complete" in capsys.readouterr().out


def test_report_alone_and_cli(quick_ablations, capsys):
    out, _ = quick_ablations
    (out / "table.md").unlink()
    (out / "plot.png").unlink()
    written = report_only("ablations", out)
    assert written["table_md"].is_file() and written["plot"].is_file()
    assert main(["experiment", "ablations", "--out", str(out), "--report"]) == 0
    assert "table.md" in capsys.readouterr().out
    assert main(["experiment", "losses", "--out", str(out), "--report"]) == 2
    assert "holds experiment 'ablations'" in capsys.readouterr().err


@pytest.mark.slow  # retrains after a simulated interruption: 13 s idle
def test_interrupted_runs_resume_or_rescore(quick_ablations, small_dataset):
    out, _ = quick_ablations
    # killed after training but before scoring: only predicted and scored again
    fold = out / "single-map" / "fold1"
    (fold / "metrics.csv").unlink()
    shutil.rmtree(fold / "pred")
    # killed during training (last.pt, no final model): resumed, not restarted
    fold0 = out / "single-map" / "fold0"
    (fold0 / "model.safetensors").unlink()
    (fold0 / "metrics.csv").unlink()
    _, tasks, _ = plan_experiment("ablations", small_dataset, out, quick=True, runs=["single-map"])
    assert [t.state for t in tasks] == ["resume", "score"]
    assert estimate_seconds(tasks, 1.0, 0.1, 1) > 0
    summary = run_experiment("ablations", small_dataset, out, quick=True, runs=["single-map"], progress=False)
    assert summary["ran"] == 2
    assert (fold0 / "model.safetensors").is_file() and (fold / "metrics.csv").is_file()
    log = read_table(fold0 / "log.csv")
    assert len(log) == 2  # the resumed run did not train again


def test_user_errors(quick_ablations, small_dataset, tmp_path):
    out, _ = quick_ablations
    with pytest.raises(InputError, match="--quick"):
        plan_experiment("ablations", small_dataset, out, folds=2)  # the folder was made with --quick
    with pytest.raises(InputError, match="unknown experiment"):
        plan_experiment("everything", small_dataset, tmp_path / "x")
    with pytest.raises(InputError, match="no run 'deeper'"):
        plan_experiment("depth", small_dataset, tmp_path / "x", runs=["deeper"])
    with pytest.raises(InputError, match="--folds"):
        plan_experiment("depth", small_dataset, tmp_path / "x", folds=7)
    with pytest.raises(InputError, match="no experiment"):
        report_only("depth", tmp_path / "empty")
    assert main(["experiment", "depth", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2


@pytest.mark.slow
def test_quick_binary_tiny_unet_with_one_output(small_dataset, tmp_path):
    out = tmp_path / "binary"
    run_experiment("binary", small_dataset, out, quick=True, runs=["tiny-unet-bce"], progress=False)
    meta, _ = read_model_file(out / "tiny-unet-bce" / "fold0" / "last.safetensors")
    assert meta["network"] == "tiny-unet" and meta["n_outputs"] == 1 and meta["kind"] == "region"
    row = next(r for r in read_table(out / "table.csv") if r["run"] == "tiny-unet-bce")
    assert row["folds_done"] == "2"
    for col in ("dice_tumour_mean", "dice_WT_mean"):
        assert 0.0 <= float(row[col]) <= 1.0


@pytest.mark.slow
def test_quick_ablations_all_runs(small_dataset, tmp_path):
    out = tmp_path / "ablations-all"
    summary = run_experiment("ablations", small_dataset, out, quick=True, progress=False)
    assert summary["ran"] == 10
    rows = read_table(out / "table.csv")
    assert all(r["folds_done"] == "2" for r in rows)


@pytest.mark.slow  # trains the hand grid on a phantom: 10 s idle
def test_hand_configuration_on_synthetic_phantom(tmp_path):
    data = make_synthetic_hand_dataset(tmp_path / "synthetic_hand")
    # default settings: one channel, five classes, a crop that down-samples to 120 x 120 x 64
    _, tasks, _ = plan_experiment("hand", data, tmp_path / "hand-default", folds=3, epochs=1)
    o = tasks[0].overrides
    assert o["labels"] == "hand" and o["modalities"] == ("mri",) and o["crop"] == "fixed"
    prep = PrepConfig(crop="fixed", crop_size=o["crop_size"], downsample=o["downsample"])
    assert target_shape(o["crop_size"], (1.0, 1.0, 1.0), prep) == (120, 120, 64)

    out = tmp_path / "hand"
    run_experiment("hand", data, out, quick=True, progress=False)
    config = json.loads((out / "kayalibay" / "fold0" / "config.json").read_text(encoding="utf-8"))
    assert config["modalities"] == ["mri"] and config["labels"] == "hand"
    row = read_table(out / "table.csv")[0]
    assert row["folds_done"] == "2"
    for name in ("metacarpals", "proximal", "middle", "distal", "bone"):
        assert 0.0 <= float(row[f"dice_{name}_mean"]) <= 1.0
    assert "hd95_bone_mean" in row
    assert "QUICK SMOKE RUN" in (out / "table.md").read_text(encoding="utf-8")


@pytest.mark.slow  # two invocations train side by side: 10 s idle
def test_claims_let_several_invocations_share_an_experiment(
    quick_ablations, small_dataset, tmp_path, monkeypatch
):
    import socket

    folder = tmp_path / "run" / "fold0"
    assert claim_task(folder) and claim_task(folder)  # ours, and asking again keeps it
    release_task(folder)
    assert not (folder / "claim.json").exists()
    host = socket.gethostname()
    # a live process (pid 1 always exists) holds it: not ours
    (folder / "claim.json").write_text(json.dumps({"pid": 1, "host": host}), encoding="utf-8")
    assert not claim_task(folder)
    # another host's claim cannot be checked: respected
    (folder / "claim.json").write_text(json.dumps({"pid": 1, "host": host + "-elsewhere"}), encoding="utf-8")
    assert not claim_task(folder)
    # a claim left by a process that has ended is taken over
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / "claim.json").write_text(json.dumps({"pid": dead.pid, "host": host}), encoding="utf-8")
    assert claim_task(folder)
    release_task(folder)

    # in the runner: a run held by another live invocation is left alone and reported
    out, _ = quick_ablations
    fold0 = out / "single-map" / "fold0"
    scored = (fold0 / "metrics.csv").read_bytes()
    (fold0 / "metrics.csv").unlink()
    (fold0 / "claim.json").write_text(json.dumps({"pid": 1, "host": host}), encoding="utf-8")
    summary = run_experiment("ablations", small_dataset, out, quick=True, runs=["single-map"], progress=False)
    assert summary["ran"] == 0 and summary["held_elsewhere"] == 1
    assert not (fold0 / "metrics.csv").exists()

    # held when this invocation passed it, finished by the other one before this one ends: not reported as
    # held
    def finished_elsewhere(folder):
        (folder / "metrics.csv").write_bytes(scored)
        return False

    with monkeypatch.context() as m:
        m.setattr(runner, "claim_task", finished_elsewhere)  # where run_experiment looks it up
        summary = run_experiment(
            "ablations", small_dataset, out, quick=True, runs=["single-map"], progress=False
        )
    assert summary["ran"] == 0 and summary["held_elsewhere"] == 0
    (fold0 / "metrics.csv").unlink()
    (fold0 / "claim.json").unlink()
    summary = run_experiment("ablations", small_dataset, out, quick=True, runs=["single-map"], progress=False)
    assert summary["ran"] == 1 and (fold0 / "metrics.csv").is_file() and not (fold0 / "claim.json").exists()


def test_finished_runs_need_only_their_text_files(quick_ablations, small_dataset, tmp_path):
    out, _ = quick_ablations
    ignore = (out / ".gitignore").read_text(encoding="utf-8").split()
    assert {"*.pt", "*.safetensors", "pred/"} <= set(ignore)
    # keep only what git would keep of one experiment: a copy without weights and predictions
    kept = tmp_path / "kept"
    shutil.copytree(
        out, kept, ignore=shutil.ignore_patterns("*.pt", "*.safetensors", "*.onnx", "pred", "claim.json")
    )
    assert not list(kept.rglob("*.safetensors"))
    _, tasks, _ = plan_experiment("ablations", small_dataset, kept, quick=True, runs=SUBSET)
    assert tasks and all(t.state == "done" for t in tasks)
    summary = run_experiment("ablations", small_dataset, kept, quick=True, runs=SUBSET, progress=False)
    assert summary["ran"] == 0
    assert read_table(kept / "table.csv") == read_table(out / "table.csv")
