"""The prepared-case cache: prepare, skip, redo, refuse, report, memory-map."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg3d.cache import PreparedCase, open_cache, prepare_dataset
from medseg3d.datasets import find_cases
from medseg3d.errors import InputError
from medseg3d.labels import BRATS
from medseg3d.preprocess import PrepConfig, preprocess, undo_labels

CASES = ("Brats18_2013_20_1", "Brats18_2013_2_1")


@pytest.fixture(scope="module")
def dataset(brats_root, tmp_path_factory) -> Path:
    """Two shared cases, linked (not copied) into a dataset folder."""
    root = tmp_path_factory.mktemp("ds")
    for cid in CASES:
        (root / cid).symlink_to(brats_root / cid, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def prepared(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "c"
    summary = prepare_dataset(dataset, out, workers=1, progress=False)
    return out, summary


@pytest.fixture
def cache_copy(prepared, tmp_path) -> Path:
    dst = tmp_path / "c"
    shutil.copytree(prepared[0], dst)
    return dst


def _mtimes(out: Path) -> dict:
    return {cid: (out / cid / "image.npy").stat().st_mtime_ns for cid in CASES}


def test_prepare_writes_every_case(prepared):
    out, summary = prepared
    assert (
        sorted(summary["prepared"]) == sorted(CASES) and summary["skipped"] == [] and summary["failed"] == {}
    )
    meta = json.loads((out / "cache.json").read_text(encoding="utf-8"))
    assert meta["cases"] == sorted(CASES)
    assert meta["settings"]["modalities"] == ["flair", "t1", "t1ce", "t2"]
    for cid in CASES:
        assert sorted(p.name for p in (out / cid).iterdir()) == ["image.npy", "label.npy", "record.json"]


def test_open_cache_memory_maps_and_undoes_exactly(prepared, brats_root):
    out, _ = prepared
    _, cases = open_cache(out)
    assert sorted(cases) == sorted(CASES)
    case = cases[CASES[0]]
    assert isinstance(case.image, np.memmap) and isinstance(case.label, np.memmap)
    assert case.image.dtype == np.float16 and case.label.dtype == np.uint8
    assert case.image.shape == (4,) + case.record.shape and case.label.shape == case.record.shape
    # the cached arrays are what preprocess gives, and the label goes back onto the original grid exactly
    image, ref, seg = find_cases(brats_root / CASES[0])[0].load()
    classes = BRATS.to_classes(seg)
    x, y, rec = preprocess(image, ref.affine, PrepConfig(), classes, 4)
    assert rec.to_dict() == case.record.to_dict()
    np.testing.assert_array_equal(np.asarray(case.label), y)
    np.testing.assert_allclose(np.asarray(case.image, dtype=np.float32), x, atol=0.01, rtol=1e-3)
    np.testing.assert_array_equal(undo_labels(np.asarray(case.label), case.record, 4), classes)
    assert case.entry["class_voxels"] == np.bincount(y.ravel(), minlength=4).tolist()


def test_second_run_skips(prepared, cache_copy, dataset):
    before = _mtimes(cache_copy)
    summary = prepare_dataset(dataset, cache_copy, workers=1, progress=False)
    assert summary["prepared"] == [] and sorted(summary["skipped"]) == sorted(CASES)
    assert _mtimes(cache_copy) == before


@pytest.mark.parametrize("damage", ["truncate image", "delete label", "garble record", "wrong shape"])
def test_damaged_case_is_redone(cache_copy, dataset, damage):
    victim = cache_copy / CASES[1]
    if damage == "truncate image":
        data = (victim / "image.npy").read_bytes()
        (victim / "image.npy").write_bytes(data[: len(data) // 3])
    elif damage == "delete label":
        (victim / "label.npy").unlink()
    elif damage == "garble record":
        (victim / "record.json").write_text("{ not json", encoding="utf-8")
    else:
        np.save(victim / "image.npy", np.zeros((4, 3, 3, 3), np.float16))
    summary = prepare_dataset(dataset, cache_copy, workers=1, progress=False)
    assert summary["prepared"] == [CASES[1]] and summary["skipped"] == [CASES[0]]
    _, cases = open_cache(cache_copy)
    assert cases[CASES[1]].image.shape[0] == 4
    assert cases[CASES[1]].image.shape[1:] == cases[CASES[1]].record.shape


def test_other_settings_refused(cache_copy, dataset):
    with pytest.raises(InputError) as e:
        prepare_dataset(dataset, cache_copy, PrepConfig(downsample=2), workers=1, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "other settings" in msg and "downsample" in msg and str(cache_copy) in msg
    with pytest.raises(InputError) as e:
        prepare_dataset(dataset, cache_copy, modalities="flair,t1ce", workers=1, progress=False)
    assert "modalities" in str(e.value)
    with pytest.raises(InputError):
        prepare_dataset(dataset, cache_copy, labels="binary", workers=1, progress=False)


def _bad_label_case(root: Path) -> None:
    folder = root / "zz_bad"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for m in ("flair", "t1", "t1ce", "t2"):
        nib.save(
            nib.Nifti1Image(rng.integers(1, 100, (10, 10, 10)).astype(np.int16), np.eye(4)),
            str(folder / f"zz_bad_{m}.nii.gz"),
        )
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[5, 5, 5] = 7
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(folder / "zz_bad_seg.nii.gz"))


def test_failed_case_is_reported_others_prepared(tmp_path, brats_root):
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / CASES[1]).symlink_to(brats_root / CASES[1], target_is_directory=True)
    _bad_label_case(ds)
    summary = prepare_dataset(ds, tmp_path / "out", workers=2, progress=False)  # through the process pool
    assert summary["prepared"] == [CASES[1]]
    assert list(summary["failed"]) == ["zz_bad"]
    reason = summary["failed"]["zz_bad"]
    assert "[7]" in reason and "zz_bad" in reason and "\n" not in reason
    _, cases = open_cache(tmp_path / "out")
    assert list(cases) == [CASES[1]]


def test_every_case_failing_raises(tmp_path):
    _bad_label_case(tmp_path)
    with pytest.raises(InputError) as e:
        prepare_dataset(tmp_path / "zz_bad", tmp_path / "out", workers=1, progress=False)
    assert "every case failed" in str(e.value) and "[7]" in str(e.value)


def test_synthetic_cache_round_trip_with_downsampling(tmp_path):
    """A small synthetic case through prepare with downsample=2: shapes and undo in the record."""
    folder = tmp_path / "ds" / "s1"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    shape = (30, 28, 26)
    for m in ("flair", "t1", "t1ce", "t2"):
        a = np.zeros(shape, np.int16)
        a[4:26, 3:25, 2:24] = rng.integers(1, 400, (22, 22, 22))
        nib.save(nib.Nifti1Image(a, np.eye(4)), str(folder / f"s1_{m}.nii.gz"))
    lab = np.zeros(shape, np.uint8)
    # the bbox (margin 2) starts at (2, 1, 0): these blocks sit on the even 2-voxel grid of the crop
    lab[8:20, 9:21, 8:20] = 2
    lab[12:16, 13:17, 12:16] = 4
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(folder / "s1_seg.nii.gz"))
    prepare_dataset(tmp_path / "ds", tmp_path / "out", PrepConfig(downsample=2), workers=1, progress=False)
    meta, cases = open_cache(tmp_path / "out")
    assert meta["settings"]["preprocess"]["downsample"] == 2
    case = cases["s1"]
    assert case.record.box_start == (2, 1, 0) and case.record.crop_shape == (26, 26, 26)
    assert case.record.shape == (13, 13, 13)
    back = BRATS.to_values(undo_labels(np.asarray(case.label), case.record, 4))
    assert back.shape == shape
    # blocks on the 2-voxel grid come back except their 8 corner voxels, which linear up-sampling of the
    # one-hot maps rounds off (smoother than nearest, and better on real tumours)
    wrong = np.argwhere(back != lab)
    assert len(wrong) == 16, wrong
    for v in wrong:
        assert sum(int(c) in (8, 19, 9, 20, 12, 15, 13, 16) for c in v) == 3


def test_out_must_be_a_cache_folder(tmp_path, dataset):
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(InputError) as e:
        prepare_dataset(dataset, tmp_path / "file", progress=False)
    assert "is a file" in str(e.value)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("x", encoding="utf-8")
    with pytest.raises(InputError) as e:
        prepare_dataset(dataset, tmp_path / "home", progress=False)
    assert "not a medseg3d cache" in str(e.value)
    assert os.listdir(tmp_path / "home") == ["thesis.tex"]


def test_open_cache_errors(tmp_path, cache_copy):
    with pytest.raises(InputError) as e:
        open_cache(tmp_path / "nothing")
    assert "not a medseg3d cache" in str(e.value)
    (cache_copy / CASES[0] / "image.npy").unlink()
    with pytest.raises(InputError) as e:
        open_cache(cache_copy)
    assert "damaged" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError):
        PreparedCase(tmp_path)
    (cache_copy / "cache.json").write_text("[", encoding="utf-8")
    with pytest.raises(InputError):
        open_cache(cache_copy)


_FORK_AFTER_TORCH = r"""
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from medseg3d.cache import prepare_dataset
from medseg3d.preprocess import PrepConfig

