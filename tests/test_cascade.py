"""The two-stage cascade (medseg3d.cascade): the box, the paste back, attaching and refusing refiners."""

import numpy as np
import pytest
import torch

from medseg3d.cascade import check_refiner, refine, refine_box, tumour_mask
from medseg3d.checkpoint import read_model_file, rewrite_model_metadata
from medseg3d.cli import main
from medseg3d.errors import ModelError
from medseg3d.models import bundled_models, load_model, with_refiner
from medseg3d.models.loaded import loaded_model
from medseg3d.preprocess import preprocess


def test_box_has_the_margin_and_stays_inside():
    mask = np.zeros((30, 40, 20), bool)
    mask[10:14, 20:31, 5:7] = True
    assert refine_box(mask, (2, 3, 1)) == ((8, 17, 4), (16, 34, 8))
    # widened to the minimum size about its centre, then shifted inside the array
    assert refine_box(mask, (0, 0, 0), (8, 8, 16)) == ((8, 20, 0), (16, 31, 16))  # y already 11 wide
    assert refine_box(mask, (50, 50, 50)) == ((0, 0, 0), (30, 40, 20))
    assert refine_box(mask, (0, 0, 0), (64, 64, 64)) == ((0, 0, 0), (30, 40, 20))
    assert refine_box(np.zeros((4, 4, 4), bool), (1, 1, 1)) is None


def test_tumour_mask_regions_and_classes():
    regions = np.zeros((3, 2, 2, 2), np.float32)
    regions[2, 0, 0, 0] = 0.9  # ET alone still counts as tumour
    regions[0, 1, 1, 1] = 0.5  # not above 0.5
    assert tumour_mask(regions, "region").sum() == 1 and tumour_mask(regions, "region")[0, 0, 0]
    classes = np.zeros((4, 2, 2, 2), np.float32)
    classes[0] = 0.6
    classes[3, 1, 0, 0], classes[0, 1, 0, 0] = 0.7, 0.1
    assert np.argwhere(tumour_mask(classes, "multiclass")).tolist() == [[1, 0, 0]]


class _FirstChannelsAsLogits(torch.nn.Module):
    """A stand-in refiner whose logits are its first three input channels: what it returns at a voxel says
    exactly which input voxel it saw, so the paste back can be checked voxel for voxel."""

    size_multiple = 1

    def forward(self, x):
        return x[:, :3]


def _refiner(tmp_path, patch=None, **inference):
    meta, _ = read_model_file(bundled_models()["brats-v1"])
    meta = meta | {
        "preprocess": meta["preprocess"] | {"downsample": 1.0},
        "inference": inference or None,
        "patch": patch,
    }
    return loaded_model(_FirstChannelsAsLogits(), meta, tmp_path / "refiner.safetensors", torch.device("cpu"))


def _case(seed=0):
    rng = np.random.default_rng(seed)
    image = np.zeros((4, 40, 44, 36), np.float32)
    image[:, 4:36, 5:40, 3:33] = rng.uniform(1, 100, (4, 32, 35, 30))  # the "brain"
    return image, np.diag([1.0, 1.0, 1.0, 1.0])


def test_refine_replaces_the_box_and_nothing_else(tmp_path):
    image, affine = _case()
    coarse = np.zeros((3, 40, 44, 36), np.float32)
    coarse[0, 18:22, 20:24, 15:18] = 0.8
    coarse[:, 0:2] = 0.3  # below threshold: not tumour, kept as it is outside the box
    refiner = _refiner(tmp_path)
    out, info = refine(refiner, image, affine, coarse, margin_mm=3.0)
    x, _, record = preprocess(image, affine, refiner.prep)
    # the box on the refiner's grid: the tumour (input voxels 18:22, ...) moved by the crop start, plus 3
    # voxels
    start = [a - s - 3 for a, s in zip((18, 20, 15), record.box_start)]
    stop = [b - s + 3 for b, s in zip((22, 24, 18), record.box_start)]
    assert info["box"] == [start, stop] and info["voxels"] == 10 * 10 * 9
    inside = np.zeros(coarse.shape[1:], bool)
    in_box = tuple(slice(a + s, b + s) for a, b, s in zip(start, stop, record.box_start))
    inside[in_box] = True
    np.testing.assert_array_equal(out[:, ~inside], coarse[:, ~inside])
    expected = torch.sigmoid(torch.from_numpy(x[:3])).numpy()
    crop = tuple(slice(a, b) for a, b in zip(start, stop))
    np.testing.assert_allclose(out[(slice(None), *in_box)], expected[(slice(None), *crop)], rtol=0, atol=1e-6)


