"""Planning: the budget turned into epochs once, recorded settings kept, --plan writes and times nothing."""

import json

import pytest

from medseg3d import experiments
from medseg3d.cli import main
from medseg3d.errors import InputError
from medseg3d.experiments import (
    TRAIN_MINUTES,
    plan_experiment,
    settings_text,
    timing,
)


def test_default_plan_turns_the_budget_into_epochs(small_dataset, tmp_path, monkeypatch):
    # depth shares training *time*: each network trains as many iterations as its own speed allows
    seconds = {8: 0.5, 16: 2.0}  # seconds per iteration by base width (levels/blocks: as the paper's)

    def fake_measure(cfg, cases_by_id):
        return seconds[cfg.net_args.get("base_channels", 8)] * (1.5 if cfg.net_args.get("levels") else 1), 0.1

    monkeypatch.setattr(timing, "measure_iteration", fake_measure)
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
    monkeypatch.setattr(timing, "measure_iteration", lambda cfg, c: timed.append(cfg.net) or (0.5, 0.1))
    _, _, record = plan_experiment("ablations", small_dataset, tmp_path / "abl", folds=3)
    assert timed == ["kayalibay"] and len(set(record["epochs"].values())) == 1
    # modalities is compared with (and timed on) its reference run, all four sequences, not the first run
    timed_channels = []
    monkeypatch.setattr(
        timing, "measure_iteration", lambda cfg, c: timed_channels.append(cfg.modalities) or (0.5, 0.1)
    )
    plan_experiment("modalities", small_dataset, tmp_path / "mod", folds=3)
    assert timed_channels == [("flair", "t1", "t1ce", "t2")]

    # a later invocation uses the recorded epochs without timing anything, and may not change them
    monkeypatch.setattr(timing, "measure_iteration", None)
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
    assert (
        json.loads((grown / "experiment.json").read_text(encoding="utf-8"))["epochs"]["tiny-unet-bce-prior"]
        == 3
    )
    assert next(t for t in tasks if t.run.name == "tiny-unet-bce-prior").overrides["output_prior"] is True
    # a folder of the time-budget era: its runs are not comparable with fixed-iteration ones
    old = tmp_path / "old"
    old.mkdir()
    record = {k: record[k] for k in ("experiment", "dataset", "quick", "folds")} | {"budget_minutes": 8.7}
    (old / "experiment.json").write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(InputError, match="older medseg3d"):
        plan_experiment("losses", small_dataset, old, folds=2)


def test_precision_is_recorded_and_kept(small_dataset, tmp_path):
    _, tasks, record = plan_experiment("losses", small_dataset, tmp_path / "losses", folds=2, epochs=3)
    assert record["precision"] == "mixed" and {t.overrides["precision"] for t in tasks} == {"mixed"}
    assert (
        json.loads((tmp_path / "losses" / "experiment.json").read_text(encoding="utf-8"))["precision"]
        == "mixed"
    )
    _, tasks, _ = plan_experiment("losses", small_dataset, tmp_path / "losses", folds=2)  # adopts the record
    assert {t.overrides["precision"] for t in tasks} == {"mixed"}
    with pytest.raises(InputError, match="was run with --precision mixed, now fp32"):
        plan_experiment("losses", small_dataset, tmp_path / "losses", folds=2, precision="fp32")
    with pytest.raises(InputError, match="unknown precision"):
        plan_experiment("losses", small_dataset, tmp_path / "l2", folds=2, epochs=3, precision="half")
    _, tasks, record = plan_experiment(
        "losses", small_dataset, tmp_path / "l3", folds=2, epochs=3, precision="fp32"
    )
    assert {t.overrides["precision"] for t in tasks} == {"fp32"} and "precision=fp32" in settings_text(record)
    # a folder from before the setting trained in "auto" (float32 on a CPU) and goes on doing so
    old = tmp_path / "old"
    old.mkdir()
    kept = {
        k: v
        for k, v in json.loads((tmp_path / "losses" / "experiment.json").read_text(encoding="utf-8")).items()
        if k != "precision"
    }
    (old / "experiment.json").write_text(json.dumps(kept), encoding="utf-8")
    _, tasks, _ = plan_experiment("losses", small_dataset, old, folds=2)
    assert {t.overrides["precision"] for t in tasks} == {"auto"}


def _no_timing(*args, **kwargs):
    raise AssertionError("--plan must not time iterations (minutes on a CPU)")


def test_plan_writes_nothing(small_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(timing, "measure_iteration", _no_timing)
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
    assert sorted(groups) == [
        ["kayalibay-bce"],
        ["kayalibay-jaccard"],
        ["tiny-unet-bce", "tiny-unet-bce-prior"],
    ]
    assert not out.exists()


def test_plan_of_a_time_budget_prints_at_once(small_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(timing, "measure_iteration", _no_timing)
    out = tmp_path / "depth"
    assert (
        main(
            [
                "experiment",
                "depth",
                str(small_dataset),
                "--out",
                str(out),
                "--folds",
                "3",
                "--budget-minutes",
                "2",
                "--plan",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "2 training minutes per run and fold, turned into epochs by timing each network" in printed
    # 12 trainings of 2 minutes (+5 s start-up each), then each one's validation case scored (8 s)
    assert f"about {experiments.format_duration(12 * 125 + 12 * 8)} (12 trainings of 2 minutes" in printed
    assert "paper        0     0        3         0          0         -" in printed
    assert not out.exists()
