"""Seeded fuzz run: corrupt one real shared case in many ways and classify what every command does with it.

From one shared BraTS 2018 case (cut to 80 x 80 x 64 voxels around its tumour, so that the bundled model
predicts it in seconds), each input is a one-case dataset in which one thing is broken: truncated and
bit-flipped files, corrupt gzip streams, wrong data types, NaN/Inf, absurd values, grids that differ, unknown
labels, a gzip bomb, odd folder names, symbolic link loops, folders where files belong, empty files, 2D/5D
images, zero voxel sizes, label numberings from other pipelines... Every input is given to ``medseg3d info``
(always) and to one of ``predict`` (``--whole-volume``), ``prepare``, ``train`` (the quick preset, one
iteration) and ``evaluate`` in turn, each as a subprocess with a memory cap, and each outcome is classified:

* ``refused``: exit status != 0, one line of error (``medseg3d: error: ...`` or prepare's ``failed CASE:
  ...``), no traceback, nothing left in the output folder;
* ``warned``: exit 0 with a warning or note printed;
* ``silent``: exit 0 without a word;
* ``wrong``: ``predict`` exit 0, but its whole tumour overlaps that of the unbroken case's prediction with a
  Dice below ``AGREEMENT`` (a result a batch would trust and should not); an output on another grid is not
  compared;
* ``traceback``: a Python traceback (or an exit != 0 without one clear line: ``unclear``);
* ``leftover``: output left behind by a refused command, or temporary files after any command;
* ``memory``: peak memory over ``--mem-report`` (default 2 GiB), a MemoryError, or killed;
* ``timeout``: still running after ``--timeout`` seconds.

It also flags ``info`` saying "problems: none" for an input that another command refused.

Undetectable by design (accepted silently, and that is the right answer or the best one can do):
``data_flip_nii`` (a bit flip in the voxels of an uncompressed .nii: nothing records what the voxels were),
most of ``header_flip`` (a flipped bit in a header field nobody checks, e.g. a description or an intent
code; flips that change the grid, type or voxel size are refused), ``negative_values`` (legal data: must be
accepted), and gzip flips in the 8-byte trailer's length field that happen to match (none in practice).
Everything in a compressed file is covered by the CRC-32 and is detected.

    python validation/fuzz.py --jobs 2              # 404 inputs, ~36 min here; Markdown to stdout and /tmp
    python validation/fuzz.py --per-category 2 --categories gzip_flip,rgb24 --jobs 2
    python validation/fuzz.py --in-process           # no subprocesses: fast, no memory figures (tests)

The report goes to ``--out`` (default ``/tmp/medseg3d-fuzz/report.md``); inputs are built under ``--work``
(default a temporary folder, removed unless ``--keep``).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:  # this checkout's medseg3d, in-process as in the subprocesses
    sys.path.insert(0, str(REPO / "src"))
if str(REPO / "tests") not in sys.path:  # the tests' writers of real-looking inputs (DICOM series)
    sys.path.insert(0, str(REPO / "tests"))
CASE = "Brats18_2013_2_1"
MODALITIES = ("flair", "t1", "t1ce", "t2")
OUTCOMES = (
    "refused",
    "review",
    "warned",
    "silent",
    "wrong",
    "traceback",
    "unclear",
    "leftover",
    "memory",
    "timeout",
)
# predict's whole tumour against the unbroken case's (same command, same model): below this Dice an exit 0
# is "wrong" (a result the batch trusts and should not). Channels read in the wrong order gave 0.54 against
# the right order's 0.93 on a shared case (issue 36); a legal change of the file should leave it near 1.
AGREEMENT = 0.8
HEAVY = ("predict", "prepare", "train", "evaluate")


def data_root() -> Path:
    env = os.environ.get("MEDSEG3D_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


# ------------------------------------------------------------------------------------------ the base case


def make_base(dest: Path, source: Path | None = None) -> Path:
    """The shared case cut to 80 x 80 x 64 voxels around its tumour: ``dest/fz/fz_<m>.nii.gz``."""
    from medseg3d.io import Volume, read_volume, write_volume

    source = source or data_root() / "brats2018" / CASE
    seg = read_volume(source / f"{CASE}_seg.nii.gz")
    nz = np.argwhere(seg.array)
    centre = (nz.min(0) + nz.max(0)) // 2
    lo = np.clip(centre - [40, 40, 32], 0, np.array(seg.shape) - [80, 80, 64])
    box = tuple(slice(int(a), int(a) + n) for a, n in zip(lo, (80, 80, 64)))
    case = dest / "fz"
    case.mkdir(parents=True, exist_ok=True)
    for m in (*MODALITIES, "seg"):
        vol = read_volume(source / f"{CASE}_{m}.nii.gz")
        affine = vol.affine.copy()
        affine[:3, 3] = vol.affine[:3, :3] @ lo + vol.affine[:3, 3]
        write_volume(Volume(np.ascontiguousarray(vol.array[box]), affine, vol.meta), case / f"fz_{m}.nii.gz")
    return case


RAW_CASE = "TCGA-FG-6692"


def make_raw_base(dest: Path, source: Path | None = None) -> Path:
    """The raw clinical case as the hospital exported it (skull on, 5.5 mm slices, each sequence on its own
    grid), every other voxel in-plane (1.8 mm, ~128 x 112 x 26) so that its run through the raw pipeline
    takes a minute, not three: ``dest/raw/fz_<m>.nii.gz``, int16, no label."""
    from medseg3d.io import Volume, read_volume, write_volume

    source = source or data_root() / "raw_clinical" / RAW_CASE / "raw"
    case = dest / "raw"
    case.mkdir(parents=True, exist_ok=True)
    for m in MODALITIES:
        vol = read_volume(source / f"{m}.nii.gz")
        affine = vol.affine.copy()
        affine[:3, :2] *= 2  # every other voxel along the two in-plane axes, same corner
        array = np.ascontiguousarray(vol.array[::2, ::2, :].astype(np.int16))
        write_volume(Volume(array, affine, vol.meta), case / f"fz_{m}.nii.gz")
    return case


# -------------------------------------------------------------------------------------------- the inputs


@dataclass
class Input:
    category: str
    index: int
    root: Path  # holds data/<case>/..., pred/<case>.nii.gz
    case: str = "fz"
    commands: tuple[str, ...] = ()
    detail: str = ""
    target: str = ""  # the file broken: a modality, "seg", "pred" or "" (the folder)

    @property
    def name(self) -> str:
        return f"{self.category}-{self.index:02d}"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def case_dir(self) -> Path:
        return self.data / self.case

    def file(self, m: str) -> Path:
        return self.case_dir / f"{self.case}_{m}.nii.gz"


def _copy_case(base: Path, inp: Input) -> None:
    inp.case_dir.mkdir(parents=True)
    (inp.root / "pred").mkdir()
    for m in (*MODALITIES, "seg"):
        if (base / f"fz_{m}.nii.gz").exists():  # the raw clinical case has no label
            shutil.copyfile(base / f"fz_{m}.nii.gz", inp.case_dir / f"{inp.case}_{m}.nii.gz")
    if (base / "fz_seg.nii.gz").exists():
        shutil.copyfile(base / "fz_seg.nii.gz", inp.root / "pred" / f"{inp.case}.nii.gz")


def _nib():
    import nibabel as nib

    return nib


def _save(path: Path, array: np.ndarray, like: Path | None = None, affine=None) -> None:
    nib = _nib()
    ref = nib.load(str(like)) if like is not None else None
    aff = affine if affine is not None else (ref.affine if ref is not None else np.eye(4))
    img = (
        nib.Nifti1Image(array, aff, dtype=array.dtype)
        if array.dtype.fields is None
        else nib.Nifti1Image(array, aff)
    )
    nib.save(img, str(path))


def _load(path: Path) -> np.ndarray:
    return np.asanyarray(_nib().load(str(path)).dataobj)


def _flip_bit(data: bytes, pos: int, bit: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 1 << bit
    return bytes(out)


def _pick_modality(rng: random.Random) -> str:
    return rng.choice((*MODALITIES, "seg"))


# Each builder breaks one thing in a fresh copy of the base case and says what it did.


def b_truncated_gz(rng, inp):
    m = _pick_modality(rng)
    data = inp.file(m).read_bytes()
    keep = rng.randint(1, len(data) - 1)
    inp.file(m).write_bytes(data[:keep])
    return f"{m} cut to {keep} of {len(data)} bytes"


def b_truncated_nii(rng, inp):
    m = _pick_modality(rng)
    raw = gzip.decompress(inp.file(m).read_bytes())
    keep = rng.randint(1, len(raw) - 1)
    inp.file(m).unlink()
    (inp.case_dir / f"{inp.case}_{m}.nii").write_bytes(raw[:keep])
    return f"{m} as .nii cut to {keep} of {len(raw)} bytes"


def b_gzip_flip(rng, inp):
    m = _pick_modality(rng)
    data = inp.file(m).read_bytes()
    pos = rng.randint(20, len(data) - 9)
    inp.file(m).write_bytes(_flip_bit(data, pos, rng.randrange(8)))
    return f"{m}: bit flipped in the deflate stream at byte {pos}"


def b_gzip_trailer(rng, inp):
    m = _pick_modality(rng)
    data = inp.file(m).read_bytes()
    pos = len(data) - rng.randint(1, 8)
    inp.file(m).write_bytes(_flip_bit(data, pos, rng.randrange(8)))
    return f"{m}: bit flipped in the gzip CRC/length trailer at byte {pos}"


def b_header_flip(rng, inp):
    m = _pick_modality(rng)
    raw = bytearray(gzip.decompress(inp.file(m).read_bytes()))
    pos = rng.randrange(348)
    raw[pos] ^= 1 << rng.randrange(8)
    inp.file(m).write_bytes(gzip.compress(bytes(raw)))
    return f"{m}: bit flipped in the NIfTI header at byte {pos} (recompressed)"


def b_data_flip_nii(rng, inp):
    m = rng.choice(MODALITIES)
    raw = bytearray(gzip.decompress(inp.file(m).read_bytes()))
    pos = rng.randrange(352, len(raw))
    raw[pos] ^= 1 << rng.randrange(8)
    inp.file(m).unlink()
    (inp.case_dir / f"{inp.case}_{m}.nii").write_bytes(bytes(raw))
    return f"{m} as .nii: bit flipped in the voxels at byte {pos} (undetectable)"


def b_rgb24(rng, inp):
    m = rng.choice(MODALITIES)
    a = _load(inp.file(m))
    rgb = np.zeros(a.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"] = np.clip(a // 8, 0, 255)
    _save(inp.file(m), rgb, like=inp.file(m))
    return f"{m} saved as RGB24"


def b_complex(rng, inp):
    m = rng.choice(MODALITIES)
    _save(inp.file(m), _load(inp.file(m)).astype(np.complex64), like=inp.file(m))
    return f"{m} saved as complex64"


def b_wrong_dtype(rng, inp):
    m = _pick_modality(rng)
    kind = rng.choice(("int8", "uint8", "float64", "int64", "uint16", "float16"))
    a = _load(inp.file(m))
    conv = a.astype(np.float32).astype(kind) if kind == "float16" else a.astype(kind)  # int8 wraps round
    if kind == "float16":
        conv = conv.astype(np.float32)
    _save(inp.file(m), conv, like=inp.file(m))
    return f"{m} cast to {kind} (integer casts wrap around)"


def b_nan_inf(rng, inp):
    m = rng.choice(MODALITIES)
    a = _load(inp.file(m)).astype(np.float32)
    n = rng.choice((1, 10, 1000))
    idx = tuple(np.random.default_rng(rng.randrange(2**31)).integers(0, s, n) for s in a.shape)
    a[idx] = rng.choice((np.nan, np.inf, -np.inf))
    _save(inp.file(m), a, like=inp.file(m))
    return f"{m}: {n} voxels NaN/Inf"


def b_huge_values(rng, inp):
    m = rng.choice(MODALITIES)
    a = _load(inp.file(m)).astype(np.float32)
    k = rng.randrange(a.shape[2] - 10)
    a[:, :, k : k + 10] = rng.choice((3e38, 1e20, -1e15))
    _save(inp.file(m), a, like=inp.file(m))
    return f"{m}: 10 slices at an absurd value"


def b_negative_values(rng, inp):
    m = rng.choice(MODALITIES)
    a = _load(inp.file(m)).astype(np.int16)
    shift = rng.choice((-1000, -5000, -30000))
    _save(inp.file(m), np.where(a != 0, a + shift // 10, shift).astype(np.int16), like=inp.file(m))
    return f"{m}: shifted to negative values (legal)"


def b_grid_mismatch(rng, inp):
    m = rng.choice((*MODALITIES, "seg"))
    nib = _nib()
    img = nib.load(str(inp.file(m)))
    a = np.asanyarray(img.dataobj)
    how = rng.choice(("origin", "spacing", "shape", "flip"))
    aff = img.affine.copy()
    if how == "origin":
        aff[:3, 3] += rng.choice((1.0, 0.5, 10.0))
    elif how == "spacing":
        aff[:3, :3] *= 2.0
    elif how == "shape":
        a = a[:-3]
    else:
        aff[:, 0] *= -1
    _save(inp.file(m), np.ascontiguousarray(a), affine=aff)
    return f"{m}: other grid ({how})"


def b_zero_spacing(rng, inp):
    m = _pick_modality(rng)
    nib = _nib()
    img = nib.load(str(inp.file(m)))
    hdr = img.header.copy()
    a = np.asanyarray(img.dataobj)
    axis = rng.randrange(3)
    raw = bytearray(hdr.binaryblock)
    new = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(raw)), check=False)
    new["pixdim"][1 + axis] = 0.0
    if rng.random() < 0.5:
        new["sform_code"] = 0
        new["qform_code"] = rng.choice((0, 1))
    else:
        new["srow_x"][axis] = 0.0
        new["srow_y"][axis] = 0.0
        new["srow_z"][axis] = 0.0
    payload = (
        new.binaryblock + b"\0" * (int(new["vox_offset"]) - 348) + np.asfortranarray(a).tobytes(order="F")
    )
    inp.file(m).write_bytes(gzip.compress(payload))
    return f"{m}: voxel size {axis} set to 0"


def b_unknown_labels(rng, inp):
    a = _load(inp.file("seg")).astype(np.int16)
    v = rng.choice((3, 5, 7, 255, 300, -1))
    a[tuple(np.random.default_rng(rng.randrange(2**31)).integers(0, s, 20) for s in a.shape)] = v
    target = rng.choice(("seg", "pred"))
    path = inp.file("seg") if target == "seg" else inp.root / "pred" / f"{inp.case}.nii.gz"
    _save(path, a, like=inp.file("seg"))
    return f"{target}: 20 voxels of label {v}"


def b_label_numbering(rng, inp):
    a = _load(inp.file("seg"))
    how = rng.choice(("nnunet", "brats2012", "float"))
    out = np.zeros_like(a)
    if how == "nnunet":
        out[a == 2], out[a == 1], out[a == 4] = 1, 2, 3
    elif how == "brats2012":
        out[a == 2], out[np.isin(a, (1, 4))] = 1, 2
    else:
        out = a.astype(np.float32) + (0.5 if rng.random() < 0.5 else 0.0)
    _save(inp.file("seg"), out, like=inp.file("seg"))
    return f"seg relabelled ({how})"


_BOMB: dict[str, bytes] = {}
_BOMB_LOCK = threading.Lock()


def _bomb_bytes(shape=(1400, 1400, 1400)) -> bytes:
    """A gzip of a NIfTI header for ``shape`` uint8 followed by all its zero voxels (a few MB)."""
    with _BOMB_LOCK:
        if "bomb" not in _BOMB:
            nib = _nib()
            hdr = nib.Nifti1Header()
            hdr.set_data_shape(shape)
            hdr.set_data_dtype(np.uint8)
            buf = io.BytesIO()
            with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as fh:
                fh.write(hdr.binaryblock + b"\0" * 4)
                zeros = b"\0" * 2**26
                left = int(np.prod(shape))
                while left:
                    n = min(left, len(zeros))
                    fh.write(zeros[:n])
                    left -= n
            _BOMB["bomb"] = buf.getvalue()
        return _BOMB["bomb"]


def b_gzip_bomb(rng, inp):
    m = _pick_modality(rng)
    inp.file(m).write_bytes(_bomb_bytes())
    return f"{m}: 5 MB gzip inflating to 1400^3 voxels"


def b_huge_header(rng, inp):
    m = _pick_modality(rng)
    nib = _nib()
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(rng.choice(((2048, 1024, 1024), (32767, 32767, 4), (4096, 4096, 512))))
    hdr.set_data_dtype(rng.choice((np.int16, np.float32, np.uint8)))
    inp.file(m).unlink()
    (inp.case_dir / f"{inp.case}_{m}.nii").write_bytes(hdr.binaryblock + b"\0" * 4 + os.urandom(50_000))
    return f"{m}: 50 kB .nii whose header claims {hdr.get_data_shape()}"


def b_odd_names(rng, inp):
    new = rng.choice(
        ("fz case", "fzé ünïcode", "-fz", "fz;rm", "fz'quote", "fz" + "x" * 180, "fz%s%n", "fz\tTab")
    )
    old = inp.case_dir
    target = inp.data / new
    old.rename(target)
    for f in sorted(target.iterdir()):
        f.rename(target / f.name.replace("fz_", f"{new}_", 1))
    (inp.root / "pred" / "fz.nii.gz").rename(inp.root / "pred" / f"{new}.nii.gz")
    inp.case = new
    return f"case folder named {new!r}"


def b_symlink_loop(rng, inp):
    m = _pick_modality(rng)
    f = inp.file(m)
    f.unlink()
    other = f.with_name(f.name + ".loop")
    f.symlink_to(other.name)
    other.symlink_to(f.name)
    return f"{m}: a symbolic link loop"


def b_dir_for_file(rng, inp):
    m = _pick_modality(rng)
    inp.file(m).unlink()
    inp.file(m).mkdir()
    if rng.random() < 0.5:
        (inp.file(m) / "inner.nii.gz").write_bytes(b"x")
    return f"{m}: a folder where the file belongs"


def b_empty_file(rng, inp):
    m = _pick_modality(rng)
    inp.file(m).write_bytes(b"" if rng.random() < 0.7 else gzip.compress(b""))
    return f"{m}: empty file"


def b_dims(rng, inp):
    m = _pick_modality(rng)
    a = _load(inp.file(m))
    how = rng.choice(("2d", "5d", "4d2", "1d"))
    if how == "2d":
        b = np.ascontiguousarray(a[:, :, a.shape[2] // 2])
    elif how == "5d":
        b = np.stack([np.stack([a, a], -1)] * 2, -1)
    elif how == "4d2":
        b = np.stack([a, a], -1)
    else:
        b = a.ravel()[:1000].copy()
    _save(inp.file(m), b, like=inp.file(m))
    return f"{m}: {how} image {b.shape}"


def b_constant(rng, inp):
    m = rng.choice(MODALITIES)
    a = _load(inp.file(m))
    _save(inp.file(m), np.full_like(a, rng.choice((0, 1, 500))), like=inp.file(m))
    return f"{m}: constant image"


def b_not_nifti(rng, inp):
    m = _pick_modality(rng)
    what = rng.choice(("random", "text", "gzip-text", "png"))
    payload = {
        "random": os.urandom(3000),
        "text": b"hello\n" * 100,
        "gzip-text": gzip.compress(b"hello\n" * 100),
        "png": b"\x89PNG\r\n\x1a\n" + os.urandom(500),
    }[what]
    inp.file(m).write_bytes(payload)
    return f"{m}: {what} bytes named .nii.gz"


def b_duplicate_modality(rng, inp):
    m = rng.choice(MODALITIES)
    noise = (
        np.random.default_rng(rng.randrange(2**31))
        .integers(0, 1000, _load(inp.file(m)).shape)
        .astype(np.int16)
    )
    _save(inp.case_dir / f"x_{m}.nii.gz", noise, like=inp.file(m))
    return f"second {m} file x_{m}.nii.gz (noise) beside the case's"


def b_missing(rng, inp):
    m = _pick_modality(rng)
    inp.file(m).unlink()
    return f"{m} missing"


def b_fifo(rng, inp):
    m = _pick_modality(rng)
    inp.file(m).unlink()
    os.mkfifo(inp.file(m))
    return f"{m}: a named pipe"


# What a hospital export brings: the four sequences as DICOM series sub-folders (named by sequence), with one
# thing a PACS export does to them.


def _dicom_series(
    nifti: Path, folder: Path, description: str, number: int, slices=None, start: int = 1
) -> None:
    """``nifti`` as a DICOM series in ``folder`` as a scanner writes it (tests/layouts.py), int16."""
    from layouts import write_dicom_series

    from medseg3d.io import read_volume

    vol = read_volume(nifti)
    write_dicom_series(
        vol.with_array(vol.array.astype(np.int16)), folder, description, number, slices=slices, start=start
    )


def _as_dicom(inp, skip: str | None = None) -> None:
    """The case's four channel files replaced by DICOM series folders named after the sequences (the label
    stays a NIfTI file); ``skip``: leave that sequence to the caller."""
    for n, m in enumerate(MODALITIES, start=1):
        if m != skip:
            _dicom_series(inp.file(m), inp.case_dir / f"{m.upper()}_series", f"AX {m.upper()}", n)
    keep = inp.file(skip) if skip else None
    for m in MODALITIES:
        if inp.file(m) != keep:
            inp.file(m).unlink()


def b_dicom_missing_slices(rng, inp):
    m = rng.choice(MODALITIES)
    depth = int(_nib().load(str(inp.file(m))).shape[2])
    gone = sorted(rng.sample(range(5, depth - 5), rng.randint(1, 3)))
    _dicom_series(
        inp.file(m),
        inp.case_dir / f"{m.upper()}_series",
        f"AX {m.upper()}",
        9,
        slices=[k for k in range(depth) if k not in gone],
    )
    _as_dicom(inp, skip=m)
    inp.file(m).unlink()
    return f"{m}: DICOM series without slice(s) {', '.join(map(str, gone))} of {depth}"


def b_dicom_mixed_series(rng, inp):
    m, other = rng.sample(list(MODALITIES), 2)
    _scratch_copy(inp, other)
    _as_dicom(inp)
    folder = inp.case_dir / f"{m.upper()}_series"
    written = len(list(folder.iterdir()))
    # a second series (another UID) exported into the same folder, as some PACS exports do
    _dicom_series(_scratch_copy(inp, other), folder, f"AX {other.upper()}", 20, start=written + 1)
    return f"{m}: its DICOM folder also holds the {other} series"


def _scratch_copy(inp, m: str) -> Path:
    """A NIfTI of modality ``m`` of the base case, outside the case folder (the case's own may be gone)."""
    path = inp.root / f"scratch_{m}.nii.gz"
    if not path.exists():
        shutil.copyfile(
            inp.file(m) if inp.file(m).exists() else inp.root.parent / "base" / f"fz_{m}.nii.gz", path
        )
    return path


def b_dicom_localiser(rng, inp):
    m = rng.choice(MODALITIES)
    _scratch_copy(inp, m)
    _as_dicom(inp)
    depth = int(_nib().load(str(_scratch_copy(inp, m))).shape[2])
    _dicom_series(
        _scratch_copy(inp, m),
        inp.case_dir / "LOCALIZER",
        "localizer 3-plane",
        30,
        slices=[depth // 4, depth // 2, 3 * depth // 4],
    )
    return "a 3-slice localiser series beside the four DICOM series"


def b_derived_series(rng, inp):
    m = rng.choice(MODALITIES)
    what = rng.choice(("ep2d_diff ADC", "PERFUSION rCBV", "DWI TRACEW"))
    _scratch_copy(inp, m)
    _as_dicom(inp)
    _dicom_series(_scratch_copy(inp, m), inp.case_dir / what.replace(" ", "_"), what, 40)
    return f"a derived series '{what}' beside the four DICOM series"


def b_pred_grid(rng, inp):
    path = inp.root / "pred" / f"{inp.case}.nii.gz"
    nib = _nib()
    img = nib.load(str(path))
    aff = img.affine.copy()
    how = rng.choice(("origin", "spacing"))
    if how == "origin":
        aff[rng.randrange(3), 3] += 1.0
    else:
        aff[:3, :3] *= 2.0
    _save(path, np.asanyarray(img.dataobj), affine=aff)
    return f"prediction moved ({how})"


# name -> (builder, commands besides info, expected: refuse / accept / either)
IMAGE = ("predict", "prepare", "train")
ALL = ("predict", "prepare", "train", "evaluate")
LABEL = ("prepare", "train", "evaluate")
CATEGORIES = {
    "truncated_gz": (b_truncated_gz, ALL, "refuse"),
    "truncated_nii": (b_truncated_nii, ALL, "refuse"),
    "gzip_flip": (b_gzip_flip, ALL, "refuse"),
    "gzip_trailer": (b_gzip_trailer, ALL, "refuse"),
    "header_flip": (b_header_flip, ALL, "either"),
    "data_flip_nii": (b_data_flip_nii, IMAGE, "either"),
    "rgb24": (b_rgb24, IMAGE, "refuse"),
    "complex": (b_complex, IMAGE, "refuse"),
    "wrong_dtype": (b_wrong_dtype, ALL, "either"),
    "nan_inf": (b_nan_inf, IMAGE, "refuse"),
    "huge_values": (b_huge_values, IMAGE, "refuse"),
    "negative_values": (b_negative_values, IMAGE, "accept"),
    "grid_mismatch": (b_grid_mismatch, ALL, "refuse"),
    "zero_spacing": (b_zero_spacing, ALL, "refuse"),
    "unknown_labels": (b_unknown_labels, LABEL, "either"),
    "label_numbering": (b_label_numbering, LABEL, "either"),
    "gzip_bomb": (b_gzip_bomb, ALL, "refuse"),
    "huge_header": (b_huge_header, ALL, "refuse"),
    "odd_names": (b_odd_names, ALL, "accept"),
    "symlink_loop": (b_symlink_loop, ALL, "refuse"),
    "dir_for_file": (b_dir_for_file, ALL, "refuse"),
    "empty_file": (b_empty_file, ALL, "refuse"),
    "dims": (b_dims, ALL, "refuse"),
    "constant": (b_constant, IMAGE, "refuse"),
    "not_nifti": (b_not_nifti, ALL, "refuse"),
    "duplicate_modality": (b_duplicate_modality, IMAGE, "refuse"),
    "missing": (b_missing, ALL, "refuse"),
    "fifo": (b_fifo, ALL, "refuse"),
    "pred_grid": (b_pred_grid, ("evaluate",), "refuse"),
    "dicom_missing_slices": (b_dicom_missing_slices, IMAGE, "refuse"),
    "dicom_mixed_series": (b_dicom_mixed_series, IMAGE, "refuse"),
    "dicom_localiser": (b_dicom_localiser, IMAGE, "accept"),
    "derived_series": (b_derived_series, IMAGE, "accept"),
    # the same hospital-export mishaps on the raw clinical case (own grid per sequence, skull on, thick
    # slices), which predict takes through the raw pipeline; no label, so predict alone, and few inputs
    "raw_dicom_missing_slices": (b_dicom_missing_slices, ("predict",), "refuse"),
    "raw_dicom_mixed_series": (b_dicom_mixed_series, ("predict",), "refuse"),
    "raw_dicom_localiser": (b_dicom_localiser, ("predict",), "accept"),
    "raw_derived_series": (b_derived_series, ("predict",), "accept"),
}
# categories built on the raw clinical case (make_raw_base): at most this many inputs each, and a longer
# time limit per command (registration, skull stripping and the template step come before segmenting)
RAW_PER_CATEGORY = 2
RAW_TIMEOUT_FACTOR = 3


def build_inputs(
    work: Path,
    base: Path,
    per_category: int,
    seed: int,
    categories=None,
    only=None,
    raw_base: Path | None = None,
) -> list[Input]:
    """``per_category`` broken copies of the base case per category (of ``raw_base`` for the ``raw_``
    categories, at most ``RAW_PER_CATEGORY``); ``only`` limits the commands besides info."""
    inputs = []
    for name in categories or CATEGORIES:
        builder, commands, _ = CATEGORIES[name]
        if only is not None:  # a tuple of commands, or category -> commands
            allowed = only.get(name, ()) if isinstance(only, dict) else only
            commands = tuple(c for c in commands if c in allowed) or ("info",)
        raw = name.startswith("raw_")
        for k in range(min(per_category, RAW_PER_CATEGORY) if raw else per_category):
            rng = random.Random(f"{seed}-{name}-{k}")
            inp = Input(name, k, work / f"{name}-{k:02d}")
            _copy_case(raw_base if raw else base, inp)
            inp.detail = builder(rng, inp)
            inp.target = next(
                (
                    t
                    for t in (*MODALITIES, "seg", "pred")
                    if inp.detail.startswith(t + " ")
                    or inp.detail.startswith(t + ":")
                    or inp.detail.startswith(f"second {t} ")
                ),
                "",
            )
            if name == "pred_grid":
                inp.target = "pred"
            inp.commands = tuple(dict.fromkeys(("info", commands[k % len(commands)])))
            inputs.append(inp)
    return inputs


# ------------------------------------------------------------------------------------------- the commands


def command_args(inp: Input, command: str, out: Path) -> list[str]:
    case_dir, data = str(inp.case_dir), str(inp.data)
    if command == "info":
        return ["info", case_dir]
    if command == "predict":
        return ["predict", "brats", case_dir, "-o", str(out / "pred.nii.gz"), "--whole-volume", "--quiet"]
    if command == "prepare":
        return ["cache", data, "--out", str(out / "cache")]
    if command == "train":
        return [
            "train",
            data,
            "--out",
            str(out / "run"),
            "--preset",
            "quick",
            "--epochs",
            "1",
            "--iters-per-epoch",
            "1",
            "--all-cases",
            "--quiet",
        ]
    if command == "evaluate":
        return [
            "evaluate",
            str(inp.root / "pred"),
            data,
            "--labels",
            "brats",
            "--csv",
            str(out / "metrics.csv"),
            "--quiet",
        ]
    raise ValueError(command)


@dataclass
class Result:
    inp: Input
    command: str
    outcome: str
    rc: int | None
    seconds: float
    max_rss_mb: float
    message: str
    argv: list[str] = field(default_factory=list)
    agreement: float | None = None  # predict: whole-tumour Dice against the unbroken case's prediction


def _limit_memory(limit_bytes: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
        os.setsid()

    return apply


def run_subprocess(
    argv: list[str], cwd: Path, timeout: float, mem_cap: int
) -> tuple[int | None, str, str, float, float]:
    """(exit status or None on timeout, stdout, stderr, seconds, peak RSS in MB) of one medseg3d command."""
    env = dict(os.environ, PYTHONWARNINGS="default", MEDSEG3D_THREADS="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH", "")]))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "medseg3d.cli", *argv],
            cwd=cwd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_limit_memory(mem_cap),  # noqa: PLW1509 - setrlimit + setsid only
        )
        rc, rss = None, 0.0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(status)
                rss = usage.ru_maxrss / 1024
                proc.returncode = rc
                break
            if time.monotonic() - start > timeout:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = -9
                rss = usage.ru_maxrss / 1024
                break
            time.sleep(0.05)
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return rc, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"), seconds, rss


