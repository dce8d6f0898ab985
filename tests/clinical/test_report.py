"""The case report (medseg3d.clinical): pictures, the page, its PDF, its JSON, and the page in chromium."""

import base64
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from test_volumes import two_lesion_case as _two_lesion_case  # tests/test_volumes.py: the volumes' toy case

from medseg3d.clinical.pictures import overlay_pictures, radiological_slices
from medseg3d.clinical.report import write_case_report
from medseg3d.errors import InputError
from medseg3d.io import Volume
from medseg3d.labels import get_scheme


def test_overlay_pictures_are_three_pngs():
    labels = _two_lesion_case()
    image = np.random.default_rng(0).random(labels.shape).astype(np.float32) + 1
    pics = overlay_pictures(
        image, labels, get_scheme("brats"), (4, 4, 4), affine=np.diag([1.0, 1.0, 3.0, 1.0])
    )
    assert list(pics) == ["axial", "coronal", "sagittal"]
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pics.values())


@pytest.mark.parametrize("flip_x", [False, True])
def test_slices_are_radiological_whatever_the_grid_orientation(flip_x):
    # a marker at the patient's right-anterior-superior corner region of a 9^3 head
    labels = np.zeros((9, 9, 9), dtype=np.uint8)
    ras = (7, 6, 5)  # towards R (i up), A (j up), S (k up) on a RAS grid
    affine = np.eye(4)
    voxel = list(ras)
    if flip_x:  # an LAS grid: i grows towards the left, so the same point is at i = 8 - 7
        affine[0, 0], affine[0, 3] = -1.0, 8.0
        voxel[0] = 8 - ras[0]
    labels[tuple(voxel)] = 4
    image = np.ones(labels.shape, dtype=np.float32)
    views = radiological_slices(image, labels, affine, voxel)
    axial, coronal, sagittal = (views[v][1] for v in ("axial", "coronal", "sagittal"))
    # axial: row 0 = anterior, column 0 = patient's right; coronal/sagittal: row 0 = superior
    assert np.argwhere(axial == 4).tolist() == [[8 - 6, 8 - 7]]
    assert np.argwhere(coronal == 4).tolist() == [[8 - 5, 8 - 7]]
    assert np.argwhere(sagittal == 4).tolist() == [[8 - 5, 8 - 6]]  # column 0 = anterior
    assert [views[v][3] for v in ("axial", "coronal", "sagittal")] == [
        ("R", "L", "A"),
        ("R", "L", "S"),
        ("A", "P", "S"),
    ]


@pytest.mark.parametrize("flip_x", [False, True])
def test_points_land_on_the_axial_view_where_their_voxels_are_drawn(flip_x):
    from medseg3d.clinical.pictures import _slices

    labels = np.zeros((9, 9, 9), dtype=np.uint8)
    affine = np.eye(4)
    if flip_x:
        affine[0, 0], affine[0, 3] = -1.0, 8.0
    ends = [(2.0, 3.0, 4.0), (6.0, 5.0, 4.0)]
    for p in ends:
        labels[tuple(int(v) for v in p)] = 4
    views, shown = _slices(np.ones(labels.shape, np.float32), labels, affine, (4, 4, 4), ends)
    axial = views["axial"][1]
    assert sorted((int(r), int(c)) for r, c in shown) == sorted(map(tuple, np.argwhere(axial == 4).tolist()))


def test_thick_slices_keep_their_aspect():
    views = radiological_slices(
        np.ones((4, 4, 4)), np.zeros((4, 4, 4)), np.diag([1.0, 2.0, 5.0, 1.0]), (1, 1, 1)
    )
    assert [views[v][2] for v in ("axial", "coronal", "sagittal")] == [2.0, 5.0, 2.5]


def _case_volumes():
    labels = _two_lesion_case()
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    image = np.where(np.indices(labels.shape)[0] > 0, 100.0, 0.0).astype(np.float32)
    return Volume(labels, affine), {"t1": Volume(image * 2, affine), "flair": Volume(image, affine)}


