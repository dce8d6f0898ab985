"""A short seeded fuzz run (validation/fuzz.py in-process): broken inputs end in one line or a listed problem,
never a traceback, and leave nothing half-written."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

# 20 categories whose inputs build in milliseconds (the gzip bomb takes seconds: the full run has it)
SHORT = (
    "truncated_gz",
    "truncated_nii",
    "gzip_flip",
    "gzip_trailer",
    "header_flip",
    "rgb24",
    "complex",
    "nan_inf",
    "huge_values",
    "negative_values",
    "grid_mismatch",
    "zero_spacing",
    "unknown_labels",
    "label_numbering",
    "huge_header",
    "odd_names",
    "symlink_loop",
    "dir_for_file",
    "empty_file",
    "pred_grid",
)


def _fuzz():
    if "medseg3d_fuzz" not in sys.modules:
        spec = importlib.util.spec_from_file_location("medseg3d_fuzz", REPO / "validation" / "fuzz.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["medseg3d_fuzz"] = module  # dataclasses look their module up while the file runs
        spec.loader.exec_module(module)
    return sys.modules["medseg3d_fuzz"]


def test_short_fuzz_run(data_root, tmp_path):
    fuzz = _fuzz()
    args = argparse.Namespace(in_process=True, timeout=60.0, mem_cap=6.0, mem_report=2.0)
    # info on all 20; evaluate (the one command here that reads labels and predictions) on the label inputs
    only = {c: ("evaluate",) for c in ("unknown_labels", "label_numbering", "pred_grid", "truncated_gz")}
    results, text = fuzz.run(
        tmp_path, per_category=1, seed=1, categories=SHORT, args=args, progress=False, only=only
    )
    assert len({r.inp.name for r in results}) == 20
    bad = [
        f"{r.inp.name} {r.command}: {r.outcome}: {r.message}"
        for r in results
        if r.outcome in ("traceback", "unclear", "leftover", "memory", "timeout")
    ]
    assert not bad, "\n".join(bad)
    for r in results:
        if r.command == "evaluate":
            out = r.inp.root / "out_evaluate"
            left = [p.name for p in out.iterdir()]
            assert left == (["metrics.csv"] if r.rc == 0 else []), (r.inp.name, left)
    by_name = {(r.inp.category, r.command): r for r in results}
    # known answers: what must be refused is refused (info lists it), the legal input passes
    assert by_name[("pred_grid", "evaluate")].outcome == "refused"
    assert "different grids" in by_name[("pred_grid", "evaluate")].message
    for category in (
        "truncated_gz",
        "gzip_flip",
        "rgb24",
        "nan_inf",
        "huge_values",
        "huge_header",
        "empty_file",
    ):
        assert by_name[(category, "info")].outcome == "warned", (
            category,
            by_name[(category, "info")].message,
        )
    assert by_name[("negative_values", "info")].message == "problems: none"
    assert "| category | expected | info |" in text


@pytest.mark.parametrize(
    "outcome_args",
    [
        (0, "", "", 0.0, "silent"),
        (2, "", "medseg3d: error: x.nii: broken", 0.0, "refused"),
        (1, "", "Traceback (most recent call last):\n  ...\nValueError: x", 0.0, "traceback"),
        (None, "", "", 0.0, "timeout"),
        (0, "", "", 5000.0, "memory"),
        (2, "", "medseg3d: error: a\nmedseg3d: error: b", 0.0, "unclear"),
        (3, "", "warning: t2: 53% of the brain lies outside", 0.0, "review"),
        (3, "warning: swapped", "", 0.0, "unclear"),
    ],
)
def test_classify(tmp_path, outcome_args):
    rc, out, err, rss, expected = outcome_args
    assert _fuzz().classify(rc, out, err, tmp_path, rss, 2048)[0] == expected


def test_refusal_with_output_left_is_leftover(tmp_path):
    (tmp_path / "cache" / "case").mkdir(parents=True)
    outcome, message = _fuzz().classify(2, "", "medseg3d: error: bad", tmp_path, 0.0, 2048)
    assert outcome == "leftover" and "cache/case" in message


def test_agreement_with_the_unbroken_case(tmp_path):
    """The fuzz's test for a silently wrong exit 0: whole-tumour Dice against the unbroken case's output."""
    import nibabel as nib

    fuzz = _fuzz()
    ref = np.zeros((8, 8, 8), np.uint8)
    ref[2:6, 2:6, 2:6] = 2  # 64 voxels
    half = ref.copy()
    half[2:4] = 0  # 32 of them, as label 4 below: the whole tumour ignores which label
    half[half > 0] = 4
    for name, array, affine in (
        ("same", ref, np.eye(4)),
        ("half", half, np.eye(4)),
        ("moved", ref, np.diag([2.0, 2.0, 2.0, 1.0])),
    ):
        nib.save(nib.Nifti1Image(array, affine), str(tmp_path / f"{name}.nii.gz"))
    reference = fuzz._whole_tumour(tmp_path / "same.nii.gz")
    assert fuzz._agreement(tmp_path / "same.nii.gz", reference) == 1.0
    assert fuzz._agreement(tmp_path / "half.nii.gz", reference) == 2 * 32 / (32 + 64)
    assert fuzz._agreement(tmp_path / "moved.nii.gz", reference) is None  # another grid: not compared
    assert fuzz._agreement(tmp_path / "absent.nii.gz", reference) is None
    assert fuzz._agreement(tmp_path / "same.nii.gz", None) is None


def test_raw_base_is_the_clinical_export_at_half_resolution_in_plane(data_root, tmp_path):
    import nibabel as nib

    fuzz = _fuzz()
    case = fuzz.make_raw_base(tmp_path, data_root / "raw_clinical" / "TCGA-FG-6692" / "raw")
    for m in fuzz.MODALITIES:
        full = nib.load(str(data_root / "raw_clinical" / "TCGA-FG-6692" / "raw" / f"{m}.nii.gz"))
        half = nib.load(str(case / f"fz_{m}.nii.gz"))
        assert half.shape == tuple((n + 1) // 2 for n in full.shape[:2]) + (full.shape[2],)
        assert np.allclose(half.header.get_zooms()[:2], 2 * np.array(full.header.get_zooms()[:2]), rtol=1e-4)
        assert np.allclose(half.affine[:3, 3], full.affine[:3, 3])  # same corner voxel
