"""scripts/levers_v2.py: each lever minus the v1 preset in windows, per fold and paired over all folds."""

import pytest
from conftest import load_script
from test_crossval_report import write_folds


@pytest.fixture(scope="module")
def levers():
    return load_script("levers_v2")


def test_levers_per_fold_and_paired(tmp_path, levers, capsys):
    # fold 0 holds cases a and b, fold 1 case c (write_folds)
    write_folds(tmp_path / "cv27-v1", "last-sw", {"a": (0.5, 0.4, 0.3), "b": (0.7, 0.6, 0.5), "c": (0.9, 0.8, 0.7)})
    write_folds(tmp_path / "cv27-v1", "ens-cv27-strong-sw",
                {"a": (0.6, 0.4, 0.2), "b": (0.8, 0.6, 0.5), "c": (0.85, 0.8, 0.7)})
    write_folds(tmp_path / "cv27-strong", "last-sw", {"a": (0.5, 0.5, 0.3), "b": (0.7, 0.6, 0.5), "c": (0.9, 0.8, 0.7)})
    doc = tmp_path / "results.md"
    doc.write_text("x\n<!-- levers -->\n<!-- /levers -->\ny\n", encoding="utf-8")
    assert levers.main([str(tmp_path), "--splice", f"{doc}:levers"]) == 0
    rows = {line.split(" | ")[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")}
    assert "| one whole-volume pass instead of windows" not in rows  # not scored anywhere: no row
    v2 = rows["| **v2: the two presets as one ensemble in windows**"]
    # fold 0: WT (+0.1 + 0.1) / 2, TC 0, ET (-0.1 + 0) / 2; fold 1: WT -0.05; all: WT +0.05 (2 better, 1 worse)
    assert v2.startswith("| **v2: the two presets as one ensemble in windows** | +0.100 / +0.000 / -0.050 (2) | "
                         "-0.050 / +0.000 / +0.000 (1) | +0.050 (2/1, p ")
    strong = rows["| 3. strong augmentation alone (`--augment strong`, windows)"]
    assert "| +0.000 / +0.050 / +0.000 (2) | +0.000 / +0.000 / +0.000 (1) | +0.000 (0/0" in strong
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("x\n<!-- levers -->\nEach row minus") and text.endswith("<!-- /levers -->\ny\n")


def test_no_reference_is_one_line(tmp_path, levers):
    with pytest.raises(SystemExit, match="no fold\\*/pred-last-sw/metrics.csv"):
        levers.main([str(tmp_path)])