def test_write_case_report_writes_a_self_contained_page_and_gives_its_record(tmp_path):
    labels, channels = _case_volumes()
    card = {"name": "toy", "held_out_scores": {"dice_WT": 0.9}, "train_cases": [f"c{i}" for i in range(20)]}
    steps = [{"step": "resample", "to_mm": [1, 1, 1]}]
    files = write_case_report(
        labels,
        channels,
        get_scheme("brats"),
        tmp_path / "case7",
        card,
        steps,
        {"warnings": ["low confidence <check>"], "confidence": 0.4},
    )
    html_path = files.html
    assert (html_path.name, files.pdf.name) == ("case7.report.html", "case7.report.pdf")
    assert files.dcm is None  # no DICOM input: no study to join
    # the case's <stem>.json is predict's to write (medseg3d.predict.outputs), from this record
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case7.report.html", "case7.report.pdf"]
    assert files.pdf.read_bytes().startswith(b"%PDF")
    report = json.loads(json.dumps(files.record))  # JSON-ready as it is
    assert report["volumes_ml"]["regions"] == {"WT": 0.394, "TC": 0.144, "ET": 0.128}  # 2 ul voxels
    assert report["lesions"]["regions"]["WT"]["count"] == 2  # the 8 voxels are 16 mm^3 < 50
    assert report["picture_channel"] == "flair"
    assert report["pictures_through_voxel"] == [4, 4, 4]  # the largest lesion's centre
    assert report["preprocessing"] == steps and report["model_card"] == card
    assert report["warnings"] == ["low confidence <check>"] and report["extra"] == {"confidence": 0.4}
    html = html_path.read_text(encoding="utf-8")
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) == 4 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)  # + RANO
    assert "low confidence &lt;check&gt;" in html  # escaped, not markup
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", html)  # nothing fetched from the network
    # the card, in the technical record
    assert "20 items" in html and "dice WT" in html and "resample" in html
    assert "<title>Brain tumour MRI" in html and "case7" not in html.split("<body>")[1][:400]  # not the stem
    assert (
        html.index("Findings")
        < html.index("Pictures")
        < html.index("Quality checks")
        < html.index("<details>")
    )
    assert '{"' not in html and "{&quot;" not in html  # no JSON dump anywhere
    # the toy grid is not the BraTS grid: no location, said in words; the diameters are there
    assert report["location"]["available"] is False and "Location: not given" in html
    assert report["diameters"]["ET"]["count"] == 1 and report["diameters"]["ET"]["lesions"][0]["axial_mm"] > 0


def test_write_case_report_warns_when_nothing_was_segmented_and_needs_an_existing_folder(tmp_path):
    labels, channels = _case_volumes()
    empty = labels.with_array(np.zeros(labels.shape, dtype=np.uint8))
    record = write_case_report(empty, channels, get_scheme("brats"), tmp_path / "e", {}, []).record
    assert any("No tumour" in w for w in record["warnings"])
    report = write_case_report(
        labels,
        channels,
        get_scheme("brats"),
        tmp_path / "u",
        {},
        [],
        {"uncertainty": {"confidence": 0.31, "passes": 8, "low_confidence_below": 0.85}},
    ).record
    assert report["extra"]["uncertainty"]["confidence"] == 0.31
    assert [w[:27] for w in report["warnings"]] == ["Low confidence (0.310 < 0.8"]
    record = write_case_report(
        labels,
        channels,
        get_scheme("brats"),
        tmp_path / "n",
        {},
        [],
        {"uncertainty": {"confidence": 0.31, "passes": 8, "low_confidence_below": None}},
    ).record
    assert record["warnings"] == []  # no held-out reference, no threshold
    with pytest.raises(InputError, match="does not exist"):
        write_case_report(labels, channels, get_scheme("brats"), tmp_path / "missing" / "e", {}, [])


def test_pictures_fall_back_to_labels_alone_when_no_channel_is_on_the_grid(tmp_path):
    labels, _ = _case_volumes()
    other = {"flair": Volume(np.ones((10, 10, 10), dtype=np.float32), np.eye(4))}
    report = write_case_report(labels, other, get_scheme("brats"), tmp_path / "c", {}, []).record
    assert report["picture_channel"] is None and any("grid" in w for w in report["warnings"])


def _chromium(*args, timeout=120):
    return subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", *args],
        check=True,
        capture_output=True,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_the_report_renders_in_headless_chromium(tmp_path):
    labels, channels = _case_volumes()
    html_path = write_case_report(
        labels, channels, get_scheme("brats"), tmp_path / "c", {"name": "toy"}, []
    ).html
    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1000,1400", "--hide-scrollbars", html_path.as_uri())
    from PIL import Image

    page = np.asarray(Image.open(shot).convert("RGB"))
    assert page.shape[:2] == (1400, 1000)
    dark = (page.sum(axis=2) < 60).mean()  # the black picture strip: the images were drawn
    assert 0.02 < dark < 0.6
    dom = _chromium("--dump-dom", html_path.as_uri()).stdout.decode("utf-8")  # what the browser built
    for section in (
        "Findings",
        "Volumes and diameters",
        "Pictures",
        "Quality checks",
        "Technical record (preprocessing, transforms, timings, model)",
    ):
        assert f">{section}<" in dom
    assert dom.count("<img") == 4 and "<details>" in dom


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils' pdftoppm is not installed")
def test_the_pdf_renders_as_a_page_with_pictures(tmp_path):
    labels, channels = _case_volumes()
    pdf = write_case_report(labels, channels, get_scheme("brats"), tmp_path / "c", {"name": "toy"}, []).pdf
    subprocess.run(
        ["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    from PIL import Image

    page = np.asarray(Image.open(next(tmp_path.glob("page*.png"))).convert("L"))
    assert abs(page.shape[0] / page.shape[1] - 297 / 210) < 0.02  # A4 portrait
    assert (page < 40).mean() > 0.01 and (page > 240).mean() > 0.5  # pictures (black) on a white page