def run_in_process(argv: list[str], cwd: Path) -> tuple[int | None, str, str, float, float]:
    """The same, calling ``medseg3d.cli.main`` here: an exception other than a clean exit is a traceback."""
    import traceback

    from medseg3d.cli import main

    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - exactly what a user would see as a traceback
                err.write(traceback.format_exc())
                rc = 1
    finally:
        os.chdir(old)
    return rc, out.getvalue(), err.getvalue(), time.monotonic() - start, 0.0


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*")] if folder.exists() else []


def classify(rc, stdout: str, stderr: str, out: Path, rss_mb: float, mem_report_mb: float) -> tuple[str, str]:
    """(outcome, the message shown) of one command."""
    text = stdout + "\n" + stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("medseg3d: error:")]
    failed = [ln.strip() for ln in stdout.splitlines() if ln.strip().startswith("failed ")]
    message = (errors or failed or [ln for ln in stderr.splitlines() if ln.strip()][-1:] or [""])[0][:300]
    tmp_files = [p for p in _files_under(out) if ".tmp" in p.name]
    if rc is None:
        return "timeout", message
    if "MemoryError" in text or rss_mb > mem_report_mb or rc in (-9, 137):
        return "memory", message or f"peak {rss_mb:.0f} MB"
    if "Traceback (most recent call last)" in text:
        tb = [ln for ln in stderr.splitlines() if ln.strip()]
        return "traceback", (tb[-1] if tb else "")[:300]
    if tmp_files:
        return (
            "leftover",
            f"temporary files left: {', '.join(str(p.relative_to(out)) for p in tmp_files[:3])}",
        )
    if rc == 3:  # predict's contract: written, but a quality check fired (warnings on standard error)
        if "warning" in stdout.lower():
            return "unclear", "a warning on standard output"
        warn = [ln for ln in stderr.splitlines() if ln.startswith("warning:")]
        return ("review", warn[0][:300]) if warn else ("unclear", "exit 3 without a warning")
    if rc != 0:
        if len(errors) + len(failed) != 1:
            return "unclear", message
        left = [p for p in _files_under(out) if p.is_file() or (p.is_dir() and not any(p.iterdir()))]
        if left:
            return "leftover", f"{message} | left: {', '.join(str(p.relative_to(out)) for p in left[:3])}"
        return "refused", message
    if "warning" in text.lower() or "note:" in text.lower():
        warn = [ln for ln in text.splitlines() if "warning" in ln.lower() or "note:" in ln.lower()]
        return "warned", warn[0][:300]
    return "silent", ""


