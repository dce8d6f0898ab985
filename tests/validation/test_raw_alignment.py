"""validation/raw_alignment.py: two pipelines' atlas alignments of one head are measured and undone."""

import numpy as np
import pytest
from conftest import VALIDATION, load_script
from scipy import ndimage

from medseg3d.io import Volume


@pytest.fixture(scope="module")
def raw_alignment():
    return load_script("raw_alignment", VALIDATION)


def test_known_points_and_displacements(raw_alignment):
    affine = np.diag([-2.0, -2.0, 2.0, 1.0])
    affine[:3, 3] = [10.0, 20.0, -30.0]
    mask = np.zeros((3, 3, 3), bool)
    mask[1, 2, 0] = True
    # voxel (1, 2, 0): RAS (10 - 2, 20 - 4, -30) -> LPS (-8, -16, -30)
    np.testing.assert_allclose(
        raw_alignment.lps_points(Volume(np.zeros((3, 3, 3)), affine), mask), [[-8, -16, -30]]
    )
    shift = np.eye(4)
    shift[:3, 3] = [3.0, 4.0, 0.0]
    np.testing.assert_allclose(raw_alignment.displacement_mm(shift, np.zeros((2, 3))), [5.0, 5.0])


def test_a_shifted_alignment_is_found_and_undone(raw_alignment):
    """The same textured head, "ours" 4 mm further along x: the fitted map moves the brain by about 4 mm and
    our labels carried through it land on theirs."""
    rng = np.random.default_rng(0)
    shape = (80, 90, 70)
    x, y, z = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    brain = ((x - 40) / 30) ** 2 + ((y - 45) / 36) ** 2 + ((z - 35) / 26) ** 2 < 1
    texture = ndimage.gaussian_filter(rng.normal(size=shape), 3)
    image = np.where(brain, 1 + 5 * texture + 0.5 * (x > 45), 0).astype(np.float32)
    labels = (((x - 50) ** 2 + (y - 40) ** 2 + (z - 30) ** 2) < 64).astype(np.uint8) * 2
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[:3, 3] = [40.0, 45.0, -35.0]
    ours = Volume(np.roll(labels, 4, 0), affine)
    aligned, matrix = raw_alignment.align_labels(
        ours, Volume(np.roll(image, 4, 0), affine), Volume(image, affine)
    )
    moved = raw_alignment.displacement_mm(
        matrix, raw_alignment.lps_points(Volume(image, affine), brain, step=20)
    )
    assert abs(np.median(moved) - 4.0) < 0.5 and moved.max() < 5.0  # a 4 mm shift, to registration accuracy
    a, b, before = aligned.array > 0, labels > 0, ours.array > 0
    # as is, the shift costs a third of the Dice
    assert 2 * (before & b).sum() / (before.sum() + b.sum()) < 0.7
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.95 and set(np.unique(aligned.array)) <= {0, 2}


def test_a_case_without_both_pipelines_is_refused(raw_alignment, tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    assert raw_alignment.main(["--case", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "raw/flair.nii.gz: not found; give --case a folder with raw/ and brainles_sri24/" in err
    )
