import numpy as np
import pytest

from medseg3d.errors import InputError
from medseg3d.raw import qc
from medseg3d.raw.template import (
    MODALITIES,
    OUTSIDE,
    block_sum,
    load_template,
    normalise_brain,
    template_affine,
)


def test_the_bundled_template_is_a_2mm_brain_in_brats_space():
    t = load_template()
    assert t.shape == (120, 120, 78)
    np.testing.assert_allclose(t.affine, template_affine(2))
    np.testing.assert_allclose(t.affine[:3, :3], np.diag([-2.0, -2.0, 2.0]))
    assert set(t.images) == set(MODALITIES)
    brain_ml = float((t.brain >= 0.5).sum()) * 8 / 1000
    assert 1200 < brain_ml < 1800  # an adult brain
    assert len(t.info["cases"]) >= 20
    for m in MODALITIES:
        inside = t.images[m][t.brain >= 0.5]
        assert abs(float(inside.mean())) < 0.5  # brain-normalised: mean near 0 inside
        assert np.all(t.images[m][t.brain < 0.5] == pytest.approx(OUTSIDE, abs=0.05))


def test_normalise_brain_is_a_zscore_inside_and_a_constant_outside():
    image = np.zeros((10, 10, 10), np.float32)
    mask = np.zeros_like(image, bool)
    mask[2:8, 2:8, 2:8] = True
    image[mask] = np.tile([100.0, 300.0], mask.sum() // 2)
    out = normalise_brain(image, mask)
    np.testing.assert_allclose(np.unique(out[mask]), [-1.0, 1.0], atol=1e-6)
    assert np.all(out[~mask] == OUTSIDE)
    with pytest.raises(InputError, match="constant"):
        normalise_brain(np.ones_like(image), mask)


def test_block_sum_adds_each_block_and_pads_odd_sizes():
    a = np.ones((4, 4, 3))
    s = block_sum(a, 2)
    assert s.shape == (2, 2, 2)
    assert s[0, 0, 0] == 8 and s[0, 0, 1] == 4


def test_brain_volume_outside_the_adult_range_warns():
    assert qc.check_brain_volume(1500) is None
    assert "outside" in qc.check_brain_volume(400)
    assert "outside" in qc.check_brain_volume(3500)


def test_a_swap_of_t1_and_t2_is_named_and_the_right_order_is_quiet():
    # rows: channel as given; columns: correlation with each modality's template (raw shared case's values)
    right = {
        "flair": {"flair": 0.36, "t1": 0.41, "t1ce": 0.26, "t2": -0.16},
        "t1": {"flair": 0.29, "t1": 0.64, "t1ce": 0.47, "t2": -0.29},
        "t1ce": {"flair": 0.28, "t1": 0.43, "t1ce": 0.42, "t2": -0.21},
        "t2": {"flair": 0.01, "t1": -0.18, "t1ce": -0.18, "t2": 0.50},
    }
    assert qc.check_modalities(right) == []
    swapped = dict(right, t1=right["t2"], t2=right["t1"])
    lines = qc.check_modalities(swapped)
    assert len(lines) == 1 and "t1 looks like t2" in lines[0] and "t2 looks like t1" in lines[0]


def test_tumour_outside_or_along_the_edge_of_the_brain_warns():
    brain = np.zeros((40, 40, 40), bool)
    brain[5:35, 5:35, 5:35] = True
    inner = np.zeros_like(brain)
    inner[15:25, 15:25, 15:25] = True
    assert qc.check_tumour_in_brain(inner, brain) == []
    edge = np.zeros_like(brain)
    edge[5:12, 15:25, 15:25] = True  # pressed against the mask's face
    assert any("edge" in w for w in qc.check_tumour_in_brain(edge, brain))
    outside = np.zeros_like(brain)
    outside[0:8, 15:25, 15:25] = True
    assert any("outside" in w for w in qc.check_tumour_in_brain(outside, brain))
    # the edge band is in mm: 5 mm slices do not make a deep tumour look like it touches the edge
    assert qc.check_tumour_in_brain(inner, brain, spacing=(1, 1, 5)) == []


def test_template_fit_of_a_brats_case_is_high_and_of_a_shifted_one_lower(brats_root):
    from medseg3d.io import Volume, read_volume
    from medseg3d.raw.geometry import resample
    from medseg3d.raw.simulate import rigid_matrix
    from medseg3d.raw.template import BRATS_AFFINE, BRATS_SHAPE

    case = brats_root / "Brats18_TCIA02_135_1"
    t1 = read_volume(case / "Brats18_TCIA02_135_1_t1.nii.gz").array.astype(np.float32)
    brain = t1 != 0
    template = load_template()
    good = qc.template_fit({"t1": t1}, brain, template)
    shift = rigid_matrix(np.eye(3), [0, 12.0, 0], [0, 0, 0])
    moved = resample(Volume(t1, BRATS_AFFINE), BRATS_SHAPE, BRATS_AFFINE, shift)
    moved_brain = (
        resample(Volume(brain.astype(np.float32), BRATS_AFFINE), BRATS_SHAPE, BRATS_AFFINE, shift) >= 0.5
    )
    bad = qc.template_fit({"t1": moved}, moved_brain, template)
    assert good["brain_overlap"] >= qc.MIN_BRAIN_OVERLAP
    assert good["correlation"]["t1"]["t1"] >= qc.MIN_TEMPLATE_CORRELATION["t1"]
    assert bad["brain_overlap"] < good["brain_overlap"] - 0.03
    assert bad["correlation"]["t1"]["t1"] < good["correlation"]["t1"]["t1"]
