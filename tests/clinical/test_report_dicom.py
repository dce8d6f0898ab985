"""The report with a DICOM input: patient and study on the page, the Encapsulated PDF read back with
pydicom."""

import json

import numpy as np
import pydicom
import pytest

from medseg3d.clinical.report import write_case_report
from medseg3d.dicom.report import ENCAPSULATED_PDF, read_report_dicom, study_details, write_report_dicom
from medseg3d.errors import InputError
from medseg3d.io import Volume
from medseg3d.labels import get_scheme


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    from layouts import write_dicom_series

    labels = np.zeros((12, 12, 6), dtype=np.uint8)
    labels[3:9, 3:9, 1:5] = 2
    labels[4:7, 4:7, 2:4] = 4
    image = Volume(np.where(labels > 0, 300.0, 100.0).astype(np.float32), np.diag([2.0, 2.0, 4.0, 1.0]))
    folder = write_dicom_series(image, tmp_path_factory.mktemp("dicom") / "AX_T1_POST", "AX T1 POST GD", 7)
    for path in sorted(folder.iterdir()):  # what a scanner writes and the layouts' writer leaves out
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "P-0042", "19610302", "F"
        ds.StudyDate, ds.StudyDescription, ds.AccessionNumber = "20260114", "MR HEAD W/WO", "ACC7"
        ds.save_as(path)
    return image.with_array(labels), {"t1ce": image}, folder


def test_study_details_come_from_the_headers(case):
    _, _, folder = case
    details = study_details({"t1ce": folder, "flair": folder.parent / "missing"})
    assert details["patient"] == {
        "name": "TEST, LAYOUTS",
        "id": "P-0042",
        "birth_date": "1961-03-02",
        "sex": "F",
    }
    assert details["study"]["date"] == "2026-01-14" and details["study"]["accession"] == "ACC7"
    assert details["series"] == {
        "t1ce": {
            "description": "AX T1 POST GD",
            "number": "7",
            "date": None,
            "uid": "1.2.826.0.1.3680043.2.1125.7.7",
        }
    }
    assert study_details({"t1": folder.parent / "missing"}) is None


def test_the_report_names_the_patient_and_joins_the_study_as_an_encapsulated_pdf(case, tmp_path):
    labels, channels, folder = case
    files = write_case_report(
        labels,
        channels,
        get_scheme("brats"),
        tmp_path / "seg",
        {"name": "toy"},
        [],
        dicom_series={"t1ce": folder},
        dicom_reference="t1ce",
    )
    html = files.html.read_text(encoding="utf-8")
    for shown in ("TEST, LAYOUTS", "P-0042", "2026-01-14", "MR HEAD W/WO", "AX T1 POST GD (series 7)"):
        assert shown in html
    assert files.record["study"]["patient"]["id"] == "P-0042"
    ds, pdf = read_report_dicom(files.dcm)
    source = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.iterdir())]
    assert pdf == files.pdf.read_bytes() and pdf.startswith(b"%PDF")
    assert (
        ds.SOPClassUID == ENCAPSULATED_PDF
        and ds.Modality == "DOC"
        and ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    )
    assert ds.StudyInstanceUID == source[0].StudyInstanceUID and ds.PatientID == "P-0042"
    assert str(ds.PatientName) == "TEST^LAYOUTS" and ds.SeriesInstanceUID != source[0].SeriesInstanceUID
    assert sorted(r.ReferencedSOPInstanceUID for r in ds.SourceInstanceSequence) == sorted(
        s.SOPInstanceUID for s in source
    )
    assert ds.file_meta.MediaStorageSOPClassUID == ENCAPSULATED_PDF


def test_anonymise_leaves_patient_study_and_series_out(case, tmp_path):
    labels, channels, folder = case
    files = write_case_report(
        labels,
        channels,
        get_scheme("brats"),
        tmp_path / "seg",
        {},
        [],
        dicom_series={"t1ce": folder},
        anonymise=True,
    )
    html = files.html.read_text(encoding="utf-8")
    text = json.dumps(files.record)
    for hidden in ("LAYOUTS", "P-0042", "2026-01-14", "1961", "AX T1 POST GD"):
        assert hidden not in html and hidden not in text
    assert "--anonymise" in html and files.dcm is None and files.pdf.is_file()


def test_only_a_pdf_is_encapsulated_and_only_an_encapsulated_pdf_is_read(case, tmp_path):
    _, _, folder = case
    with pytest.raises(InputError, match="not a PDF"):
        write_report_dicom(b"<html>", folder, tmp_path / "r.dcm")
    with pytest.raises(InputError, match="not a DICOM Encapsulated PDF"):
        read_report_dicom(next(folder.iterdir()))
    with pytest.raises(InputError, match="does not exist"):
        write_report_dicom(b"%PDF-1.4 x", folder, tmp_path / "no" / "r.dcm")
