"""Synthetic non-enhancing variants: enhancement out of T1ce inside the enhancing region only, label 4 ->
1."""

import numpy as np
import pytest

from medseg3d.datasets import find_cases
from medseg3d.datasets.synthetic import (
    VARIANT_SUFFIX,
    remove_enhancement,
    variant_parent,
    write_nonenhancing_variant,
)
from medseg3d.errors import InputError
from medseg3d.io import Volume, read_volume, write_volume


def _case(seed: int = 0):
    """A 24^3 case: brain 100, oedema shell, a dark core (~40) and a bright enhancing rim (~300) around it."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((24, 24, 24), np.uint8)
    labels[4:20, 4:20, 4:20] = 2
    labels[7:17, 7:17, 7:17] = 4
    labels[9:15, 9:15, 9:15] = 1
    t1ce = np.full(labels.shape, 100.0) + rng.normal(0, 5, labels.shape)
    t1ce[labels == 4] = rng.normal(300, 20, int((labels == 4).sum()))
    t1ce[labels == 1] = rng.normal(40, 5, int((labels == 1).sum()))
    return np.rint(t1ce).astype(np.int16), labels


def test_enhancing_voxels_take_the_cores_intensities_and_nothing_else_changes():
    t1ce, labels = _case()
    out, new_labels, summary = remove_enhancement(t1ce, labels, sigma_mm=0)
    enhancing = labels == 4
    assert out.dtype == t1ce.dtype and np.array_equal(out[~enhancing], t1ce[~enhancing])
    assert np.array_equal(new_labels, np.where(enhancing, 1, labels))
    # without smoothing, the region's values are the core's distribution at the same ranks: same quantiles
    core = t1ce[labels == 1].astype(float)
    for q in (0.1, 0.5, 0.9):
        assert abs(np.quantile(out[enhancing], q) - np.quantile(core, q)) <= 1.0  # rounding to int16
    # and the order is kept: the brighter half of the rim is still the brighter half
    bright = t1ce[enhancing] > np.median(t1ce[enhancing])
    assert out[enhancing][bright].mean() > out[enhancing][~bright].mean()
    assert summary["voxels"] == int(enhancing.sum()) and summary["source"] == "core"
    assert (
        summary["enhancing_median_before"] > 250
        and abs(summary["after_median"] - summary["source_median"]) <= 1
    )


def test_smoothing_blends_the_border_but_never_touches_outside():
    t1ce, labels = _case(1)
    sharp, _, _ = remove_enhancement(t1ce, labels, sigma_mm=0)
    soft, _, _ = remove_enhancement(t1ce, labels, sigma_mm=1.5)
    enhancing = labels == 4
    assert np.array_equal(soft[~enhancing], t1ce[~enhancing])
    # the rim's outer layer borders oedema at ~100: smoothing pulls it from the core's ~40 towards 100
    shell = enhancing.copy()
    shell[8:16, 8:16, 8:16] = False
    assert soft[shell].mean() > sharp[shell].mean() + 10


def test_too_little_core_uses_the_oedema_and_refusals_are_one_line():
    t1ce, labels = _case()
    no_core = np.where(labels == 1, 4, labels).astype(np.uint8)
    _, _, summary = remove_enhancement(t1ce, no_core, sigma_mm=0)
    assert summary["source"] == "edema" and abs(summary["source_median"] - 100) < 3
    with pytest.raises(InputError, match="no enhancing tumour"):
        remove_enhancement(t1ce, np.where(labels == 4, 1, labels))
    with pytest.raises(InputError, match="must be one 3D grid"):
        remove_enhancement(t1ce[:-1], labels)


def test_written_variant_keeps_grid_and_other_channels_and_is_found_as_a_case(tmp_path):
    t1ce, labels = _case()
    affine = np.diag([1.0, 1.2, 2.0, 1.0])
    affine[:3, 3] = (-10, 5, 30)
    src = tmp_path / "data" / "P1"
    src.mkdir(parents=True)
    for m in ("flair", "t1", "t2"):
        write_volume(Volume((t1ce + 7).astype(np.int16), affine), src / f"P1_{m}.nii.gz")
    write_volume(Volume(t1ce, affine), src / "P1_t1ce.nii.gz")
    write_volume(Volume(labels, affine), src / "P1_seg.nii.gz")
    (case,) = find_cases(tmp_path / "data")
    variant, _ = write_nonenhancing_variant(case, tmp_path / "out")
    assert variant.case_id == "P1" + VARIANT_SUFFIX and variant_parent(variant.case_id) == "P1"
    found = {c.case_id: c for c in find_cases(tmp_path / "out")}
    assert set(found) == {variant.case_id}
    new_t1ce, new_seg = read_volume(variant.channels["t1ce"]), read_volume(variant.label)
    assert np.allclose(new_t1ce.affine, affine) and np.allclose(new_seg.affine, affine)
    assert (np.asarray(new_seg.array) == 4).sum() == 0
    assert np.array_equal(np.asarray(new_seg.array) > 0, labels > 0)
    assert (variant.channels["flair"]).read_bytes() == (src / "P1_flair.nii.gz").read_bytes()
    outside = labels != 4
    assert np.array_equal(np.asarray(new_t1ce.array)[outside], t1ce[outside])
    with pytest.raises(InputError, match="is a variant already"):
        write_nonenhancing_variant(found[variant.case_id], tmp_path / "again")


def test_cli_writes_variants_and_links_originals(tmp_path, capsys):
    from medseg3d.cli import main

    t1ce, labels = _case()
    for cid, seg in (("P1", labels), ("P2", np.where(labels == 4, 1, labels).astype(np.uint8))):
        folder = tmp_path / "data" / cid
        folder.mkdir(parents=True)
        for m in ("flair", "t1", "t1ce", "t2"):
            write_volume(Volume(t1ce, np.eye(4)), folder / f"{cid}_{m}.nii.gz")
        write_volume(Volume(seg, np.eye(4)), folder / f"{cid}_seg.nii.gz")
    assert (
        main(
            ["synth-nonenhancing", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--with-originals"]
        )
        == 0
    )
    said = capsys.readouterr().out
    assert "skipped P2" in said and "wrote 1 non-enhancing variant(s)" in said
    assert sorted(c.case_id for c in find_cases(tmp_path / "out")) == ["P1", "P1_nonenh", "P2"]
    assert (
        main(["synth-nonenhancing", str(tmp_path / "data"), "--out", str(tmp_path / "o2"), "--cases", "P9"])
        != 0
    )
    assert "has no labelled case P9" in capsys.readouterr().err


def test_target_z_sets_the_regions_level_against_the_normal_brain():
    from medseg3d.datasets.synthetic import robust_z

    t1ce, labels = _case(2)
    for z in (-1.0, 0.5):
        out, _, summary = remove_enhancement(t1ce, labels, sigma_mm=0, target_z=z)
        # the brain (100 +- 5 noise) has an IQR of about 6.7: the median lands within a rounding step of z
        # IQRs
        got = robust_z(out, labels == 4, labels)
        assert abs(got - z) < 0.2 and abs(summary["after_z"] - got) < 1e-9
        assert np.array_equal(out[labels != 4], t1ce[labels != 4])