def run_one(inp: Input, command: str, args) -> Result:
    out = inp.root / f"out_{command}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    argv = command_args(inp, command, out)
    if args.in_process:
        rc, so, se, secs, rss = run_in_process(argv, inp.root)
    else:
        timeout = args.timeout * (RAW_TIMEOUT_FACTOR if inp.category.startswith("raw_") else 1)
        rc, so, se, secs, rss = run_subprocess(argv, inp.root, timeout, int(args.mem_cap * 2**30))
    outcome, message = classify(rc, so, se, out, rss, args.mem_report * 1024)
    agreement = None
    if (
        command == "predict"
        and rc in (0, 3)
        and outcome not in ("traceback", "unclear", "leftover", "memory")
    ):
        agreement = _agreement(out / "pred.nii.gz", REFERENCES.get(_base_kind(inp)))
        if rc == 0 and agreement is not None and agreement < AGREEMENT:
            outcome, message = (
                "wrong",
                f"exit 0, whole tumour Dice {agreement:.3f} against the unbroken case's",
            )
    if command == "info" and outcome == "silent":
        listed = [ln.strip()[2:] for ln in so.splitlines() if ln.startswith("    - ")]
        if listed:  # info's job is to list problems: listing them is its warning
            outcome, message = "warned", listed[0][:300]
        elif "problems: none" in so:
            message = "problems: none"
    return Result(inp, command, outcome, rc, secs, rss, message, argv, agreement)


