"""scripts/keep_cv_records.py: a finished fold's small records are kept in the run folder's layout, only when
changed, and the kept copy reads as the cross-validation it came from."""

import pytest
from conftest import load_script
from test_crossval_report import write_folds


@pytest.fixture(scope="module")
def keep_cv_records():
    return load_script("keep_cv_records")


def test_finished_folds_kept_in_the_same_layout(tmp_path, keep_cv_records, capsys):
    runs, kept = tmp_path / "runs", tmp_path / "kept"
    write_folds(runs, "last-sw", {"a": (0.5, 0.4, 0.3), "b": (0.7, 0.6, 0.5), "c": (0.9, 0.8, 0.7)})
    for fold in ("fold0", "fold1"):
        (runs / fold / "log.csv").write_text("epoch,train_loss\n1,0.9\n")
        (runs / fold / "last.safetensors").write_bytes(b"\0" * 64)  # weights: never kept
        (runs / fold / "pred-last-sw" / "Brats18_x.nii.gz").write_bytes(b"\0" * 64)  # predictions: never kept
    (runs / "fold0" / "robustness.json").write_text('[{"model": "m"}]')
    (runs / "fold0" / "done").touch()  # fold 1 is still training: not kept
    written = keep_cv_records.keep(runs, kept)
    assert sorted(p.relative_to(kept).as_posix() for p in written) == [
        "fold0/done", "fold0/log.csv", "fold0/pred-last-sw/metrics.csv", "fold0/robustness.json"]
    assert (kept / "fold0/pred-last-sw/metrics.csv").read_bytes() == (runs / "fold0/pred-last-sw/metrics.csv").read_bytes()
    assert not [p for p in kept.rglob("*") if ".tmp" in p.name]  # no temporary file left

    # again: nothing changed, nothing written; a finished fold 1 and a changed log are
    assert keep_cv_records.keep(runs, kept) == []
    (runs / "fold1" / "done").touch()
    (runs / "fold0" / "log.csv").write_text("epoch,train_loss\n1,0.9\n2,0.5\n")
    assert keep_cv_records.main([str(runs), str(kept)]) == 0
    out = capsys.readouterr().out
    assert "4 file(s) written" in out and "fold1/pred-last-sw/metrics.csv" in out and "fold0/log.csv" in out

    # the kept records are a cross-validation crossval_report reads like the run folder
    report = load_script("crossval_report")
    assert report.report(kept, "last-sw")[0] == report.report(runs, "last-sw")[0]


def test_nothing_finished_is_one_clear_error(tmp_path, keep_cv_records):
    (tmp_path / "fold0").mkdir()
    with pytest.raises(SystemExit, match="no finished fold"):
        keep_cv_records.keep(tmp_path, tmp_path / "kept")
    with pytest.raises(SystemExit, match="no such cross-validation folder"):
        keep_cv_records.keep(tmp_path / "missing", tmp_path / "kept")


def test_label_maps_kept_only_for_the_variants_asked(tmp_path, keep_cv_records):
    runs, kept = tmp_path / "runs", tmp_path / "kept"
    write_folds(runs, "last-sw", {"a": (0.5, 0.4, 0.3), "b": (0.7, 0.6, 0.5), "c": (0.9, 0.8, 0.7)})
    write_folds(runs, "ens-sw", {"a": (0.6, 0.4, 0.3), "b": (0.8, 0.6, 0.5), "c": (0.9, 0.9, 0.7)})
    for fold in ("fold0", "fold1"):
        for variant in ("last-sw", "ens-sw"):
            (runs / fold / f"pred-{variant}" / f"{fold}_case.nii.gz").write_bytes(fold.encode() + variant.encode())
        (runs / fold / "done").touch()
    assert keep_cv_records.main([str(runs), str(kept), "--labels", "ens-sw"]) == 0
    maps = sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*.nii.gz"))
    assert maps == ["fold0/pred-ens-sw/fold0_case.nii.gz", "fold1/pred-ens-sw/fold1_case.nii.gz"]
    assert (kept / maps[1]).read_bytes() == b"fold1ens-sw"
