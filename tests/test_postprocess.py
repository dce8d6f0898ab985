"""Label-map post-processing after inference: small enhancing tumour relabelled, non-BraTS models refused."""

import numpy as np
import pytest

from medseg3d.errors import InputError
from medseg3d.labels import get_scheme
from medseg3d.postprocess import relabel_small_enhancing, remove_small_components


def _case_with_enhancing(n_enhancing: int) -> np.ndarray:
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[2:6, 2:6, 2:6] = 2  # edema
    labels[3:5, 3:5, 3] = 1  # necrosis
    labels.flat[np.flatnonzero(labels == 2)[:n_enhancing]] = 4
    return labels


def _write_case(folder, case_id: str, reference: np.ndarray, affine) -> None:
    """A BraTS case folder: four flat channels and ``reference`` as its label map."""
    from medseg3d.io import Volume, write_volume

    folder.mkdir(parents=True, exist_ok=True)
    for m in ("flair", "t1", "t1ce", "t2"):
        write_volume(Volume(np.ones(reference.shape, np.float32), affine), folder / f"{case_id}_{m}.nii.gz")
    write_volume(Volume(reference, affine), folder / f"{case_id}_seg.nii.gz")


def _reference_and_far_blob(found_enhancing: int) -> tuple[np.ndarray, np.ndarray]:
    """(reference, prediction) on a 30 x 10 x 10 grid of 1 mm voxels: the reference's tumour (5 enhancing
    voxels) in x 0-9; the prediction finds ``found_enhancing`` of those and adds an 8-voxel blob 20 mm away (x
    5 ->
    25)."""
    ref = np.zeros((30, 10, 10), np.uint8)
    ref[:10] = _case_with_enhancing(5)
    pred = ref.copy()
    pred[:10] = _case_with_enhancing(found_enhancing)
    pred[25:27, 2:4, 2:4] = 2
    return ref, pred


@pytest.mark.parametrize("scheme", ["brats", "regions", "brats2015"])
def test_small_enhancing_becomes_necrosis(scheme):
    labels = _case_with_enhancing(3)
    out = relabel_small_enhancing(labels, get_scheme(scheme), 4)
    assert (out == 4).sum() == 0 and (out == 1).sum() == (labels == 1).sum() + 3
    # tumour core and whole tumour are unchanged
    assert np.array_equal(np.isin(out, (1, 4)), np.isin(labels, (1, 4))) and np.array_equal(
        out > 0, labels > 0
    )
    assert (labels == 4).sum() == 3  # the input is not modified


def test_enough_enhancing_or_none_is_kept():
    scheme = get_scheme("brats")
    labels = _case_with_enhancing(3)
    assert np.array_equal(relabel_small_enhancing(labels, scheme, 3), labels)  # 3 voxels is not fewer than 3
    assert np.array_equal(relabel_small_enhancing(labels, scheme, 0), labels)  # off
    none = _case_with_enhancing(0)
    assert np.array_equal(relabel_small_enhancing(none, scheme, 100), none)


def test_non_brats_models_are_refused():
    for scheme in ("binary", "hand", "brats2012"):
        with pytest.raises(InputError, match="needs a BraTS model"):
            relabel_small_enhancing(_case_with_enhancing(0), get_scheme(scheme), 10)


def test_small_components_removed_known_answer():
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[1:5, 1:5, 1:5] = 2  # 64 voxels
    labels[9, 9, 9] = 4  # an isolated voxel
    out = remove_small_components(labels, 10)
    assert out[9, 9, 9] == 0 and (out == 2).sum() == 64


def test_negative_minimums_are_refused(brats_root):
    from medseg3d.models import bundled_models
    from medseg3d.predict import segment

    if "brats" not in bundled_models():
        pytest.skip("no bundled brats model installed")
    with pytest.raises(InputError, match="--min-enhancing must be a number of voxels >= 0"):
        segment("brats-v1", brats_root / "Brats18_2013_2_1", min_enhancing=-1)


