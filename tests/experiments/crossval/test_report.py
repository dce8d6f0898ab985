import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from medseg3d.cli import main
from medseg3d.errors import InputError
from medseg3d.experiments.crossval.report import splice_lines, variant_lines, write_crossval_report

REPO = Path(__file__).resolve().parents[3]
V2 = REPO / "docs" / "runs" / "brats-v2-cv"


def _write_metrics(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _row(case, a, b):
    return {
        "case": case,
        "dice_front": a,
        "dice_back": b,
        "hd95_front": 1.0,
        "hd95_back": 2.0,
        "vol_ref_front": 0.5,
        "vol_ref_back": 0.25,
    }


def test_v2_recorded_tables_are_reproduced_line_by_line(tmp_path):
    """`crossval --report` on v2's kept records gives the tables v2's scripts wrote
    (docs/runs/brats-v2-cv)."""
    run = tmp_path / "cv27-v1"
    shutil.copytree(V2 / "cv27-v1", run)
    assert main(["crossval", str(run), "--report"]) == 0
    new = (run / "report.md").read_text().splitlines()
    old = (V2 / "report.md").read_text().splitlines()
    tables = [line for line in old if not line.startswith(("picture:", "spliced:"))]
    assert new[: len(tables)] == tables
    assert (run / "images" / "side_by_side.png").stat().st_size > 0


def test_v2_results_block_is_reproduced():
    text = (REPO / "docs" / "results.md").read_text()
    block = text.split("<!-- v1-v2 -->\n", 1)[1].split("<!-- /v1-v2 -->", 1)[0].rstrip("\n").splitlines()
    new = splice_lines(V2 / "cv27-v1", "last-sw", "ens-cv27-strong-sw", ("v1 preset", "v2 recipe"))
    assert new[1:] == block[1:]  # the first line names the tool that wrote it


def test_variant_table_means_and_worst_first(tmp_path):
    _write_metrics(
        tmp_path / "fold0" / "pred-final" / "metrics.csv", [_row("a", 0.9, 0.8), _row("b", 0.5, 0.6)]
    )
    _write_metrics(tmp_path / "fold1" / "pred-final" / "metrics.csv", [_row("c", 0.7, 1.0)])
    lines, rows = variant_lines(tmp_path, "final")
    assert len(rows) == 3
    fold_mean = np.mean([np.mean([0.9, 0.5]), 0.7])
    assert f"| **mean +- SD over folds** | | **{fold_mean:.3f}**" in "\n".join(lines)
    pooled = (
        f"| pooled over 3 cases | | {np.mean([0.9, 0.5, 0.7]):.3f} "
        f"| {np.mean([0.8, 0.6, 1.0]):.3f} | 1.0 | 2.0 |"
    )
    assert pooled in lines
    worst = [line for line in lines if line.startswith(("| b |", "| c |"))]
    assert worst[0].startswith("| b | 0 |")  # worst front Dice first


def test_report_refuses_a_folder_with_nothing_scored(tmp_path, capsys):
    with pytest.raises(InputError, match="nothing scored"):
        write_crossval_report(tmp_path)
    _write_metrics(tmp_path / "fold0" / "pred-final" / "metrics.csv", [_row("a", 0.9, 0.8)])
    assert main(["crossval", str(tmp_path), "--report", "--variant", "nope"]) == 2
    assert "not scored" in capsys.readouterr().err


def test_crossval_without_out_is_refused(tmp_path, capsys):
    assert main(["crossval", str(tmp_path)]) == 2
    assert "--out RUN" in capsys.readouterr().err


def _brats_row(case, et_ref, et_pred, dice_et, lw_et):
    return {
        "case": case,
        "dice_WT": 0.9,
        "dice_TC": 0.8,
        "dice_ET": dice_et,
        "vol_ref_ET": et_ref,
        "vol_pred_ET": et_pred,
        "lesion_dice_ET": lw_et,
    }


def test_little_enhancing_cases_are_a_group_of_their_own(tmp_path):
    from medseg3d.experiments.crossval.report import LITTLE_ENHANCING_ML, little_enhancing_lines

    rows = [
        _brats_row("big", 20.0, 18.0, 0.85, 0.8),
        _brats_row("none", 0.0, 2.5, 0.0, 0.0),  # enhancing called where there is none
        _brats_row("small", 1.5, 0.5, 0.4, 0.4),
    ]
    _write_metrics(tmp_path / "fold0" / "pred-final" / "metrics.csv", rows)
    lines = little_enhancing_lines(tmp_path, "final")
    assert lines[0].startswith(
        f"Cases with little enhancing tumour (reference ET under {LITTLE_ENHANCING_ML:g}"
    )
    assert "2 of 3, 1 with (almost) none" in lines[0]
    table = [line for line in lines if line.startswith("| ")]
    # smallest reference first, the big case left out, then the group's mean
    assert [line.split(" | ")[0] for line in table[1:]] == ["| none", "| small", "| mean (2)"]
    assert table[1] == "| none | 0.00 | 2.50 | 0.900 / 0.800 / 0.000 | 0.000 |"
    assert table[-1] == "| mean (2) | 0.75 | 1.50 | 0.900 / 0.800 / 0.200 | 0.200 |"
    assert not any("cannot show" in line for line in lines)
    # without a case lacking enhancing tumour, the report says what it cannot show
    _write_metrics(tmp_path / "fold0" / "pred-final" / "metrics.csv", rows[::2])
    assert any(
        "cannot show how the model treats non-enhancing" in x
        for x in little_enhancing_lines(tmp_path, "final")
    )
    # not BraTS (no ET volumes): nothing
    _write_metrics(tmp_path / "fold0" / "pred-final" / "metrics.csv", [_row("a", 0.9, 0.8)])
    assert little_enhancing_lines(tmp_path, "final") == []