def test_refine_in_windows_covers_the_same_box(tmp_path):
    image, affine = _case(1)
    coarse = np.zeros((3, 40, 44, 36), np.float32)
    coarse[:, 10:30, 12:30, 8:28] = 0.9
    whole, _ = refine(_refiner(tmp_path), image, affine, coarse, sliding_window=False)
    windowed, _ = refine(
        _refiner(tmp_path, (8, 8, 8), sliding_window=True, overlap=0.5), image, affine, coarse
    )
    # a voxel-wise network gives the same numbers in windows (blending equal values), up to float32 rounding
    np.testing.assert_allclose(windowed, whole, rtol=0, atol=1e-5)


def test_no_tumour_no_refinement(tmp_path):
    image, affine = _case()
    coarse = np.full((3, 40, 44, 36), 0.2, np.float32)
    out, info = refine(_refiner(tmp_path), image, affine, coarse)
    assert info == {"refiner": "refiner", "box": None} and out is coarse


def test_refiners_must_match(tmp_path):
    coarse = load_model("brats-v1", device="cpu", refine="none")
    meta, _ = read_model_file(bundled_models()["brats-v1"])
    other = loaded_model(
        _FirstChannelsAsLogits(),
        meta | {"modalities": ["t1", "flair", "t1ce", "t2"]},
        tmp_path / "r.safetensors",
        torch.device("cpu"),
    )
    with pytest.raises(ModelError, match="cannot refine brats-v1: it reads t1, flair, t1ce, t2"):
        check_refiner(coarse, other)
    with pytest.raises(ModelError, match="it is the model itself"):
        load_model("brats-v1", device="cpu", refine="brats-v1")
    # another model at the same 2 mm is no refiner: v2 (what `brats` names now) cannot refine v1, nor v1 v2
    with pytest.raises(
        ModelError,
        match="cannot refine brats-v1: it works on voxels 2x the input's, not finer "
        "than the model's \\(2x the input's\\)",
    ):
        load_model("brats-v1", device="cpu", refine="brats-v2")
    with pytest.raises(ModelError, match="brats-v1 cannot refine brats-v2: it works on voxels 2x"):
        load_model("brats-v2", device="cpu", refine="brats-v1")


def test_refiner_named_in_metadata(tmp_path):
    source = bundled_models()["brats-v1"]
    meta, _ = read_model_file(source)
    fine = rewrite_model_metadata(
        source, {"preprocess": meta["preprocess"] | {"downsample": 1.0}}, out=tmp_path / "fine.safetensors"
    )
    assert load_model(source, device="cpu").refiner is None  # v1 names none
    attached = load_model(source, device="cpu", refine=fine)
    assert attached.refiner.prep.downsample == 1.0 and attached.pipeline_name == "brats-v1 refined by fine"
    assert load_model(source, device="cpu", refine="none").refiner is None
    named = rewrite_model_metadata(
        source,
        {"inference": meta["inference"] | {"refiner": "no-such-model"}},
        out=tmp_path / "named.safetensors",
    )
    with pytest.raises(ModelError, match="names refiner 'no-such-model', which is not a bundled model"):
        load_model(named, device="cpu")
    assert load_model(named, device="cpu", refine="none").refiner is None  # the user can still run it alone
    for hostile in ("../../etc/passwd", "/tmp/x.safetensors", 3, ""):
        with pytest.raises(ModelError, match="inference.refiner must be the name of a bundled model"):
            rewrite_model_metadata(
                source, {"inference": {"refiner": hostile}}, out=tmp_path / "h.safetensors"
            )
    assert not (tmp_path / "h.safetensors").exists()