# kind of base ("brats" or "raw") -> (whole-tumour mask, affine) of predict on the unbroken case
REFERENCES: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _base_kind(inp: Input) -> str:
    return "raw" if inp.category.startswith("raw_") else "brats"


def _whole_tumour(path: Path):
    import nibabel as nib

    img = nib.load(str(path))
    return np.asanyarray(img.dataobj) > 0, img.affine


def _agreement(pred: Path, reference) -> float | None:
    """Whole-tumour Dice of ``pred`` against the reference; ``None``: no reference, no file, other grid."""
    if reference is None or not pred.is_file():
        return None
    try:
        mask, affine = _whole_tumour(pred)
    except Exception:  # noqa: BLE001 - an unreadable output is classified elsewhere (leftover / traceback)
        return None
    ref, ref_affine = reference
    if mask.shape != ref.shape or not np.allclose(affine, ref_affine, atol=1e-3):
        return None  # written on another grid (a moved channel): not comparable voxel for voxel
    total = int(mask.sum()) + int(ref.sum())
    return 1.0 if total == 0 else 2.0 * int((mask & ref).sum()) / total


def make_references(work: Path, base: Path, raw_base: Path | None, args) -> None:
    """Predict the unbroken cases once (the BraTS crop as files, the raw case as DICOM series, as the raw
    categories give it) into ``REFERENCES``."""
    for kind, source in (("brats", base), ("raw", raw_base)):
        if source is None:
            continue
        inp = Input(f"reference_{kind}", 0, work / f"reference-{kind}")
        _copy_case(source, inp)
        if kind == "raw":
            _as_dicom(inp)
        out = inp.root / "out_predict"
        out.mkdir()
        argv = command_args(inp, "predict", out)
        if args.in_process:
            rc, _, err, _, _ = run_in_process(argv, inp.root)
        else:
            timeout = args.timeout * (RAW_TIMEOUT_FACTOR if kind == "raw" else 1)
            rc, _, err, _, _ = run_subprocess(argv, inp.root, timeout, int(args.mem_cap * 2**30))
        if rc not in (0, 3):
            raise RuntimeError(f"predict on the unbroken {kind} case failed ({rc}): {err[-500:]}")
        REFERENCES[kind] = _whole_tumour(out / "pred.nii.gz")