def test_far_components_are_removed_by_their_distance_in_mm_and_near_ones_kept():
    from medseg3d.postprocess import remove_far_components

    labels = np.zeros((60, 20, 20), np.uint8)
    labels[5:15, 5:15, 5:15] = 2  # the main tumour, 1000 voxels
    labels[18:20, 8:10, 8:10] = 1  # 3 voxels past its edge (index 14 -> 18: 4 voxels apart)
    labels[50:53, 8:11, 8:11] = 4  # 36 voxels past its edge
    # 1 mm voxels: the near lesion is 4 mm away, the far one 36 mm
    out = remove_far_components(labels, (1.0, 1.0, 1.0), 20)
    assert (
        out[50:53, 8:11, 8:11].sum() == 0
        and (out[18:20, 8:10, 8:10] == 1).all()
        and (out[5:15, 5:15, 5:15] == 2).all()
    )
    # the same voxels 0.5 mm apart along x: the far one is 18 mm away and stays at 20 mm, goes at 15 mm
    assert np.array_equal(remove_far_components(labels, (0.5, 1.0, 1.0), 20), labels)
    assert remove_far_components(labels, (0.5, 1.0, 1.0), 15)[50:53].sum() == 0
    assert np.array_equal(remove_far_components(labels, (1.0, 1.0, 1.0), 0), labels)  # off
    single = np.zeros_like(labels)
    single[5:15, 5:15, 5:15] = 2
    assert np.array_equal(remove_far_components(single, (1.0, 1.0, 1.0), 1), single)


def test_a_negative_distance_is_refused_in_one_line():
    from medseg3d.errors import InputError
    from medseg3d.labels import get_scheme
    from medseg3d.postprocess import check_options

    for bad in (-1.0, float("nan")):
        with pytest.raises(InputError, match="--max-distance must be a distance in mm >= 0"):
            check_options(get_scheme("brats"), 0, 0, bad)


def test_far_tumour_in_references_known_answer(tmp_path, capsys):
    from conftest import VALIDATION, load_script

    script = load_script("far_tumour_in_references", VALIDATION)
    labels = np.zeros((60, 20, 20), np.uint8)
    labels[5:15, 5:15, 5:15] = 2  # main tumour
    labels[50:53, 8:11, 8:11] = 4  # 27 voxels whose nearest is 36 mm (1 mm voxels) from it
    for name, seg in (("multi", labels), ("single", np.where(labels == 4, 0, labels).astype(np.uint8))):
        _write_case(tmp_path / name, name, seg, np.eye(4))
    assert script.main([str(tmp_path), "--distances", "20,40"]) == 0
    out = capsys.readouterr().out
    # 1027 voxels of 1 mm^3; 27 of them beyond 20 mm, none beyond 40
    assert "| multi | 1.0 | 0.027 | 0.000 |" in out
    assert "| single |" not in out
    assert "20 mm: 1 of 2 references have tumour beyond it; most 0.027 ml (multi)" in out
    assert "40 mm: 0 of 2 references have tumour beyond it\n" in out
    with pytest.raises(SystemExit, match="must be above 0"):
        script.main([str(tmp_path), "--distances", "0"])


def test_postprocess_counts_exactly_the_voxels_that_far_removal_took():
    from medseg3d.labels import BRATS
    from medseg3d.postprocess import postprocess, postprocess_counted

    labels = np.zeros((60, 20, 20), np.uint8)
    labels[2:12, 5:15, 5:15] = 2  # 1000 voxels of edema
    labels[45:48, 5:8, 5:8] = 4  # 27 voxels, 34 mm from it at 1 mm spacing
    kept, removed, small = postprocess_counted(labels, BRATS, spacing=(1, 1, 1), max_distance_mm=20.0)
    assert removed == 27 and small == 0 and (kept > 0).sum() == 1000
    assert np.array_equal(kept, postprocess(labels, BRATS, spacing=(1, 1, 1), max_distance_mm=20.0))
    same, none_removed, _ = postprocess_counted(labels, BRATS, spacing=(1, 1, 1), max_distance_mm=40.0)
    assert none_removed == 0 and np.array_equal(same, labels)
    # 2 mm voxels: 68 mm apart, and the count is of voxels, not of mm^3
    assert postprocess_counted(labels, BRATS, spacing=(2, 2, 2), max_distance_mm=40.0)[1] == 27
    # the lesion-size rule's whole-tumour removal is counted apart (the largest component always stays)
    out, far, small = postprocess_counted(labels, BRATS, spacing=(1, 1, 1), min_lesion={"WT": 100, "ET": 5})
    assert far == 0 and small == 27 and (out > 0).sum() == 1000
    assert postprocess_counted(labels, BRATS, min_lesion={"WT": 5000})[2] == 27  # the 1000-voxel one stays


def test_enhancing_rule_by_largest_component_ignores_scattered_specks():
    scheme = get_scheme("brats")
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:18, 2:18, 2:18] = 2
    for i in range(5):  # five single enhancing voxels, none touching another: 5 in all, largest 1
        labels[3 + 3 * i, 5, 5] = 4
    assert np.array_equal(
        relabel_small_enhancing(labels, scheme, 5, by="total"), labels
    )  # 5 is not fewer than 5
    out = relabel_small_enhancing(labels, scheme, 2, by="largest")
    assert (out == 4).sum() == 0 and (out == 1).sum() == 5
    labels[10:12, 10:12, 10:12] = 4  # an 8-voxel rim: the largest is now 8
    assert np.array_equal(relabel_small_enhancing(labels, scheme, 8, by="largest"), labels)
    assert (relabel_small_enhancing(labels, scheme, 9, by="largest") == 4).sum() == 0
    with pytest.raises(InputError, match="measures total or largest"):
        relabel_small_enhancing(labels, scheme, 9, by="mean")