def test_with_refiner_on_a_loaded_model(tmp_path):
    source = bundled_models()["brats-v1"]
    meta, _ = read_model_file(source)
    fine = rewrite_model_metadata(
        source, {"preprocess": meta["preprocess"] | {"downsample": 1.0}}, out=tmp_path / "fine.safetensors"
    )
    coarse = load_model(source, device="cpu")
    attached = with_refiner(coarse, fine)
    assert coarse.refiner is None and attached.refiner.name == "fine"  # the caller's model is not changed
    assert attached.refiner.device == coarse.device and attached.model is coarse.model
    assert with_refiner(attached, "auto") is attached  # auto keeps the refiner it has
    assert with_refiner(attached, "none").refiner is None and attached.refiner is not None
    assert with_refiner(coarse, "auto") is coarse  # v1's metadata names none
    with pytest.raises(ModelError, match="it is the model itself"):
        with_refiner(coarse, "brats-v1")
    coarser = rewrite_model_metadata(
        source, {"preprocess": meta["preprocess"] | {"downsample": 3.0}}, out=tmp_path / "coarser.safetensors"
    )
    with pytest.raises(ModelError, match="coarser cannot refine brats-v1: it works on voxels 3x the input's"):
        with_refiner(coarse, coarser)
    assert with_refiner(load_model(coarser, device="cpu"), source).refiner.name == "brats-v1"  # 2x refines 3x


def test_cli_refine_errors_are_one_line(tmp_path, capsys):
    assert (
        main(["predict", "brats-v1", str(tmp_path), "-o", str(tmp_path / "t.nii.gz"), "--refine", "brats-v1"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot refine brats-v1" in err


@pytest.mark.slow
def test_predict_runs_the_cascade_on_a_real_case(tmp_path, brats_root):
    import json

    from medseg3d.io import read_volume

    source = bundled_models()["brats-v1"]
    meta, _ = read_model_file(source)
    # the bundled weights at 1 mm, one pass over the box: a stand-in refiner (what it costs, not what it
    # scores)
    fine = rewrite_model_metadata(
        source,
        {"preprocess": meta["preprocess"] | {"downsample": 1.0}, "inference": {"sliding_window": False}},
        out=tmp_path / "fine.safetensors",
    )
    case = brats_root / "Brats18_2013_2_1"
    plain, cascade = tmp_path / "plain.nii.gz", tmp_path / "cascade.nii.gz"
    assert main(["predict", "brats-v1", str(case), "-o", str(plain), "--quiet", "--report"]) == 0
    assert (
        main(
            [
                "predict",
                "brats-v1",
                str(case),
                "-o",
                str(cascade),
                "--quiet",
                "--report",
                "--refine",
                str(fine),
            ]
        )
        == 0
    )
    refinement = json.loads((tmp_path / "cascade.json").read_text())["refinement"]
    assert refinement["refiner"] == "fine" and refinement["voxels"] > 64**3  # the tumour plus 12 mm each side
    a, b = read_volume(plain), read_volume(cascade)
    np.testing.assert_array_equal(a.affine, b.affine)
    assert set(np.unique(b.array)) <= {0, 1, 2, 4} and (b.array > 0).sum() > 1000
    # the refiner only relabels the box around the coarse tumour
    box = np.argwhere(a.array > 0)
    lo, hi = box.min(0) - 13, box.max(0) + 14
    outside = np.ones(a.shape, bool)
    outside[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = False
    np.testing.assert_array_equal(a.array[outside], b.array[outside])


def test_a_refiner_must_work_on_finer_voxels():
    from medseg3d.cascade import _finer
    from medseg3d.preprocess import PrepConfig

    def mm(*spacing):
        return PrepConfig(spacing=spacing)

    assert _finer(PrepConfig(downsample=1.0), PrepConfig(downsample=2.0))
    assert not _finer(PrepConfig(downsample=2.0), PrepConfig(downsample=2.0))
    assert _finer(mm(1, 1, 1), mm(2, 2, 2)) and _finer(mm(1, 2, 2), mm(2, 2, 2))  # finer in-plane only: finer
    # coarser on one axis
    assert not _finer(mm(2, 2, 2), mm(2, 2, 2)) and not _finer(mm(1, 3, 1), mm(2, 2, 2))
    assert _finer(mm(1, 1, 1), PrepConfig(downsample=2.0))  # a spacing against a factor: the case decides