# ---------------------------------------------------------------------------------------------- reporting


def expected(r: Result) -> str:
    """refuse / accept / either for this input and command: a command that does not read the broken file
    (predict and the label, anything but evaluate and the prediction) should accept it."""
    if r.inp.target == "pred" and r.command != "evaluate":
        return "accept"
    if r.inp.target == "seg" and r.command == "predict":
        return "accept"
    if r.inp.target in MODALITIES and r.command == "evaluate":
        return "accept"
    if r.inp.target == "seg" and r.inp.category == "missing":
        return "either"  # a case without a label: fine to predict or describe, not to train on
    return CATEGORIES[r.inp.category][2]


def report(results: list[Result], seconds: float, seed: int) -> str:
    by_cell: dict[tuple[str, str], Counter] = defaultdict(Counter)
    commands = ["info", *HEAVY]
    for r in results:
        by_cell[(r.inp.category, r.command)][r.outcome] += 1
    short = {
        "refused": "R",
        "review": "V",
        "warned": "W",
        "silent": "S",
        "wrong": "Z",
        "traceback": "T",
        "unclear": "U",
        "leftover": "L",
        "memory": "M",
        "timeout": "X",
    }
    n_inputs = len({r.inp.name for r in results})
    totals = Counter(r.outcome for r in results)
    lines = [
        (
            f"# medseg3d fuzz run: {n_inputs} inputs, {len(_categories_used(results))} categories, "
            f"{len(results)} invocations, seed {seed}, {seconds / 60:.1f} min"
        ),
        "",
        "Outcomes: " + ", ".join(f"{o} {totals[o]}" for o in OUTCOMES),
        "",
        "Exit codes: "
        + ", ".join(
            f"{code}: {n}"
            for code, n in sorted(Counter("timeout" if r.rc is None else str(r.rc) for r in results).items())
        ),
        "",
        (
            "Cells: R refused (one line, nothing left), V written with exit 3 (a quality check fired: "
            "review), W exit 0 with a warning (info: problems listed), S accepted silently, Z exit 0 but the "
            f"whole tumour differs from the unbroken case's (Dice < {AGREEMENT}), T traceback, U exit != 0 "
            "without one clear line (or a warning on standard output), L output left behind, M memory, "
            "X timeout."
        ),
        "",
        _agreement_line(results),
        "",
        "| category | expected | " + " | ".join(commands) + " |",
        "|---|---|" + "---|" * len(commands),
    ]
    for cat in _categories_used(results):
        cells = []
        for c in commands:
            counts = by_cell.get((cat, c))
            cells.append(" ".join(f"{short[o]}{counts[o]}" for o in OUTCOMES if counts and counts[o]) or "")
        lines.append(f"| {cat} | {CATEGORIES[cat][2]} | " + " | ".join(cells) + " |")
    bad = [r for r in results if r.outcome in ("traceback", "unclear", "leftover", "memory", "timeout")]
    refused_inputs = {r.inp.name for r in results if r.command != "info" and r.outcome == "refused"}
    info_silent = [
        r
        for r in results
        if r.command == "info"
        and r.message == "problems: none"
        and r.inp.name in refused_inputs
        and expected(r) != "either"
        and r.inp.target != "pred"
    ]
    should_refuse = [r for r in results if r.outcome == "silent" and expected(r) == "refuse"]
    wrongly_refused = [r for r in results if r.outcome == "refused" and expected(r) == "accept"]
    # what a batch cannot see: predict wrote a result, said a warning, and exited 0
    quiet_doubt = [r for r in results if r.command == "predict" and r.outcome == "warned"]
    wrong = [r for r in results if r.outcome == "wrong"]
    for title, rows in (
        ("Tracebacks, unclear exits, leftovers, memory, timeouts", bad),
        ("`predict` exit 0 with a warning (a batch reading exit codes would not see it)", quiet_doubt),
        (f"`predict` exit 0 with a whole tumour unlike the unbroken case's (Dice < {AGREEMENT})", wrong),
        ("`info` said 'problems: none' where another command refused", info_silent),
        ("Accepted silently although the input is broken", should_refuse),
        ("Refused although the input is legal", wrongly_refused),
    ):
        lines += ["", f"## {title}: {len(rows)}", ""]
        for r in rows[:60]:
            peak = f", peak {r.max_rss_mb:.0f} MB" if r.max_rss_mb else ""
            lines.append(f"- {r.inp.name} `{r.command}` ({r.inp.detail}{peak}): {r.outcome}: {r.message}")
            if r.outcome != "silent" or title.startswith("Accepted"):
                lines.append(f"  reproduce: `medseg3d {' '.join(_quote(a) for a in r.argv)}` in {r.inp.root}")
    return "\n".join(lines) + "\n"


