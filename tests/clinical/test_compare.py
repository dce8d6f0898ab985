"""Follow-up comparison: categories at their thresholds, the change map, known changes on synthetic time
points, the outputs (files, schema, page), earlier outputs as input, and the command line's errors."""

import json

import numpy as np
import pytest

from medseg3d.clinical import rano
from medseg3d.clinical.compare import (
    CHANGE_CODES,
    SCHEMA_VERSION,
    TimePoint,
    change_map,
    compare,
    compare_timepoints,
    load_timepoint,
    save_timepoint,
    timepoint_from,
)
from medseg3d.errors import InputError
from medseg3d.io import Volume, write_volume

SHAPE = (72, 72, 48)


def _ball(centre, radius, shape=SHAPE):
    grid = np.indices(shape, dtype=float)
    return np.sum((grid - np.asarray(centre, dtype=float)[:, None, None, None]) ** 2, axis=0) <= radius**2


def _tumour(radius, centre=(36, 36, 24), shape=SHAPE):
    """Oedema ball with an enhancing shell and a necrotic core: BraTS values 2, 4, 1."""
    labels = np.zeros(shape, dtype=np.uint8)
    labels[_ball(centre, radius + 4, shape)] = 2
    labels[_ball(centre, radius, shape)] = 4
    labels[_ball(centre, radius - 3, shape)] = 1
    return labels


def _point(labels, name="t"):
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    return TimePoint(Volume(labels, affine), None, name)


def _ml(mask):
    return round(float(np.count_nonzero(mask)) / 1000.0, 3)


@pytest.mark.parametrize(
    "change, category",
    [
        (-50.0, "partial response"),
        (-49.9, "stable"),
        (24.9, "stable"),
        (25.0, "progression"),
        (0.0, "stable"),
    ],
)
def test_rano_2010_thresholds(change, category):
    prior = 1000.0
    out = rano.rano_2010(prior, prior * (1 + change / 100), prior_lesions=1, current_lesions=1)
    assert out["category"] == category and out["change_percent"] == pytest.approx(change)


@pytest.mark.parametrize(
    "change, category",
    [(-65.0, "partial response"), (-64.9, "stable"), (39.9, "stable"), (40.0, "progression")],
)
def test_rano_2_volumetric_thresholds(change, category):
    out = rano.rano_2_volumetric(10.0, 10.0 * (1 + change / 100), prior_lesions=1, current_lesions=1)
    assert out["category"] == category


def test_rano_special_cases():
    assert rano.rano_2010(800, 0, prior_lesions=1, current_lesions=0)["category"] == "complete response"
    assert (
        rano.rano_2010(800, 700, prior_lesions=1, current_lesions=2, new_measurable=1)["category"]
        == "progression"
    )
    assert rano.rano_2010(0, 0, prior_lesions=0, current_lesions=0)["category"] == "not assessable"
    # nothing measurable before: only a new measurable lesion or no enhancement at all changes the category
    assert rano.rano_2010(0, 500, prior_lesions=1, current_lesions=1)["category"] == "stable"
    assert rano.rano_2_volumetric(0.5, 3.0, prior_lesions=1, current_lesions=1)["category"] == "stable"
    assert rano.percent_change(0, 5) is None and rano.percent_change(4, 5) == 25.0


def test_change_map_codes():
    prior = np.array([[[0, 2, 2, 4, 4, 0]]], dtype=np.uint8)
    now = np.array([[[2, 0, 2, 4, 0, 4]]], dtype=np.uint8)
    assert change_map(prior, now).tolist() == [[[2, 3, 1, 4, 6, 5]]]
    assert set(CHANGE_CODES) == set(range(7))


def test_known_change_and_new_lesion_on_synthetic_time_points():
    prior = _tumour(10)
    current = _tumour(7)
    current[_ball((10, 10, 24), 6)] = 4  # a new enhancing lesion far from the tumour, 13 mm across
    r = compare_timepoints(_point(prior), _point(current), register=False)
    for name, members in {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}.items():
        v0, v1 = _ml(np.isin(prior, members)), _ml(np.isin(current, members))
        region = r["regions"][name]
        assert region["volume_ml"] == {"prior": v0, "current": v1}
        assert region["change_ml"] == pytest.approx(v1 - v0, abs=1e-3)
        assert region["relative_change_percent"] == pytest.approx(100 * (v1 - v0) / v0, abs=0.05)
    et = r["regions"]["ET"]
    assert et["lesions"] == {"prior": 1, "current": 2}
    assert len(et["new_lesions"]) == 1 and et["new_lesions"][0]["measurable"]
    assert et["new_lesions"][0]["centre_mm"] == pytest.approx([10, 10, 24], abs=0.5)
    assert et["vanished_lesions"] == []
    assert r["response"]["rano_2010"]["category"] == "progression"
    assert "new measurable" in r["response"]["rano_2010"]["reason"]
    assert "steroid" in r["response"]["caveat"]
    assert r["schema"] == f"medseg3d.compare/{SCHEMA_VERSION}" and r["registration"]["method"] == "none"


