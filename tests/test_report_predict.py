"""predict --report: one offline page and its JSON beside each segmentation."""

import json

import numpy as np
import pytest

from medseg3d.cli import main
from medseg3d.io import read_volume


def test_predict_report_writes_a_page_and_json_with_the_volumes(brats_root, tmp_path, capsys):
    case = brats_root / "Brats18_2013_2_1"
    out = tmp_path / "seg.nii.gz"
    assert main(["predict", "brats-v1", str(case), "-o", str(out), "--whole-volume", "--report"]) == 0
    assert "seg.report.html" in capsys.readouterr().out
    page = (tmp_path / "seg.report.html").read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html") and "data:image/png;base64," in page
    assert "http://" not in page.replace("http://www.w3.org", "")  # nothing fetched when opened offline
    summary = json.loads((tmp_path / "seg.json").read_text(encoding="utf-8"))
    text = json.dumps(summary)
    assert "WT" in text and "ET" in text
    # a BraTS case lies in atlas space already: located and measured; no DICOM, so a PDF but no .dcm
    wt = summary["location"]["regions"]["WT"]
    assert summary["location"]["available"] and wt["hemisphere"] in ("left", "right", "bilateral")
    assert wt["main_lobe"] in ("frontal", "temporal", "parietal", "occipital", "insula")
    assert (
        summary["diameters"]["ET"]["lesions"][0]["axial_mm"]
        >= summary["diameters"]["ET"]["lesions"][0]["perpendicular_mm"]
    )
    assert (tmp_path / "seg.report.pdf").read_bytes().startswith(b"%PDF") and not (
        tmp_path / "seg.report.dcm"
    ).exists()
    assert "Location of the whole tumour" in page


# --- --uncertainty and --output-format on a small crop of a shared case (seconds) ---------------------------

CROP_CASE = "Brats18_2013_20_1"


@pytest.fixture(scope="module")
def crop_folder(brats_root, tmp_path_factory):
    from layouts import brats_names, crop_case, write_case_folder

    vols = crop_case(brats_root, CROP_CASE)
    return write_case_folder(
        vols, tmp_path_factory.mktemp("crop") / CROP_CASE, brats_names(CROP_CASE), ".nii.gz"
    ), vols


@pytest.fixture(scope="module")
def model():
    from medseg3d.models import load_model

    return load_model("brats-v1", "cpu", "fp32")


def test_uncertainty_writes_a_map_and_a_confidence_and_leaves_the_labels_alone(crop_folder, model, tmp_path):
    from medseg3d.predict import predict

    folder, _ = crop_folder
    (plain,) = predict(model, [folder], tmp_path / "plain.nii.gz", progress=False)
    (seg,) = predict(model, [folder], tmp_path / "seg.nii.gz", progress=False, uncertainty=2)
    labels, reference = read_volume(seg), read_volume(plain)
    np.testing.assert_array_equal(labels.array, reference.array)
    entropy = read_volume(tmp_path / "seg_uncertainty.nii.gz")
    assert entropy.shape == labels.shape and np.allclose(entropy.affine, labels.affine)
    assert entropy.array.dtype == np.float32 and 0 <= entropy.array.min() and entropy.array.max() <= 1
    # doubt lives at the tumour
    assert entropy.array[labels.array > 0].mean() > entropy.array[labels.array == 0].mean()
    record = json.loads((tmp_path / "seg.json").read_text(encoding="utf-8"))["uncertainty"]
    assert record["passes"] == 2 and 0 < record["confidence"] <= 1
    # the bundled model carries its calibration: temperatures for the probabilities, held-out 2-pass
    # confidences
    assert record["calibrated"] is True and len(record["temperatures"]) == 3
    assert 0 <= record["held_out_share_less_confident"] <= 1 and 0 < record["low_confidence_below"] < 1
    assert record["map"].endswith("seg_uncertainty.nii.gz")


