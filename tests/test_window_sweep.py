"""scripts/window_sweep.py: one pass and windows of several sizes scored on each fold's held-out cases as
`medseg3d predict` segments them."""

import json

import numpy as np
import pytest
from conftest import load_script
from test_crossval_ensemble import _case, _fold

from medseg3d.io import read_volume
from medseg3d.labels import get_scheme
from medseg3d.metrics import region_dice
from medseg3d.predict import predict


def test_the_sweep_scores_what_predict_writes(tmp_path, capsys):
    script = load_script("window_sweep")
    run = _fold(tmp_path / "cv", 0)
    for seed, name in enumerate(("Case_A", "Case_B")):
        _case(run / "heldout", name, seed)
    out = tmp_path / "rows.json"
    assert script.main([str(run.parent), "--windows", "16", "24", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert sorted({(r["case"], r["variant"]) for r in rows}) == [
        (c, v) for c in ("Case_A", "Case_B") for v in ("one pass", "windows 16^3", "windows 24^3")]
    printed = capsys.readouterr().out
    assert "2 held-out cases" in printed and "| one pass |" in printed and "+0.000 / +0.000 / +0.000" in printed
    scheme = get_scheme("brats")
    for case in ("Case_A", "Case_B"):  # one pass is exactly predict --whole-volume
        (written,) = predict(run / "last.safetensors", [run / "heldout" / case], tmp_path / f"{case}.nii.gz",
                             sliding_window=False, progress=False)
        ref = read_volume(run / "heldout" / case / f"{case}_seg.nii.gz").array
        want = region_dice(read_volume(written).array, ref, scheme.regions)
        got = next(r for r in rows if r["case"] == case and r["variant"] == "one pass")
        assert {k: got[k] for k in ("WT", "TC", "ET")} == {k: want[k] for k in ("WT", "TC", "ET")}
    assert all(np.isfinite(r["seconds"]) and r["seconds"] > 0 for r in rows)


def test_a_folder_without_trained_folds_is_refused(tmp_path):
    script = load_script("window_sweep")
    (tmp_path / "cv").mkdir()
    with pytest.raises(SystemExit, match="no fold"):
        script.main([str(tmp_path / "cv")])
    with pytest.raises(SystemExit, match="at least 8"):
        script.main([str(tmp_path / "cv"), "--windows", "4"])
