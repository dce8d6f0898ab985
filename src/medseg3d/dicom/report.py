"""The report as a DICOM object a PACS stores and shows, and the study details the report names.

The report is written as an **Encapsulated PDF** (SOP class 1.2.840.10008.5.1.4.1.1.104.1), not as a
Structured Report: every PACS viewer we know of shows an encapsulated PDF as the page it is, with its
pictures and tables, while a Structured Report (TID 1500 measurements) is rendered as a tree of text and
needs its numbers tied to SEG segments to be of use; the numbers themselves already travel machine-readably
in the DICOM SEG and the case's JSON. The object joins the input study (same Study Instance UID and patient
module), in a series of its own (modality DOC), and lists the slices of the series the labels lie on in its
Source Instance Sequence. docs/clinical.md says more.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from ..errors import InputError
from ..io import atomic_write

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
PATIENT_KEYS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
STUDY_KEYS = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
    "ReferringPhysicianName",
)


def _first_dataset(folder: Path):
    """The first readable DICOM dataset of a series folder (pixels not loaded), or None."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        try:
            return pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, EOFError, ValueError):
            continue
    return None


def _text(ds, key: str) -> str | None:
    value = ds.get(key) if ds is not None else None
    text = str(value).strip() if value is not None else ""
    return text or None


def _person(text: str | None) -> str | None:
    """DICOM ``FAMILY^GIVEN^MIDDLE`` as ``FAMILY, GIVEN MIDDLE``."""
    if not text or "^" not in text:
        return text
    family, *rest = text.split("^")
    given = " ".join(r for r in rest if r)
    return f"{family}, {given}" if given else family


def _date(text: str | None) -> str | None:
    """DICOM ``YYYYMMDD`` as ``YYYY-MM-DD`` (anything else as given)."""
    if text and len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


def study_details(series: dict) -> dict | None:
    """Patient, study and series details from the headers of the input DICOM series.

    Args:
        series: modality -> DICOM series folder (only the DICOM inputs).

    Returns:
        ``{"patient": {"name", "id", "birth_date", "sex"}, "study": {"date", "time", "description",
        "accession", "uid"}, "series": {modality: {"description", "number", "date", "uid"}}}`` (missing
        attributes None), or None when no folder holds a readable DICOM file.
    """
    found = {m: _first_dataset(Path(p)) for m, p in series.items()}
    found = {m: ds for m, ds in found.items() if ds is not None}
    if not found:
        return None
    first = next(iter(found.values()))
    return {
        "patient": {
            "name": _person(_text(first, "PatientName")),
            "id": _text(first, "PatientID"),
            "birth_date": _date(_text(first, "PatientBirthDate")),
            "sex": _text(first, "PatientSex"),
        },
        "study": {
            "date": _date(_text(first, "StudyDate")),
            "time": _text(first, "StudyTime"),
            "description": _text(first, "StudyDescription"),
            "accession": _text(first, "AccessionNumber"),
            "uid": _text(first, "StudyInstanceUID"),
        },
        "series": {
            m: {
                "description": _text(ds, "SeriesDescription"),
                "number": _text(ds, "SeriesNumber"),
                "date": _date(_text(ds, "SeriesDate")),
                "uid": _text(ds, "SeriesInstanceUID"),
            }
            for m, ds in found.items()
        },
    }


def write_report_dicom(
    pdf: bytes,
    source_dir,
    out_path,
    *,
    title: str = "Brain tumour segmentation report",
    series_description: str = "medseg3d report",
) -> Path:
    """Write ``pdf`` as a DICOM Encapsulated PDF in the study of the series in ``source_dir``, atomically.

    Args:
        pdf: the PDF file's bytes.
        source_dir: folder of the DICOM series the segmentation lies on (its patient and study are copied,
            its slices listed as the document's source).
        out_path: the ``.dcm`` file to write.
        title: the Document Title (0042,0010).
        series_description: the new series' description.

    Returns:
        ``out_path``.

    Raises:
        InputError: ``pdf`` is not a PDF, the series cannot be read, or the file cannot be written.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from .. import __version__
    from .seg import read_source_series

    if not pdf.startswith(b"%PDF"):
        raise InputError("the report to encapsulate is not a PDF")
    sources = read_source_series(source_dir)
    first = sources[0]
    now = datetime.datetime.now()
    ds = Dataset()
    for key in PATIENT_KEYS + STUDY_KEYS:  # the patient and study modules: the object joins the input study
        if key in first:
            ds[key] = first[key]
        else:
            setattr(ds, key, "")  # type 2: present, empty
    if not ds.StudyInstanceUID:
        ds.StudyInstanceUID = generate_uid()
    ds.SOPClassUID = ENCAPSULATED_PDF
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 901
    ds.SeriesDescription = series_description
    ds.Manufacturer = "medseg3d"
    ds.SoftwareVersions = str(__version__)
    ds.ConversionType = "WSD"  # workstation: the document was made by software
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"  # the page names the patient unless --anonymise
    ds.DocumentTitle = title[:64]
    ds.ConceptNameCodeSequence = []
    source = []
    for item in sources:
        ref = Dataset()
        ref.ReferencedSOPClassUID = item.SOPClassUID
        ref.ReferencedSOPInstanceUID = item.SOPInstanceUID
        source.append(ref)
    ds.SourceInstanceSequence = source
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")  # OB values have even length
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out_path = Path(out_path)
    if not out_path.parent.is_dir():
        raise InputError(f"{out_path.parent}: output folder does not exist; create it first")
    try:
        return atomic_write(out_path, lambda tmp: ds.save_as(tmp, enforce_file_format=True))
    except OSError as exc:
        raise InputError(
            f"{out_path}: cannot write the DICOM report ({exc.strerror}); choose another path"
        ) from exc


def read_report_dicom(path) -> tuple[object, bytes]:
    """The dataset of an Encapsulated PDF file and its PDF bytes (padding removed).

    Raises:
        InputError: the file is not an Encapsulated PDF.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError) as exc:
        raise InputError(f"{path}: not a readable DICOM file ({exc})") from exc
    if ds.get("SOPClassUID") != ENCAPSULATED_PDF:
        raise InputError(f"{path}: not a DICOM Encapsulated PDF (SOP class {ds.get('SOPClassUID')})")
    length = int(ds.get("EncapsulatedDocumentLength") or len(ds.EncapsulatedDocument))
    return ds, bytes(ds.EncapsulatedDocument[:length])
