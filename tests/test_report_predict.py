"""predict --report: one offline page and its JSON beside each segmentation."""

import json

from medseg3d.cli import main


def test_predict_report_writes_a_page_and_json_with_the_volumes(brats_root, tmp_path, capsys):
    case = brats_root / "Brats18_2013_2_1"
    out = tmp_path / "seg.nii.gz"
    assert main(["predict", "brats", str(case), "-o", str(out), "--whole-volume", "--report"]) == 0
    assert "seg.report.html" in capsys.readouterr().out
    page = (tmp_path / "seg.report.html").read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html") and "data:image/png;base64," in page
    assert "http://" not in page.replace("http://www.w3.org", "")  # nothing fetched when opened offline
    summary = json.loads((tmp_path / "seg.json").read_text(encoding="utf-8"))
    text = json.dumps(summary)
    assert "WT" in text and "ET" in text


def test_uncertainty_is_refused_in_one_line_until_predict_takes_it(brats_root, tmp_path, capsys):
    out = tmp_path / "seg.nii.gz"
    assert main(["predict", "brats", str(brats_root / "Brats18_2013_2_1"), "-o", str(out), "--uncertainty"]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not out.exists()