def test_a_calibrated_model_softens_the_probabilities_but_not_the_labels(crop_folder, tmp_path):
    from medseg3d.checkpoint import rewrite_model_metadata
    from medseg3d.models import WEIGHTS_DIR, load_model
    from medseg3d.predict import predict
    from medseg3d.uncertainty import apply_temperature

    folder, _ = crop_folder
    temps = [2.0, 1.5, 3.0]
    path = rewrite_model_metadata(
        WEIGHTS_DIR / "brats-v1.safetensors",
        {"calibration": {"temperatures": temps}},
        tmp_path / "calibrated.safetensors",
    )
    calibrated = load_model(path, "cpu", "fp32")
    plain = load_model(
        rewrite_model_metadata(
            WEIGHTS_DIR / "brats-v1.safetensors", {"calibration": None}, tmp_path / "plain.safetensors"
        ),
        "cpu",
        "fp32",
    )
    (raw_seg,) = predict(
        plain, [folder], tmp_path / "raw.nii.gz", progress=False, uncertainty=2, save_probabilities=True
    )
    (cal_seg,) = predict(
        calibrated, [folder], tmp_path / "cal.nii.gz", progress=False, uncertainty=2, save_probabilities=True
    )
    np.testing.assert_array_equal(read_volume(cal_seg).array, read_volume(raw_seg).array)
    raw = np.moveaxis(read_volume(tmp_path / "raw_probabilities.nii.gz").array, -1, 0)
    cal = np.moveaxis(read_volume(tmp_path / "cal_probabilities.nii.gz").array, -1, 0)
    # the same float32 inputs through the same float64 computation, stored as float32: equal to float32
    # rounding
    np.testing.assert_allclose(
        cal, apply_temperature(raw, temps, "region"), rtol=0, atol=np.finfo(np.float32).eps
    )
    tumour = (raw > 0.5) & (raw < 0.999)
    assert np.all(np.abs(cal[tumour] - 0.5) <= np.abs(raw[tumour] - 0.5))  # T > 1 pulls towards 0.5
    record = json.loads((tmp_path / "cal.json").read_text(encoding="utf-8"))["uncertainty"]
    assert record["calibrated"] is True and record["temperatures"] == temps


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--tta", "--uncertainty", "2"], "--uncertainty 8"),
        (["--output-format", "dicom-seg"], "needs DICOM series"),
    ],
)
def test_option_conflicts_are_refused_in_one_line_before_any_output(
    crop_folder, tmp_path, capsys, flags, fragment
):
    folder, _ = crop_folder
    out = tmp_path / "seg.nii.gz"
    assert main(["predict", "brats-v1", str(folder), "-o", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err
    assert list(tmp_path.iterdir()) == []


def test_hostile_calibration_metadata_is_refused(tmp_path):
    from medseg3d.checkpoint import rewrite_model_metadata
    from medseg3d.errors import ModelError
    from medseg3d.models import WEIGHTS_DIR, load_model

    for temps in ([0.0, 1.0, 1.0], [1.0, 2.0], "2", [float("nan")] * 3, [1e9, 1.0, 1.0]):
        path = rewrite_model_metadata(
            WEIGHTS_DIR / "brats-v1.safetensors",
            {"calibration": {"temperatures": temps}},
            tmp_path / "hostile.safetensors",
        )
        with pytest.raises(ModelError, match="calibration temperatures") as excinfo:
            load_model(path, "cpu")
        assert "\n" not in str(excinfo.value)


def test_a_dicom_input_gets_a_dicom_seg_that_reads_back_voxel_for_voxel(crop_folder, model, tmp_path):
    pytest.importorskip("highdicom")
    from layouts import write_dicom_case

    from medseg3d.dicom.seg import read_dicom_seg
    from medseg3d.predict import predict

    _, vols = crop_folder
    folder = write_dicom_case(
        vols, tmp_path / CROP_CASE, {"flair": "AX_FLAIR", "t1": "AX_T1", "t1ce": "AX_T1_POST", "t2": "AX_T2"}
    )
    (seg,) = predict(model, [folder], tmp_path / "out" / "seg.nii.gz", progress=False)
    labels = read_volume(seg)
    assert labels.array.any()
    dcm = tmp_path / "out" / "seg.seg.dcm"
    # labels lie on the first channel
    back = read_dicom_seg(dcm, folder / "AX_FLAIR", model.scheme, grid=labels)
    np.testing.assert_array_equal(back.array, labels.array)
    predict(model, [folder], tmp_path / "nifti" / "seg.nii.gz", progress=False, output_format="nifti")
    assert not (tmp_path / "nifti" / "seg.seg.dcm").exists()


def test_a_series_a_dicom_seg_cannot_reference_warns_and_keeps_the_nifti(
    crop_folder, model, tmp_path, capsys
):
    pytest.importorskip("highdicom")
    import pydicom
    from layouts import write_dicom_case

    from medseg3d.predict import predict

    _, vols = crop_folder
    folder = write_dicom_case(
        vols, tmp_path / CROP_CASE, {"flair": "AX_FLAIR", "t1": "AX_T1", "t1ce": "AX_T1_POST", "t2": "AX_T2"}
    )
    for path in (folder / "AX_FLAIR").iterdir():  # an export that left out the mandatory frame of reference
        ds = pydicom.dcmread(path)
        del ds.FrameOfReferenceUID
        ds.save_as(path)
    (seg,) = predict(model, [folder], tmp_path / "out" / "seg.nii.gz", progress=False)
    assert read_volume(seg).array.any() and not (tmp_path / "out" / "seg.seg.dcm").exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no DICOM SEG written" in err and "Frame Of Reference" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["seg.nii.gz"]  # no temporary left behind


def test_a_case_less_confident_than_the_held_out_cases_is_warned_about(model, crop_folder, tmp_path, capsys):
    from medseg3d.checkpoint import rewrite_model_metadata
    from medseg3d.models import WEIGHTS_DIR, load_model
    from medseg3d.predict import predict

    folder, _ = crop_folder
    calibration = {
        "temperatures": [2.0, 2.0, 2.0],
        "confidence": {"passes": 2, "held_out": [0.995, 0.997, 0.999]},
    }
    path = rewrite_model_metadata(
        WEIGHTS_DIR / "brats-v1.safetensors",
        {"calibration": calibration},
        tmp_path / "calibrated.safetensors",
    )
    predict(load_model(path, "cpu", "fp32"), [folder], tmp_path / "seg.nii.gz", uncertainty=2, report=True)
    summary = json.loads((tmp_path / "seg.json").read_text(encoding="utf-8"))
    record = summary["uncertainty"]
    assert record["confidence"] < 0.995 and record["held_out_share_less_confident"] == 0.0
    assert record["low_confidence_below"] == pytest.approx(0.9954)  # the 10% quantile of the three
    assert any(w.startswith("Low confidence") for w in summary["warnings"])
    assert "warning:" in capsys.readouterr().err and "Low confidence" in (
        tmp_path / "seg.report.html"
    ).read_text(encoding="utf-8")
    # with 4 passes the 2-pass reference does not apply: no rank, no threshold, and it says why
    predict(
        load_model(path, "cpu", "fp32"), [folder], tmp_path / "four.nii.gz", uncertainty=4, progress=False
    )
    four = json.loads((tmp_path / "four.json").read_text(encoding="utf-8"))["uncertainty"]
    assert four["low_confidence_below"] is None and "none for 4 mirrored passes" in four["reference"]


@pytest.mark.slow
def test_calibrate_fits_on_held_out_cases_and_writes_a_model_predict_uses(brats_root, tmp_path, capsys):
    from conftest import link_cases

    from medseg3d.models import load_model

    # not in the bundled model's training
    cases = [
        "Brats18_CBICA_APR_1",
        "Brats18_CBICA_AQO_1",
        "Brats18_CBICA_ASE_1",
    ]
    data = link_cases(brats_root, tmp_path / "held", cases)
    out = tmp_path / "calibrated.safetensors"
    assert (
        main(
            [
                "calibrate",
                "brats-v1",
                str(data),
                "-o",
                str(out),
                "--json",
                str(tmp_path / "c.json"),
                "--quiet",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "ECE over the brain" in text and "Spearman" in text and f"wrote {out}" in text
    meta = load_model(out, "cpu").meta
    assert len(meta.temperatures) == 3 and all(t > 1 for t in meta.temperatures)  # v1 is overconfident
    assert meta.calibration["fitted_on"] == cases and len(meta.calibration["confidence"]["held_out"]) == 3
    summary = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    assert summary["ece"]["tumour_zone_after"] < summary["ece"]["tumour_zone_before"]
    # a case the model trained on is left out by default: too few remain to calibrate on
    trained = link_cases(brats_root, tmp_path / "trained", ["Brats18_2013_2_1", "Brats18_CBICA_APR_1"])
    assert main(["calibrate", "brats-v1", str(trained), "-o", str(tmp_path / "x.safetensors")]) == 2
    assert "needs at least 3" in capsys.readouterr().err and not (tmp_path / "x.safetensors").exists()