def test_same_scan_is_stable_and_a_shrunk_one_a_response():
    same = compare_timepoints(_point(_tumour(10)), _point(_tumour(10)), register=False)
    assert same["response"]["rano_2010"]["category"] == "stable"
    assert same["response"]["rano_2_volumetric"]["category"] == "stable"
    assert all(
        r["change_ml"] == 0 and not r["new_lesions"] and not r["vanished_lesions"]
        for r in same["regions"].values()
    )
    shrunk = compare_timepoints(_point(_tumour(12)), _point(_tumour(7)), register=False)
    assert shrunk["regions"]["ET"]["sum_products_change_percent"] <= rano.RANO_2010_RESPONSE
    assert shrunk["response"]["rano_2010"]["category"] == "partial response"
    gone = compare_timepoints(_point(_tumour(10)), _point(np.zeros(SHAPE, np.uint8)), register=False)
    assert gone["response"]["rano_2010"]["category"] == "complete response"
    assert len(gone["regions"]["WT"]["vanished_lesions"]) == 1


def _head(shift=(0, 0, 0)):
    """A smooth synthetic 'T1ce' with structure to register on, shifted by whole voxels."""
    rng = np.random.default_rng(0)
    from scipy import ndimage

    base = ndimage.gaussian_filter(rng.normal(size=SHAPE), 3.0)
    base = (base - base.min()) * _ball((36, 36, 24), 30)
    return np.roll(base, shift, axis=(0, 1, 2)).astype(np.float32)


def test_registration_undoes_a_shift_so_nothing_looks_new():
    shift = (3, -2, 1)
    prior = TimePoint(Volume(_tumour(9), np.eye(4)), Volume(_head(), np.eye(4)), "prior")
    moved = np.roll(_tumour(9), shift, axis=(0, 1, 2))
    current = TimePoint(Volume(moved, np.eye(4)), Volume(_head(shift), np.eye(4)), "current")
    unregistered = compare_timepoints(prior, current, register=False)
    registered = compare_timepoints(prior, current)
    assert registered["registration"]["shift_at_centre_mm"] > 0
    assert (
        registered["regions"]["WT"]["volume_ml"]["prior"]
        == registered["regions"]["WT"]["volume_ml"]["current"]
    )
    assert registered["response"]["rano_2010"]["category"] == "stable"
    # the registered labels overlap the prior's better than the unregistered ones
    from medseg3d.clinical.compare import _compare

    _, aligned, _ = _compare(prior, current)
    _, placed, _ = _compare(prior, current, register=False)
    dice = [
        2
        * np.count_nonzero((a > 0) & (prior.labels.array > 0))
        / (np.count_nonzero(a > 0) + np.count_nonzero(prior.labels.array > 0))
        for a in (aligned, placed)
    ]
    assert dice[0] > 0.97 > dice[1]
    assert unregistered["registration"]["method"] == "none"


