"""Experiment grids: --quick runs end to end, skip and resume, --report alone, the synthetic hand phantom."""

import csv
import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from conftest import SMALL_CASES as CASES  # the cases of the `small_dataset` fixture

from medseg3d import experiments
from medseg3d.checkpoint import read_model_file
from medseg3d.cli import main
from medseg3d.errors import InputError
from medseg3d.experiments import (
    EXPERIMENTS,
    TRAIN_MINUTES,
    _settings_text,
    claim_task,
    default_budget_minutes,
    estimate_from_finished,
    estimate_seconds,
    finished_rates,
    paired_comparison,
    plan_experiment,
    release_task,
    report_only,
    run_experiment,
)
from medseg3d.labels import BINARY, get_scheme
from medseg3d.metrics import score_case
from medseg3d.preprocess import PrepConfig, target_shape

# one run keeps the default suite short; test_quick_ablations_all_runs (slow) runs the whole grid
SUBSET = ["single-map"]


@pytest.fixture(scope="module")
def quick_ablations(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "ablations"
    summary = run_experiment("ablations", small_dataset, out, quick=True, runs=SUBSET, progress=False)
    return out, summary


def read_table(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_grid_definitions():
    assert list(EXPERIMENTS) == ["modalities", "ablations", "losses", "depth", "binary", "hand"]
    assert [r.name for r in EXPERIMENTS["modalities"].runs] == [
        "flair",
        "t1",
        "t1ce",
        "t2",
        "flair+t1ce",
        "flair+t1ce+t2",
        "all",
    ]
    assert EXPERIMENTS["ablations"].convergence
    assert {r.overrides.get("loss") for r in EXPERIMENTS["losses"].runs} == {
        "jaccard",
        "dice",
        "ce",
        "wce",
        "focal",
        "jaccard+ce",
    }
    for exp in EXPERIMENTS.values():
        # the default budget shares TRAIN_MINUTES over the grid: the 6-hour promise rests on it
        assert default_budget_minutes(exp, 5) * len(exp.runs) * 5 <= TRAIN_MINUTES + 1


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


def test_paired_comparison_known_answer():
    ref = {"a": {"dice_WT": 0.5}, "b": {"dice_WT": 0.6}, "c": {"dice_WT": 0.4}}
    other = {"a": {"dice_WT": 0.6}, "b": {"dice_WT": 0.4}, "c": {"dice_WT": 0.7}, "d": {"dice_WT": 0.1}}
    # common cases a, b, c: differences +0.1, -0.2, +0.3 (ranks 1, 2, 3): W+ = 4, W- = 2; of the 8 sign
    # patterns, 6 are at least as extreme (W+ in {0, 1, 2, 4, 5, 6}), so the exact two-sided p is 0.75
    c = paired_comparison(ref, other, "dice_WT")
    assert c["n"] == 3 and c["better"] == 2 and c["worse"] == 1
    assert c["mean_diff"] == pytest.approx(0.2 / 3) and c["p"] == pytest.approx(0.75)
    assert paired_comparison(ref, {"d": {"dice_WT": 0.1}}, "dice_WT")["n"] == 0


def test_report_pairs_against_the_reference_run():
    exp = EXPERIMENTS["modalities"]
    assert exp.reference_run == "all" and EXPERIMENTS["ablations"].reference_run == "concat-jaccard"
    with pytest.raises(ValueError, match="reference run"):
        experiments.Experiment("x", "", "", (experiments.Run("a", {}, ""),), reference="b")

    def rows(wt):
        return {c: {"dice_WT": v, "fold": 0, "vol_ref_WT": 10.0} for c, v in zip("pqr", wt)}

    cases = {"flair": rows([0.5, 0.6, 0.7]), "t1": rows([0.1, 0.2, 0.3])}
    # until the reference run has scores: no paired section, cases ordered by the first scored run
    assert experiments._paired_lines(exp, cases, ["dice_WT"]) == []
    assert "worst `flair` WT first" in "\n".join(experiments._per_case_lines(exp, cases))
    cases["all"] = rows([0.9, 0.4, 0.8])
    paired = "\n".join(experiments._paired_lines(exp, cases, ["dice_WT"]))
    assert "## Paired against `all`" in paired
    assert "| flair | 3 | -0.100 (1/2," in paired and "| t1 | 3 | -0.500 (0/3," in paired
    assert "| all |" not in paired
    per_case = experiments._per_case_lines(exp, cases)
    assert "worst `all` WT first" in "\n".join(per_case)
    assert [line.split(" | ")[0] for line in per_case if line.startswith("| ") and " | 0 | " in line] == [
        "| q", "| r", "| p"]


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


def test_default_plan_turns_the_budget_into_epochs(small_dataset, tmp_path, monkeypatch):
    # depth shares training *time*: each network trains as many iterations as its own speed allows
    seconds = {8: 0.5, 16: 2.0}  # seconds per iteration by base width (levels/blocks: as the paper's)

    def fake_measure(cfg, cases_by_id):
        return seconds[cfg.net_args.get("base_channels", 8)] * (1.5 if cfg.net_args.get("levels") else 1), 0.1

    monkeypatch.setattr(experiments, "_measure_iteration", fake_measure)
    exp, tasks, record = plan_experiment("depth", small_dataset, tmp_path / "depth", folds=3)
    minutes = round(TRAIN_MINUTES / (len(exp.runs) * 3), 1)
    assert record["budget_minutes"] == minutes and record["equal"] == "time"
    n_train = 2  # 3 cases, 3 folds
    assert record["epochs"] == {
        "paper": round(minutes * 60 / (0.5 * n_train)),
        "deep": round(minutes * 60 / (0.5 * n_train)),
        "wide": round(minutes * 60 / (2.0 * n_train)),
        "five-levels": round(minutes * 60 / (0.75 * n_train)),
    }
    assert len(tasks) == len(exp.runs) * 3
    wide = next(t for t in tasks if t.run.name == "wide")
    assert wide.overrides["net_args"] == {"norm": "instance", "base_channels": 16}
    assert wide.overrides["downsample"] == 2.0
    assert all(t.overrides["net_args"]["norm"] == "instance" for t in tasks)
    assert wide.overrides["epochs"] == record["epochs"]["wide"] and wide.overrides["minutes"] is None
    # fold-major: every run's fold 0 comes before any fold 1
    assert [(t.fold, t.run.name) for t in tasks[:5]] == [(0, r) for r in exp.run_names] + [(1, "paper")]

    # ablations shares *iterations*: only the reference run is timed and every run gets its epochs
    timed = []
    monkeypatch.setattr(experiments, "_measure_iteration", lambda cfg, c: timed.append(cfg.net) or (0.5, 0.1))
    _, _, record = plan_experiment("ablations", small_dataset, tmp_path / "abl", folds=3)
    assert timed == ["kayalibay"] and len(set(record["epochs"].values())) == 1
    # modalities is compared with (and timed on) its reference run, all four sequences, not the first run
    timed_channels = []
    monkeypatch.setattr(experiments, "_measure_iteration",
                        lambda cfg, c: timed_channels.append(cfg.modalities) or (0.5, 0.1))
    plan_experiment("modalities", small_dataset, tmp_path / "mod", folds=3)
    assert timed_channels == [("flair", "t1", "t1ce", "t2")]

    # a later invocation uses the recorded epochs without timing anything, and may not change them
    monkeypatch.setattr(experiments, "_measure_iteration", None)
    _, tasks, again = plan_experiment("depth", small_dataset, tmp_path / "depth", folds=3)
    assert again["epochs"] == record_epochs(tmp_path / "depth")
    assert {t.overrides["epochs"] for t in tasks if t.run.name == "wide"} == {again["epochs"]["wide"]}
    with pytest.raises(InputError, match="--budget-minutes"):
        plan_experiment("depth", small_dataset, tmp_path / "depth", folds=3, budget_minutes=5)
    with pytest.raises(InputError, match="--epochs 7"):
        plan_experiment("depth", small_dataset, tmp_path / "depth", folds=3, epochs=7)


def record_epochs(out):
    return json.loads((out / "experiment.json").read_text(encoding="utf-8"))["epochs"]


def test_explicit_epochs_and_old_folders(small_dataset, tmp_path):
    _, tasks, record = plan_experiment("losses", small_dataset, tmp_path / "losses", folds=2, epochs=3)
    assert set(record["epochs"].values()) == {3} and {t.overrides["epochs"] for t in tasks} == {3}
    assert all(t.overrides["minutes"] is None for t in tasks)
    with pytest.raises(InputError, match="not both"):
        plan_experiment("losses", small_dataset, tmp_path / "l2", folds=2, epochs=3, budget_minutes=1)
    with pytest.raises(InputError, match="whole number"):
        plan_experiment("losses", small_dataset, tmp_path / "l3", folds=2, epochs=0)
    # a run added to the experiment since a fixed-epochs folder was made gets the same epochs
    grown = tmp_path / "grown"
    plan_experiment("binary", small_dataset, grown, folds=2, epochs=3)
    made = json.loads((grown / "experiment.json").read_text(encoding="utf-8"))
    del made["epochs"]["tiny-unet-bce-prior"]
    made["runs"].remove("tiny-unet-bce-prior")
    (grown / "experiment.json").write_text(json.dumps(made), encoding="utf-8")
    _, tasks, _ = plan_experiment("binary", small_dataset, grown, folds=2, epochs=3)
    assert {t.overrides["epochs"] for t in tasks if t.run.name == "tiny-unet-bce-prior"} == {3}
    assert json.loads((grown / "experiment.json").read_text(encoding="utf-8"))["epochs"]["tiny-unet-bce-prior"] == 3
    assert next(t for t in tasks if t.run.name == "tiny-unet-bce-prior").overrides["output_prior"] is True
    # a folder of the time-budget era: its runs are not comparable with fixed-iteration ones
    old = tmp_path / "old"
    old.mkdir()
    record = {k: record[k] for k in ("experiment", "dataset", "quick", "folds")} | {"budget_minutes": 8.7}
    (old / "experiment.json").write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(InputError, match="older medseg3d"):
        plan_experiment("losses", small_dataset, old, folds=2)


def test_estimate_from_finished_trainings(small_dataset, tmp_path):
    _, tasks, _ = plan_experiment("ablations", small_dataset, tmp_path / "abl", folds=2, epochs=3,
                                  runs=["concat-jaccard", "noskip"])
    assert finished_rates(tasks, 1) == ({}, 0.0)  # nothing finished: the runner times an iteration instead
    # fold 0 of both runs finished: 3 epochs of 1 iteration (1 training case per fold) each
    for task, wall in zip(tasks[:2], (30.0, 12.0)):
        task.folder.mkdir(parents=True)
        (task.folder / "timing.json").write_text(json.dumps({"train_wall_seconds": wall, "score_wall_seconds": 4.0}), encoding="utf-8")
        task.state = "done"
    rates, score = finished_rates(tasks, 1)
    assert rates == {"concat-jaccard": 10.0, "noskip": 4.0, "": 7.0} and score == 4.0
    # pending: each run's fold 1 at its own pace (30 + 12 s) plus scoring (2 x 4 s)
    assert estimate_from_finished(tasks, rates, score, 1) == 50.0
    tasks[2].state = "score"  # trained, only scoring left
    assert estimate_from_finished(tasks, rates, score, 1) == 4.0 + 12.0 + 4.0


def test_precision_is_recorded_and_kept(small_dataset, tmp_path):
    _, tasks, record = plan_experiment("losses", small_dataset, tmp_path / "losses", folds=2, epochs=3)
    assert record["precision"] == "mixed" and {t.overrides["precision"] for t in tasks} == {"mixed"}
    assert json.loads((tmp_path / "losses" / "experiment.json").read_text(encoding="utf-8"))["precision"] == "mixed"
    _, tasks, _ = plan_experiment("losses", small_dataset, tmp_path / "losses", folds=2)  # adopts the record
    assert {t.overrides["precision"] for t in tasks} == {"mixed"}
    with pytest.raises(InputError, match="was run with --precision mixed, now fp32"):
        plan_experiment("losses", small_dataset, tmp_path / "losses", folds=2, precision="fp32")
    with pytest.raises(InputError, match="unknown precision"):
        plan_experiment("losses", small_dataset, tmp_path / "l2", folds=2, epochs=3, precision="half")
    _, tasks, record = plan_experiment("losses", small_dataset, tmp_path / "l3", folds=2, epochs=3, precision="fp32")
    assert {t.overrides["precision"] for t in tasks} == {"fp32"} and "precision=fp32" in _settings_text(record)
    # a folder from before the setting trained in "auto" (float32 on a CPU) and goes on doing so
    old = tmp_path / "old"
    old.mkdir()
    kept = {k: v for k, v in json.loads((tmp_path / "losses" / "experiment.json").read_text(encoding="utf-8")).items()
            if k != "precision"}
    (old / "experiment.json").write_text(json.dumps(kept), encoding="utf-8")
    _, tasks, _ = plan_experiment("losses", small_dataset, old, folds=2)
    assert {t.overrides["precision"] for t in tasks} == {"auto"}


def test_instance_norm_for_every_network_with_the_option(small_dataset, tmp_path):
    _, tasks, _ = plan_experiment("binary", small_dataset, tmp_path / "binary", folds=2, epochs=1)
    args = {t.run.name: t.overrides["net_args"] for t in tasks}
    assert args["tiny-unet-bce"] == args["tiny-unet-bce-prior"] == {"norm": "instance"}
    assert args["kayalibay-bce"] == args["kayalibay-jaccard"] == {"norm": "instance"}
    from medseg3d.experiments import _net_args

    assert _net_args("twopath") == {}  # Havaei's nets have no norm option


def test_binary_scheme_scores_class_and_region():
    # the binary class and its region carry different names, so evaluate can score both
    a = np.zeros((6, 6, 6), np.uint8)
    a[1:4, 1:4, 1:4] = 1
    row = score_case(a, a, {"tumour": (1,)}, BINARY.regions)
    assert row["dice_tumour"] == row["dice_WT"] == 1.0
    assert get_scheme("binary-regions").n_outputs == 1


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


# ------------------------------------------------------------------------------ synthetic hand phantom


def make_synthetic_hand_dataset(root, n_cases=3, shape=(72, 64, 40), seed=0):
    """A SYNTHETIC phantom in nnU-Net layout (no real anatomy): four 'fingers' along x, each a rod of four
    bone segments labelled 1 metacarpal, 2 proximal, 3 middle, 4 distal, bright in soft tissue plus noise."""
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    x, y, z = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    for i in range(n_cases):
        label = np.zeros(shape, np.uint8)
        image = rng.normal(10, 2, shape)
        image[(abs(y - shape[1] / 2) < shape[1] * 0.4) & (abs(z - shape[2] / 2) < shape[2] * 0.3)] += 30
        bounds = np.cumsum([6 + rng.integers(0, 4), 22, 12, 9, 7])
        for f in range(4):
            cy, cz = 12 + 13 * f + rng.integers(-2, 3), shape[2] / 2 + rng.integers(-3, 4)
            rod = (y - cy) ** 2 + (z - cz) ** 2 <= 9
            for k in range(4):
                label[rod & (x >= bounds[k]) & (x < bounds[k + 1])] = k + 1
        image[label > 0] += 60
        case = f"synthetic_hand_{i:03d}"
        nib.save(
            nib.Nifti1Image(image.astype(np.float32), np.eye(4)),
            str(root / "imagesTr" / f"{case}_0000.nii.gz"),
        )
        nib.save(nib.Nifti1Image(label, np.eye(4)), str(root / "labelsTr" / f"{case}.nii.gz"))
    labels = {"background": 0, "metacarpals": 1, "proximal": 2, "middle": 3, "distal": 4}
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "name": "synthetic hand phantom (not real data)",
                "channel_names": {"0": "MRI"},
                "labels": labels,
                "numTraining": n_cases,
                "file_ending": ".nii.gz",
            }
        )
    , encoding="utf-8")
    return root


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


