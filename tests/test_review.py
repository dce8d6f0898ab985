"""The exit-code contract of `medseg3d predict` (issue 36 item 1): 0 written and trusted, 3 written but a
quality check fired (recorded in the case's JSON), 2 refused (also with --strict where a check fires, nothing
written); warnings on standard error, --json on standard output."""

from __future__ import annotations

import json

import pytest
from layouts import MODALITIES, crop_case

from medseg3d.cli import main
from medseg3d.io import write_volume
from medseg3d.review import EXIT_OK, EXIT_REFUSED, EXIT_REVIEW, check_name, collecting, fire


def _positional(brats_root, case_id, folder):
    vols = crop_case(brats_root, case_id)
    files = []
    for k, m in enumerate(MODALITIES):
        files.append(str(write_volume(vols[m], folder / f"c{k}.nii.gz")))
    return files


def test_fired_checks_are_collected_named_and_shown_on_stderr(capsys):
    with collecting() as outer:
        with collecting() as inner:
            fire(
                "a", "t2: 53% of the brain lies outside this scan's field of view; the model sees zeros there"
            )
        fire("b", "case b: the channels may be swapped: ...")
    assert [c.name for c in inner] == ["field_of_view"]
    assert [(c.case, c.name) for c in outer] == [("a", "field_of_view"), ("b", "sequences")]
    out, err = capsys.readouterr()
    assert out == "" and err.count("warning: ") == 2
    assert check_name("the brain fits the template poorly after registration") == "registration"
    assert (
        check_name("12% of the tumour's surface lies on the edge of the brain mask") == "tumour_cut_by_mask"
    )


def test_a_trusted_result_exits_0_and_json_is_machine_readable(brats_root, tmp_path, capsys):
    files = _positional(brats_root, "Brats18_2013_2_1", tmp_path)  # a crop whose order its content confirms
    out = tmp_path / "out" / "p.nii.gz"
    assert main(["predict", "brats-v1", *files, "-o", str(out), "--whole-volume", "--json"]) == EXIT_OK
    stdout, stderr = capsys.readouterr()
    (record,) = [json.loads(line) for line in stdout.splitlines()]
    assert record == {"case": "p", "output": str(out), "status": "ok", "checks": []}
    assert "agrees with their intensities" in stderr and "warning" not in stderr


def test_a_result_a_check_doubts_exits_3_with_the_checks_in_its_json_and_strict_refuses(
    brats_root, tmp_path, capsys
):
    """A crop too small for a confident reading whose reading disagrees with the assumed order: written, but
    flagged; with --strict refused before anything is written."""
    files = _positional(brats_root, "Brats18_2013_20_1", tmp_path)
    out = tmp_path / "out" / "p.nii.gz"
    assert main(["predict", "brats-v1", *files, "-o", str(out), "--whole-volume", "--quiet"]) == EXIT_REVIEW
    stdout, stderr = capsys.readouterr()
    assert stdout == ""  # --quiet: nothing on standard output; the warning on standard error
    assert "warning: case c0: the channels may be swapped" in stderr
    record = json.loads(out.with_name("p.json").read_text())
    assert [c["name"] for c in record["checks"]] == ["sequences"]
    assert record["sequence_identification"]["confidence"] < 0.99
    strict = tmp_path / "strict" / "p.nii.gz"
    assert (
        main(["predict", "brats-v1", *files, "-o", str(strict), "--whole-volume", "--strict"]) == EXIT_REFUSED
    )
    stdout, stderr = capsys.readouterr()
    assert (
        "medseg3d: error: case c0: refused by --strict, nothing written: 1 quality check(s) fired (sequences)"
        in stderr
    )
    assert "medseg3d: error" not in stdout
    assert not strict.parent.exists() or not any(strict.parent.iterdir())


@pytest.mark.parametrize("flag", ["--help"])
def test_the_contract_is_in_the_help(flag, capsys):
    with pytest.raises(SystemExit):
        main(["predict", flag])
    text = capsys.readouterr().out
    assert "exit codes:" in text and "  3  every output written, but a quality check fired" in text
    assert "--strict" in text and "--json" in text and "--trust-names" in text
