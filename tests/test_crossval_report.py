"""scripts/crossval_report.py: fold means, pooled means, worst-first case list, variants paired per case."""

import csv
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "crossval_report.py"


@pytest.fixture(scope="module")
def crossval_report():
    spec = importlib.util.spec_from_file_location("crossval_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_metrics(path: Path, rows: list[dict]) -> None:
    path.mkdir(parents=True)
    keys = ["case"] + [f"{m}_{r}" for m in ("dice", "hd95", "vol_ref") for r in ("WT", "TC", "ET")]
    with open(path / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, 1.0) for k in keys})


def test_report_and_pairing(tmp_path, crossval_report, capsys):
    # fold 0: cases a, b; fold 1: case c. The "sw" variant is better on a and c, worse on b.
    last = {"a": (0.5, 0.4, 0.3), "b": (0.7, 0.6, 0.5), "c": (0.9, 0.8, 0.7)}
    sw = {"a": (0.6, 0.4, 0.3), "b": (0.6, 0.6, 0.5), "c": (0.95, 0.8, 0.7)}
    for variant, scores in (("last", last), ("last-sw", sw)):
        for fold, cases in ((0, "ab"), (1, "c")):
            rows = [{"case": c, **{f"dice_{r}": v for r, v in zip(("WT", "TC", "ET"), scores[c])}} for c in cases]
            write_metrics(tmp_path / f"fold{fold}" / f"pred-{variant}", rows)
    assert crossval_report.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # per fold: fold 0 WT (0.5 + 0.7) / 2 = 0.600, fold 1 0.900; over folds 0.750 +- 0.212; pooled 0.700
    assert "| 0 | 2 | 0.600 | 0.500 | 0.400 |" in out and "| 1 | 1 | 0.900 |" in out
    assert "**0.750** +- 0.212" in out and "| pooled over 3 cases | | 0.700 |" in out
    worst_first = [line.split(" | ")[0] for line in out.splitlines() if line.startswith(("| a |", "| b |", "| c |"))]
    assert worst_first[:3] == ["| a", "| b", "| c"]
    # paired: WT differences +0.1, -0.1, +0.05 -> mean +0.017, 2 better, 1 worse; TC and ET unchanged
    paired = out.split("Paired against `last`")[1]
    assert "| last-sw | 3 | +0.017 (2/1, p " in paired and "+0.000 (0/0, p n/a)" in paired


def test_nothing_scored(tmp_path, crossval_report, capsys):
    assert crossval_report.main([str(tmp_path)]) == 1
    assert "nothing scored" in capsys.readouterr().err
