"""scripts/learning_curves.py: held-out Dice per window of epochs and the late slope, from crossval folds'
logs."""

import csv
import math

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def curves():
    return load_script("learning_curves")


def write_log(run, dice):  # dice: epoch -> (WT, TC, ET); other epochs have no validation
    run.mkdir(parents=True)
    keys = ["epoch", "iteration", "train_loss", "dice_WT", "dice_TC", "dice_ET"]
    with open(run / "log.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for epoch in range(1, 121):
            row = {"epoch": epoch, "iteration": 50 * epoch, "train_loss": 0.5}
            if epoch in dice:
                row |= dict(zip(("dice_WT", "dice_TC", "dice_ET"), dice[epoch]))
            writer.writerow(row)


def test_windows_gain_and_slope(tmp_path, curves, capsys):
    # WT rises 0.1 per 100 epochs throughout; TC is flat at 0.7; ET is 0.5 before epoch 60 and 0.6 after
    dice = {e: (0.7 + 0.001 * e, 0.7, 0.5 if e <= 60 else 0.6) for e in range(10, 121, 10)}
    write_log(tmp_path / "cv" / "fold0", dice)
    (tmp_path / "cv" / "fold0" / "done").touch()
    write_log(tmp_path / "cv" / "fold1", dice)  # not done: left out
    s = curves.summarise(curves.read_curve(tmp_path / "cv" / "fold0" / "log.csv"), window=60)
    assert s["WT"]["slope"] == pytest.approx(0.1) and s["WT"]["end"] == 120
    # windows (0, 60] and (60, 120]: epochs 10..60 and 70..120, means 0.735 and 0.795
    assert s["WT"]["earlier"] == pytest.approx(0.735) and s["WT"]["late"] == pytest.approx(0.795)
    assert s["TC"]["gain"] == pytest.approx(0.0) and s["TC"]["slope"] == pytest.approx(0.0)
    assert s["ET"]["gain"] == pytest.approx(0.1) and s["ET"]["slope"] == pytest.approx(0.0)
    assert curves.main([str(tmp_path / "cv"), "--window", "60", "--png", str(tmp_path / "lc.png")]) == 0
    out = capsys.readouterr().out
    assert "| fold0 | WT | 120 | 0.735 | 0.795 | +0.060 | +0.100 |" in out and "fold1" not in out
    assert (tmp_path / "lc.png").read_bytes()[:4] == b"\x89PNG"


def test_slope_needs_two_points_and_empty_folder_is_an_error(tmp_path, curves, capsys):
    assert math.isnan(curves.slope_per_100([(10, 0.5)]))
    assert curves.main([str(tmp_path)]) == 2
    assert "no finished fold" in capsys.readouterr().err