def test_voxels_for_volume_rounds_up():
    from medseg3d.postprocess import voxels_for_volume

    assert voxels_for_volume(500, (1, 1, 1)) == 500
    assert voxels_for_volume(500, (2, 2, 2)) == 63  # 62.5 voxels of 8 mm^3
    assert voxels_for_volume(0, (1, 1, 1)) == 0


def test_small_region_components_go_to_the_next_outer_region_known_answer():
    from medseg3d.postprocess import demote_small_region_components

    scheme = get_scheme("brats")
    labels = np.zeros((30, 30, 30), np.uint8)
    labels[2:12, 2:12, 2:12] = 2  # main tumour: 1000 voxels of edema ...
    labels[4:10, 4:10, 4:10] = 1  # ... around a 216-voxel core ...
    labels[5:8, 5:8, 5:8] = 4  # ... with 27 enhancing voxels
    labels[4, 11, 11] = 4  # a lone enhancing voxel inside the edema (touches no other 4)
    labels[20:23, 20:23, 20:23] = 1  # a separate 27-voxel core without edema
    out = demote_small_region_components(labels, scheme, {"ET": 2})
    assert out[4, 11, 11] == 1 and (out == 4).sum() == 27  # the 1-voxel ET component became necrosis
    assert np.array_equal(np.isin(out, (1, 4)), np.isin(labels, (1, 4)))  # tumour core unchanged
    out = demote_small_region_components(labels, scheme, {"TC": 28})
    assert (out[20:23, 20:23, 20:23] == 2).all() and out[4, 11, 11] == 2  # both small cores -> edema
    assert (out[5:8, 5:8, 5:8] == 4).all()  # the 216-voxel core stays
    assert np.array_equal(out > 0, labels > 0)  # whole tumour unchanged
    out = demote_small_region_components(labels, scheme, {"WT": 28})
    assert out[20:23, 20:23, 20:23].sum() == 0 and (out > 0).sum() == 1000
    assert demote_small_region_components(labels, scheme, {"WT": 0, "ET": 0}) is labels  # off
    # the largest whole-tumour component always stays, even below the threshold: a small tumour is not erased
    out = demote_small_region_components(labels, scheme, {"WT": 5000})
    assert out[20:23, 20:23, 20:23].sum() == 0 and np.array_equal(out[:12, :12, :12], labels[:12, :12, :12])
    lone = np.zeros((30, 30, 30), np.uint8)
    lone[10:13, 10:13, 10:13] = 2
    lone[11, 11, 11] = 4
    assert demote_small_region_components(lone, scheme, {"WT": 1000}) is lone
    assert (labels[20:23, 20:23, 20:23] == 1).all()  # the input is not modified
    with pytest.raises(InputError, match="per region WT, TC or ET"):
        demote_small_region_components(labels, scheme, {"NET": 5})
    with pytest.raises(InputError, match="needs a BraTS model"):
        demote_small_region_components(labels, get_scheme("brats2012"), {"WT": 5})


def test_postprocess_applies_region_thresholds_before_the_enhancing_rule():
    from medseg3d.labels import BRATS
    from medseg3d.postprocess import postprocess

    labels = np.zeros((30, 30, 30), np.uint8)
    labels[2:12, 2:12, 2:12] = 2
    labels[4:10, 4:10, 4:10] = 1
    labels[5:8, 5:8, 5:8] = 4  # 27 enhancing voxels in the core
    labels[20:22, 20:22, 20:22] = 4  # an 8-voxel enhancing blob on its own (a WT component of 8)
    out = postprocess(labels, BRATS, spacing=(1, 1, 1), min_lesion={"WT": 10})
    assert out[20:22, 20:22, 20:22].sum() == 0 and (out == 4).sum() == 27
    # the blob demoted to necrosis by ET < 10, then the rule sees 27 enhancing voxels < 30: all necrosis
    out = postprocess(labels, BRATS, spacing=(1, 1, 1), min_lesion={"ET": 10}, min_enhancing=30)
    assert (out == 4).sum() == 0 and (out[20:22, 20:22, 20:22] == 1).all()
    assert np.array_equal(postprocess(labels, BRATS, spacing=(1, 1, 1), min_lesion={}), labels)