def test_compare_writes_every_output_atomically(tmp_path):
    prior = save_timepoint(_point(_tumour(10), "prior scan"), tmp_path / "prior")
    current = save_timepoint(_point(_tumour(8), "current scan"), tmp_path / "current")
    out = tmp_path / "out"
    record = compare(prior, current, out, register=False)
    names = {p.name for p in out.iterdir()}
    # no temporary file left behind
    assert names == {
        "compare.json",
        "compare.html",
        "compare.png",
        "change_map.nii.gz",
        "prior_labels.nii.gz",
        "current_labels_on_prior.nii.gz",
    }
    saved = json.loads((out / "compare.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert saved["schema_version"] == SCHEMA_VERSION and saved["outputs"]["change_map"] == "change_map.nii.gz"
    page = (out / "compare.html").read_text()
    assert "software does not have" in page and "compare.png" in page and "prior scan" in page
    from medseg3d.io import read_volume

    codes = read_volume(out / "change_map.nii.gz").array
    assert set(np.unique(codes)) <= set(CHANGE_CODES) and np.any(codes == 6)  # the enhancing rim moved inward


def test_time_point_round_trip_and_earlier_output(tmp_path):
    from medseg3d.raw.template import BRATS_AFFINE, BRATS_SHAPE

    point = _point(_tumour(6), "x")
    again = load_timepoint(save_timepoint(point, tmp_path / "tp"))
    assert np.array_equal(again.labels.array, point.labels.array) and again.source == "x"
    labels = np.zeros(BRATS_SHAPE, dtype=np.uint8)
    labels[100:110, 100:110, 70:80] = 4
    write_volume(Volume(labels, BRATS_AFFINE), tmp_path / "seg.nii.gz")
    earlier = timepoint_from(tmp_path / "seg.nii.gz")
    assert earlier.image is None and earlier.volumes_ml["ET"] == 1.0
    write_volume(Volume(labels[:50], BRATS_AFFINE), tmp_path / "small.nii.gz")
    with pytest.raises(InputError, match="without its predict JSON"):
        timepoint_from(tmp_path / "small.nii.gz")


def test_earlier_output_on_its_native_grid_comes_back_through_its_transforms(tmp_path):
    from medseg3d.raw.template import BRATS_AFFINE, BRATS_SHAPE

    labels = np.zeros(BRATS_SHAPE, dtype=np.uint8)
    labels[100:120, 90:110, 60:75] = 2
    labels[105:112, 95:104, 64:70] = 4
    shift_ras = np.array([12.0, -5.0, 3.0])  # the scan's grid: the BraTS grid moved by whole millimetres
    native = BRATS_AFFINE.copy()
    native[:3, 3] += shift_ras
    write_volume(Volume(labels, native), tmp_path / "seg.nii.gz")
    to_native = np.eye(4)
    to_native[:3, 3] = shift_ras * [-1, -1, 1]  # BraTS-grid points -> the scan's points, LPS
    record = {
        "output_grid": {"space": "native"},
        "reference": "t1ce",
        "inputs": {},
        "transforms": {
            "t1ce": {"kind": "identity"},
            "atlas": {"matrix_lps": to_native.tolist(), "channel": "t1ce"},
        },
    }
    (tmp_path / "seg.json").write_text(json.dumps(record))
    point = timepoint_from(tmp_path / "seg.nii.gz")
    assert np.array_equal(point.labels.array, labels) and np.allclose(point.labels.affine, BRATS_AFFINE)
    (tmp_path / "seg.json").write_text(json.dumps(dict(record, transforms={})))
    with pytest.raises(InputError, match="no atlas transform"):
        timepoint_from(tmp_path / "seg.nii.gz")
    (tmp_path / "seg.json").write_text("{not json")
    with pytest.raises(InputError, match="not readable JSON"):
        timepoint_from(tmp_path / "seg.nii.gz")


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    from medseg3d.cli import main

    prior = save_timepoint(_point(_tumour(6)), tmp_path / "prior")
    with pytest.raises(InputError):
        timepoint_from(tmp_path / "missing")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        compare(prior, prior, tmp_path / "afile", register=False)
    assert main(["compare", str(tmp_path / "missing"), str(prior), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medseg3d: error: ") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_cli_compare_on_saved_time_points(tmp_path, capsys):
    from medseg3d.cli import main

    prior = save_timepoint(_point(_tumour(10)), tmp_path / "prior")
    current = save_timepoint(_point(_tumour(10)), tmp_path / "current")
    assert main(["compare", str(prior), str(current), "-o", str(tmp_path / "o"), "--no-register"]) == 0
    out = capsys.readouterr().out
    assert "RANO 2010: stable" in out and (tmp_path / "o" / "compare.json").is_file()


@pytest.mark.slow
def test_compare_two_raw_dicom_studies_of_one_head_is_stable(brats_root, tmp_path):
    """End to end as a user runs it: two simulated acquisitions of one case (own grids, thick slices, motion,
    intensities) as DICOM studies with scanner-style series names. Minutes of CPU: two raw segmentations."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from layouts import write_dicom_case

    from medseg3d.datasets import find_cases
    from medseg3d.raw.simulate import simulate

    case = next(c for c in find_cases(brats_root) if c.case_id == "Brats18_2013_20_1")
    vols = {m: v for m, _, v in case.select(("flair", "t1", "t1ce", "t2")).read_channels()}
    series = {
        "flair": "AX_FLAIR|Ax T2 FLAIR",
        "t1": "T1_SE|Ax T1 SE",
        "t1ce": "T1_POST|Ax T1 +C MPRAGE",
        "t2": "T2_TSE|Ax T2 TSE",
    }
    studies = [
        write_dicom_case(simulate(vols, None, seed=s).volumes, tmp_path / f"study{s}", series)
        for s in (11, 12)
    ]
    record = compare(studies[0], studies[1], tmp_path / "out")
    assert record["prior"]["preprocess"] == record["current"]["preprocess"] == "full"
    assert record["response"]["rano_2010"]["category"] == "stable"
    assert record["response"]["rano_2_volumetric"]["category"] == "stable"
    assert abs(record["regions"]["WT"]["relative_change_percent"]) < 10  # repeatability: a few percent
    assert record["registration"]["shift_at_centre_mm"] < 10
    assert (tmp_path / "out" / "compare.html").is_file()
