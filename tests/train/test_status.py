"""medseg3d.train.status (``medseg3d info RUN``): progress, speed, time to go, validation, resumability."""

import csv
import json

import pytest

from medseg3d.cli import main
from medseg3d.errors import InputError
from medseg3d.train.status import describe_run, is_run_folder

KEYS = [
    "epoch",
    "iteration",
    "seconds",
    "lr",
    "train_loss",
    "epoch_seconds",
    "data_seconds",
    "dice_WT",
    "dice_TC",
    "dice_ET",
    "score",
    "val_seconds",
]


def make_run(root, epochs_done, epoch_seconds, scores=None, epochs=100, **config):
    """A run folder as medseg3d train writes it: config.json, log.csv (epoch_seconds[i] for epoch i + 1)."""
    root.mkdir(parents=True)
    settings = {
        "preset": "brats",
        "net": "kayalibay",
        "augment": "strong",
        "patch": [64, 64, 64],
        "downsample": 2.0,
        "epochs": epochs,
        "iters_per_epoch": 50,
        "dataset": "data/brats",
        "train_cases": ["a", "b", "c"],
        "val_cases": ["d"],
        "fold": 1,
        "split_file": "split.json",
    } | config
    (root / "config.json").write_text(json.dumps(settings))
    with open(root / "log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=KEYS)
        writer.writeheader()
        total = 0.0
        for epoch in range(1, epochs_done + 1):
            total += epoch_seconds[epoch - 1]
            row = {
                "epoch": epoch,
                "iteration": 50 * epoch,
                "seconds": total,
                "lr": 0.001,
                "train_loss": 0.5,
                "epoch_seconds": epoch_seconds[epoch - 1],
                "data_seconds": 1.0,
            }
            if scores and epoch in scores:
                row |= dict(zip(("dice_WT", "dice_TC", "dice_ET", "score"), scores[epoch]))
            writer.writerow(row)
    return root


def test_progress_speed_and_time_to_go(tmp_path):
    # 20 epochs: the first ten at 100 s, the last ten at 40 s except one paused epoch of 1000 s (the median
    # ignores it)
    seconds = [100.0] * 10 + [40.0] * 9 + [1000.0]
    run = make_run(
        tmp_path / "run", 20, seconds, scores={10: (0.8, 0.7, 0.6, 0.7), 20: (0.85, 0.75, 0.65, 0.75)}
    )
    (run / "last.pt").write_bytes(b"")
    assert is_run_folder(run) and not is_run_folder(tmp_path)
    text = describe_run(run)
    assert (
        "settings     preset brats, network kayalibay, augment strong, patches 64x64x64, downsample 2" in text
    )
    assert "cases        3 training, 1 validation (fold 1 of split.json) from data/brats" in text
    assert "progress     epoch 20 of 100, 1,000 of 5,000 iterations (20%)" in text
    # 2360 s so far (39 min); median of the last ten 40 s; 80 epochs left -> 3200 s = 53 min
    assert "39 min of training so far; 40.0 s per epoch (median of the last 10), about 53 min to go" in text
    assert "validation   epoch 20: WT 0.850 TC 0.750 ET 0.650; best score 0.750 at epoch 20" in text
    assert f"resumable from epoch 20: medseg3d train --out {run} --resume" in text


def test_budget_caps_time_to_go_and_finished_run(tmp_path):
    run = make_run(tmp_path / "capped", 10, [60.0] * 10, minutes=15)  # 600 s used of 900: 5 min left, not 90
    assert (
        "10 min of training so far; 60.0 s per epoch (median of the last 10), about 5 min to go"
        in describe_run(run)
    )
    done = make_run(tmp_path / "done", 100, [30.0] * 100, fold=None, all_cases=True)
    (done / "model.safetensors").write_bytes(b"")
    text = describe_run(done)
    assert (
        "(every case: the final model)" in text
        and "50 min of training in all" in text
        and "to go" not in text
    )
    assert f"state        finished: {done / 'model.safetensors'}" in text


def test_info_dispatches_runs_and_rejects_damaged_settings(tmp_path, capsys):
    run = make_run(tmp_path / "run", 3, [10.0] * 3)
    assert main(["info", str(run)]) == 0
    assert capsys.readouterr().out.startswith(f"training run {run}\n")
    assert "no checkpoint yet (last.pt)" in describe_run(run)
    with open(run / "log.csv", "a") as f:
        f.write("4,200,4")  # a line cut off by a kill mid-write: left out
    assert "progress     epoch 3 of 100, 150 of 5,000 iterations (3%)" in describe_run(run)
    (run / "config.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="not a run's settings"):
        describe_run(run)
    (run / "config.json").write_text("{broken")
    assert main(["info", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unreadable run settings" in err