root = Path(sys.argv[1])
rng = np.random.default_rng(0)
for cid in ("a", "b"):  # one channel, large enough for torch to resample with several OpenMP threads
    (root / "ds" / cid).mkdir(parents=True)
    nib.save(nib.Nifti1Image(rng.integers(1, 100, (160, 160, 120)).astype(np.int16), np.eye(4)),
             str(root / "ds" / cid / f"{cid}_flair.nii.gz"))
torch.set_num_threads(2)
F.interpolate(torch.rand(1, 4, 96, 96, 96), size=(48, 48, 48), mode="trilinear")  # OpenMP runs in the parent
summary = prepare_dataset(root / "ds", root / "out", PrepConfig(downsample=2), modalities="flair", workers=2,
                          progress=False)
assert sorted(summary["prepared"]) == ["a", "b"], summary
print("ok")
"""


def test_worker_processes_do_not_deadlock_after_torch_ran_in_parent(tmp_path):
    """Workers forked from a process that has run torch's OpenMP threads hang in their first resampling;
    prepare must start its workers so that this cannot happen (it spawns them)."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", _FORK_AFTER_TORCH, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the hung workers too, not only their parent
        proc.communicate()
        pytest.fail("prepare_dataset with worker processes hung after torch ran in the parent")
    assert proc.returncode == 0 and "ok" in stdout, stderr[-2000:]