def _agreement_line(results: list[Result]) -> str:
    scores = sorted(r.agreement for r in results if r.agreement is not None)
    if not scores:
        return "predict: no output compared with the unbroken case's"
    low = sum(s < AGREEMENT for s in scores)
    return (
        f"predict outputs compared with the unbroken case's (whole tumour Dice): {len(scores)}, lowest "
        f"{scores[0]:.3f}, median {scores[len(scores) // 2]:.3f}, below {AGREEMENT}: {low} (exit 0 among "
        f"them: {sum(r.outcome == 'wrong' for r in results)})"
    )


def _categories_used(results: list[Result]) -> list[str]:
    return list(dict.fromkeys(r.inp.category for r in results))


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def run(
    work: Path,
    per_category: int = 12,
    seed: int = 0,
    categories=None,
    jobs: int = 1,
    args=None,
    progress: bool = True,
    only=None,
) -> tuple[list[Result], str]:
    """Build the inputs under ``work``, run every command on them, return the results and the report."""
    args = args or argparse.Namespace(in_process=False, timeout=120.0, mem_cap=6.0, mem_report=2.0)
    start = time.monotonic()
    base = make_base(work / "base")
    raw_base = (
        make_raw_base(work / "base") if any(c.startswith("raw_") for c in categories or CATEGORIES) else None
    )
    inputs = build_inputs(work / "inputs", base, per_category, seed, categories, only, raw_base)
    jobs_list = [(inp, c) for inp in inputs for c in inp.commands]
    REFERENCES.clear()
    if any(c == "predict" for _, c in jobs_list):
        make_references(work / "reference", base, raw_base, args)
    results: list[Result] = []

    def task(item):
        return run_one(item[0], item[1], args)

    pool = ThreadPoolExecutor(max(1, jobs)) if jobs > 1 and not args.in_process else None
    iterator = pool.map(task, jobs_list) if pool else map(task, jobs_list)
    for done, result in enumerate(iterator, 1):
        results.append(result)
        if progress:
            print(
                f"\r{done}/{len(jobs_list)} {result.inp.name} {result.command}: {result.outcome}        ",
                end="",
                file=sys.stderr,
                flush=True,
            )
    if pool:
        pool.shutdown()
    if progress:
        print(file=sys.stderr)
    return results, report(results, time.monotonic() - start, seed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--per-category",
        type=int,
        default=12,
        help="inputs per category (default 12: 404 inputs, the raw_ categories 2 each)",
    )
    ap.add_argument("--categories", help="comma-separated subset of: " + ", ".join(CATEGORIES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--commands",
        help="commands besides info, comma-separated (default predict,prepare,train,evaluate in turn)",
    )
    ap.add_argument("--jobs", type=int, default=1, help="commands run at once")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per command")
    ap.add_argument("--mem-cap", type=float, default=6.0, help="address-space cap per command, GiB")
    ap.add_argument("--mem-report", type=float, default=2.0, help="peak memory (GiB) reported as 'memory'")
    ap.add_argument(
        "--in-process", action="store_true", help="call medseg3d.cli.main here instead of subprocesses"
    )
    ap.add_argument("--work", type=Path, help="where to build the inputs (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the inputs (to reproduce a finding)")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "medseg3d-fuzz" / "report.md")
    args = ap.parse_args(argv)
    categories = args.categories.split(",") if args.categories else None
    unknown = sorted(set(categories or ()) - set(CATEGORIES))
    if unknown:
        ap.error(f"unknown categories {unknown}")
    work = args.work or Path(tempfile.mkdtemp(prefix="medseg3d-fuzz-"))
    try:
        only = tuple(args.commands.split(",")) if args.commands else None
        _, text = run(work, args.per_category, args.seed, categories, args.jobs, args, only=only)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, args.out)
    print(text)
    print(
        f"report: {args.out}" + (f"; inputs kept in {work}" if args.keep or args.work else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