def test_hand_configuration_rejects_other_label_sets(tmp_path):
    data = make_synthetic_hand_dataset(tmp_path / "synthetic_hand", n_cases=2)
    info = json.loads((data / "dataset.json").read_text(encoding="utf-8"))
    info["labels"] = {"background": 0, "bone": 1}
    (data / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(InputError, match="five classes"):
        plan_experiment("hand", data, tmp_path / "out", quick=True)


def test_claims_let_several_invocations_share_an_experiment(quick_ablations, small_dataset, tmp_path, monkeypatch):
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

    # held when this invocation passed it, finished by the other one before this one ends: not reported as held
    def finished_elsewhere(folder):
        (folder / "metrics.csv").write_bytes(scored)
        return False

    with monkeypatch.context() as m:
        m.setattr(experiments, "claim_task", finished_elsewhere)
        summary = run_experiment("ablations", small_dataset, out, quick=True, runs=["single-map"], progress=False)
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


def _fake_finished_run(task, split, modalities, **changes):
    """Write what a finished training of ``task`` leaves behind (config.json, metrics.csv), with changes."""
    from medseg3d.datasets import fold_ids

    train_ids, val_ids = fold_ids(split, task.fold)
    config = experiments._train_config(task.overrides).to_dict()
    config |= {"modalities": modalities, "train_cases": train_ids, "val_cases": val_ids, "world_size": 1,
               "iters_per_epoch": len(train_ids)}
    config.pop("compile")  # as written before the setting existed: read as its default
    task.folder.mkdir(parents=True)
    (task.folder / "config.json").write_text(json.dumps(config | changes), encoding="utf-8")
    (task.folder / "metrics.csv").write_text("case,dice_WT\nx,0.5\n", encoding="utf-8")


def test_reuse_matches_only_identical_trainings(small_dataset, tmp_path):
    from medseg3d.datasets import find_cases, load_split

    modalities = list(find_cases(small_dataset, require_label=True)[0].modalities)
    _, source_tasks, _ = plan_experiment("ablations", small_dataset, tmp_path / "abl", folds=3, epochs=2,
                                         runs=["concat-jaccard", "concat-ce"])
    split = load_split(tmp_path / "abl" / "split.json")
    for task in source_tasks:
        changes = {"precision": "fp32"} if task.run.name == "concat-ce" and task.fold == 2 else {}
        if task.run.name == "concat-jaccard" and task.fold == 1:
            changes = {"val_cases": ["other"]}  # another fold's cases
        _fake_finished_run(task, split, modalities, **changes)
    _, tasks, record = plan_experiment("losses", small_dataset, tmp_path / "losses", folds=3, epochs=2)
    found = experiments.find_reusable(tasks, [tmp_path / "abl"], record, split, modalities)
    pairs = sorted((tasks[i].run.name, tasks[i].fold, f.parent.name, f.name) for i, f in found.items())
    assert pairs == [
        ("ce", 0, "concat-ce", "fold0"),
        ("ce", 1, "concat-ce", "fold1"),
        ("jaccard", 0, "concat-jaccard", "fold0"),
        ("jaccard", 2, "concat-jaccard", "fold2"),
    ]
    # another budget: nothing matches
    _, other, record3 = plan_experiment("losses", small_dataset, tmp_path / "l3", folds=3, epochs=3)
    assert experiments.find_reusable(other, [tmp_path / "abl"], record3, split, modalities) == {}
    # quick runs never reuse; a folder that is not an experiment is refused in one line
    assert experiments.find_reusable(tasks, [tmp_path / "abl"], record | {"quick": True}, split, modalities) == {}
    with pytest.raises(InputError, match="not an experiment folder"):
        experiments.find_reusable(tasks, [tmp_path], record, split, modalities)


@pytest.mark.slow  # trains six quick runs: about a minute idle, several under load
def test_reused_runs_are_copied_and_reported(small_dataset, tmp_path, capsys):
    """End to end: a run trained in one experiment is copied into another, not trained again."""
    source = tmp_path / "abl"
    run_experiment("ablations", small_dataset, source, folds=3, epochs=1, runs=["concat-jaccard"],
                   progress=False, report=False)
    # --plan: what would be copied and trained, and nothing written
    plan = run_experiment("losses", small_dataset, tmp_path / "losses", folds=3, epochs=1,
                          runs=["jaccard", "dice"], reuse=[source], plan=True)
    assert (plan["to_copy"], plan["to_train"], plan["ran"]) == (3, 3, 0)
    assert not (tmp_path / "losses").exists()
    printed = capsys.readouterr().out
    assert "jaccard  0     3        0" in printed and "dice     0     0        3" in printed
    assert "estimated time" in printed and "nothing was trained or written" in printed
    summary = run_experiment("losses", small_dataset, tmp_path / "losses", folds=3, epochs=1,
                             runs=["jaccard"], reuse=[source])
    assert summary["ran"] == 0 and summary["reused"] == 3
    assert "reused: 3 training(s)" in capsys.readouterr().out
    for k in range(3):
        copy, original = tmp_path / "losses" / "jaccard" / f"fold{k}", source / "concat-jaccard" / f"fold{k}"
        assert (copy / "metrics.csv").read_text(encoding="utf-8") == (original / "metrics.csv").read_text(encoding="utf-8")
        assert json.loads((copy / "reused.json").read_text(encoding="utf-8"))["source"] == str(original.resolve())
        assert not (copy / "model.safetensors").exists()
    table = (tmp_path / "losses" / "table.md").read_text(encoding="utf-8")
    assert "reused, not trained again: `jaccard` folds 0, 1, 2 from `abl/concat-jaccard`" in table
    assert "not counting the 3 copied with `--reuse`" in table
    rows = {r["run"]: r for r in read_table(tmp_path / "losses" / "table.csv")}
    assert rows["jaccard"]["folds_done"] == "3"
    capsys.readouterr()
    args = ["experiment", "losses", str(small_dataset), "--folds", "3", "--epochs", "1", "--runs", "dice"]
    assert main(args + ["--out", str(tmp_path / "l2"), "--reuse", str(tmp_path / "missing")]) == 2
    assert "no such experiment folder; check --reuse" in capsys.readouterr().err
    again = ["experiment", "ablations", str(small_dataset), "--folds", "3", "--epochs", "1", "--runs", "concat-jaccard"]
    assert main(again + ["--out", str(source), "--reuse", str(source)]) == 2
    assert "is the experiment folder itself" in capsys.readouterr().err


def _no_timing(*args, **kwargs):
    raise AssertionError("--plan must not time iterations (minutes on a CPU)")


def test_plan_writes_nothing(small_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(experiments, "_measure_iteration", _no_timing)
    out = tmp_path / "binary"
    assert main(["experiment", "binary", str(small_dataset), "--out", str(out), "--quick", "--plan"]) == 0
    printed = capsys.readouterr().out
    assert not out.exists()
    assert "estimated time: not estimated by --plan (it times nothing" in printed
    assert "tiny-unet-bce-prior  0     0        2" in printed
    # a real start times one iteration per distinct network and output (the tiny U-Net; the paper's net with
    # 1 and with 2 outputs)
    _, tasks, _ = plan_experiment("binary", small_dataset, out, quick=True, write=False)
    groups = [sorted({t.run.name for t in group}) for group in experiments.speed_groups(tasks)]
    assert sorted(groups) == [["kayalibay-bce"], ["kayalibay-jaccard"], ["tiny-unet-bce", "tiny-unet-bce-prior"]]
    assert not out.exists()


def test_plan_of_a_time_budget_prints_at_once(small_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(experiments, "_measure_iteration", _no_timing)
    out = tmp_path / "depth"
    assert main(["experiment", "depth", str(small_dataset), "--out", str(out), "--folds", "3",
                 "--budget-minutes", "2", "--plan"]) == 0
    printed = capsys.readouterr().out
    assert "2 training minutes per run and fold, turned into epochs by timing each network" in printed
    # 12 trainings of 2 minutes (+5 s start-up each), then each one's validation case scored (8 s)
    assert f"about {experiments.format_duration(12 * 125 + 12 * 8)} (12 trainings of 2 minutes" in printed
    assert "paper        0     0        3         0          0         -" in printed
    assert not out.exists()