def _synthetic_case(root: Path, name: str, seed: int = 0) -> None:
    """A small valid case (30 x 28 x 26 voxels, a tumour block) named ``name`` in ``root``."""
    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for m in ("flair", "t1", "t1ce", "t2"):
        a = np.zeros((30, 28, 26), np.int16)
        a[4:26, 3:25, 2:24] = rng.integers(1, 400, (22, 22, 22))
        nib.save(nib.Nifti1Image(a, np.eye(4)), str(folder / f"{name}_{m}.nii.gz"))
    lab = np.zeros((30, 28, 26), np.uint8)
    lab[8:20, 9:21, 8:20] = 2
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(folder / f"{name}_seg.nii.gz"))


def test_a_failed_case_leaves_no_folder(tmp_path):
    _synthetic_case(tmp_path / "ds", "s1")
    _bad_label_case(tmp_path / "ds")
    summary = prepare_dataset(tmp_path / "ds", tmp_path / "out", workers=1, progress=False)
    assert summary["prepared"] == ["s1"] and list(summary["failed"]) == ["zz_bad"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cache.json", "s1"]


def test_a_full_disk_leaves_no_truncated_file_and_no_case_folder(tmp_path, monkeypatch):
    import errno

    import medseg3d.cache as cache_module

    _synthetic_case(tmp_path / "ds", "s1")
    _synthetic_case(tmp_path / "ds", "s2", seed=1)
    real_save = np.save
    calls = []

    def save_until_full(path, array):
        calls.append(path)
        if len(calls) == 3:  # s2's image: half written, then the disk is full
            Path(path).write_bytes(b"\x93NUMPY" + b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(path, array)

    monkeypatch.setattr(cache_module.np, "save", save_until_full)
    summary = prepare_dataset(tmp_path / "ds", tmp_path / "out", workers=1, progress=False)
    assert summary["prepared"] == ["s1"] and "No space left on device" in summary["failed"]["s2"]
    files = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*"))
    assert files == ["cache.json", "s1", "s1/image.npy", "s1/label.npy", "s1/record.json"]
    monkeypatch.setattr(cache_module.np, "save", real_save)  # space again: the next prepare completes it
    summary = prepare_dataset(tmp_path / "ds", tmp_path / "out", workers=1, progress=False)
    assert summary["prepared"] == ["s2"] and summary["skipped"] == ["s1"]
    assert sorted(open_cache(tmp_path / "out")[1]) == ["s1", "s2"]


def test_a_cache_record_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    import errno

    _synthetic_case(tmp_path / "ds", "s1")
    real_write = Path.write_text

    def full(self, *args, **kwargs):
        if self.name.startswith(".cache.json.") and self.name.endswith(".tmp"):
            real_write(self, "{")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(InputError, match="cannot write the cache [(]No space left on device[)]; free space"):
        prepare_dataset(tmp_path / "ds", tmp_path / "out", workers=1, progress=False)
    assert list((tmp_path / "out").iterdir()) == []
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="cannot make the cache folder"):
        prepare_dataset(tmp_path / "ds", tmp_path / "file" / "cache", workers=1, progress=False)


def test_nnunet_numbered_labels_read_as_brats_are_refused_not_merged(brats_root, tmp_path):
    """nnU-Net's BraTS numbering (1 edema, 2 NCR/NET, 3 enhancing) under --labels brats would merge the
    enhancing tumour into the necrosis without a word; BRATS 2015 maps (3 = non-enhancing) still merge."""
    import numpy as np

    from medseg3d.cache import prepare_case
    from medseg3d.datasets import find_cases
    from medseg3d.errors import InputError
    from medseg3d.io import read_volume, write_volume
    from medseg3d.labels import get_scheme
    from medseg3d.preprocess import PrepConfig

    case = next(c for c in find_cases(brats_root) if c.case_id == "Brats18_2013_2_1")
    seg = read_volume(case.label)
    nnunet = np.select([seg.array == 2, seg.array == 1, seg.array == 4], [1, 2, 3], 0).astype(np.uint8)
    path = write_volume(seg.with_array(nnunet), tmp_path / "seg_nnunet.nii.gz")
    relabelled = type(case)(case.case_id, case.channels, path, case.meta)
    config = PrepConfig(downsample=4.0)
    with pytest.raises(InputError, match="nnunet-brats"):
        prepare_case(relabelled, tmp_path / "cache", config, get_scheme("brats"), {})
    assert not (tmp_path / "cache" / case.case_id).exists()


def test_a_cache_where_every_case_fails_leaves_no_folder_behind(brats_root, tmp_path):
    import numpy as np

    from medseg3d.cache import prepare_dataset
    from medseg3d.errors import InputError
    from medseg3d.io import read_volume, write_volume

    cid = "Brats18_2013_2_1"
    case = tmp_path / "data" / cid
    case.mkdir(parents=True)
    for m in ("flair", "t1", "t1ce", "t2"):
        (case / f"{cid}_{m}.nii.gz").symlink_to(brats_root / cid / f"{cid}_{m}.nii.gz")
    seg = read_volume(brats_root / cid / f"{cid}_seg.nii.gz")
    write_volume(seg.with_array(np.where(seg.array > 0, 7, 0).astype(np.uint8)), case / f"{cid}_seg.nii.gz")
    with pytest.raises(InputError, match="every case failed"):
        prepare_dataset(tmp_path / "data", tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists()


def _loop(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.name + ".loop")
    path.with_name(path.name + ".loop").symlink_to(path.name)


def test_train_refusing_a_bad_case_leaves_no_cache_and_no_run_folder(tmp_path):
    """Issue 36 item 3: the other cases' arrays were left in the cache when train stopped on a bad one; a
    modality that is a symbolic link loop dropped its case without a word."""
    from medseg3d.train import TrainConfig, train

    for k in range(3):
        _synthetic_case(tmp_path / "ds", f"s{k}", k)
    _loop(tmp_path / "ds" / "s2" / "s2_flair.nii.gz")
    cfg = TrainConfig(
        dataset=str(tmp_path / "ds"),
        out=str(tmp_path / "run"),
        cache=str(tmp_path / "cache"),
        epochs=1,
        iters_per_epoch=1,
        all_cases=True,
        progress=False,
    )
    with pytest.raises(InputError) as e:
        train(cfg)
    assert "s2" in str(e.value) and "symbolic link loop" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()
    # a cache an earlier run made keeps what that run prepared
    (tmp_path / "ds" / "s2" / "s2_flair.nii.gz").unlink()
    _synthetic_case(tmp_path / "other", "s2", 2)
    shutil.copyfile(tmp_path / "other" / "s2" / "s2_flair.nii.gz", tmp_path / "ds" / "s2" / "s2_flair.nii.gz")
    summary = prepare_dataset(tmp_path / "ds", tmp_path / "cache", workers=1, progress=False)
    assert sorted(summary["prepared"]) == ["s0", "s1", "s2"]
    _synthetic_case(tmp_path / "ds", "s3", 3)
    _loop(tmp_path / "ds" / "s3" / "s3_t2.nii.gz")
    with pytest.raises(InputError, match="s3"):
        train(cfg)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["cache.json", "s0", "s1", "s2"]


def test_a_symbolic_link_loop_is_listed_and_refused_not_dropped(tmp_path):
    for k in range(2):
        _synthetic_case(tmp_path / "ds", f"s{k}", k)
    _loop(tmp_path / "ds" / "s1" / "s1_t1ce.nii.gz")
    cases = find_cases(tmp_path / "ds")
    assert [c.case_id for c in cases] == ["s0", "s1"]
    with pytest.raises(InputError, match="symbolic link loop"):
        cases[1].load()


def test_a_case_whose_names_its_content_contradicts_is_not_cached(brats_root, tmp_path):
    """T1 and T1ce files swapped in one case: training on it would learn the wrong contrast."""
    good, bad = CASES
    ds = tmp_path / "ds"
    (ds / bad).mkdir(parents=True)
    (ds / good).symlink_to(brats_root / good, target_is_directory=True)
    for given, real in {"flair": "flair", "t1": "t1ce", "t1ce": "t1", "t2": "t2", "seg": "seg"}.items():
        (ds / bad / f"{bad}_{given}.nii.gz").symlink_to(brats_root / bad / f"{bad}_{real}.nii.gz")
    summary = prepare_dataset(ds, tmp_path / "out", workers=1, progress=False)
    assert summary["prepared"] == [good] and list(summary["failed"]) == [bad]
    assert "look like flair, t1ce, t1, t2" in summary["failed"][bad]


def test_a_pipe_or_a_folder_where_a_channel_file_belongs_refuses_its_case_not_drops_it(tmp_path):
    """Fuzz findings: a named pipe or a folder named like a channel file dropped its channel, and training
    went on without it."""
    for k in range(2):
        _synthetic_case(tmp_path / "ds", f"s{k}", k)
    (tmp_path / "ds" / "s0" / "s0_t2.nii.gz").unlink()
    os.mkfifo(tmp_path / "ds" / "s0" / "s0_t2.nii.gz")
    (tmp_path / "ds" / "s1" / "s1_t1ce.nii.gz").unlink()
    (tmp_path / "ds" / "s1" / "s1_t1ce.nii.gz").mkdir()
    cases = find_cases(tmp_path / "ds")
    assert [list(c.channels) for c in cases] == [["flair", "t1", "t1ce", "t2"]] * 2
    with pytest.raises(InputError, match="not a regular file"):
        cases[0].load()
    with pytest.raises(InputError):
        cases[1].load()
