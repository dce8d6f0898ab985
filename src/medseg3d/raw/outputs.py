"""``medseg3d preprocess``: raw scans -> a BraTS case folder that any tool (or ``medseg3d train``) can use.

The output folder ``OUT/`` is written as one BraTS 2017-2021 case: ``<case>_{flair,t1,t1ce,t2}.nii.gz`` on the
240 x 240 x 155 grid, zero outside the brain, plus ``<case>_brainmask.nii.gz``, ``transforms.json`` (every
4x4 map, with ITK ``.tfm`` copies), ``preprocess.json`` (steps, seconds, quality checks) and ``qc.png``. It is
written in a temporary folder beside ``OUT`` and renamed into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import Volume, write_volume
from .geometry import matrix_to_sitk
from .pipeline import BRATS_SPACE, align


def write_preprocessed(
    case, out_dir, *, mode: str = "full", force: bool = False, progress=None, template_fit: str | None = None
) -> list[str]:
    """Align one case (``datasets.Case`` with flair, t1, t1ce, t2) to the BraTS grid and write it to
    ``out_dir``:
    the four channels, the brain mask, ``transforms.json`` (and ITK ``.tfm`` files), ``preprocess.json`` and
    ``qc.png``, all at once (built in a temporary folder, then renamed).

    Args:
        case: the case to align.
        out_dir: the output folder (replaced as a whole with ``force``).
        mode: the alignment mode (:func:`medseg3d.raw.pipeline.align`: full, resample, none or auto).
        force: whether an existing ``out_dir`` may be replaced.
        progress: called with a line per step (None: silent).
        template_fit: "rigid" or "affine" fit to the template (None: the default).

    Returns:
        Lines to show: the warnings, the mode chosen and why (with the brain volume in ml), what was written.

    Raises:
        InputError: ``out_dir`` exists without ``force``, a channel is missing, the folder cannot be made or
            written, or the alignment fails.
    """
    import SimpleITK as sitk

    from ..labels import get_scheme
    from .summary import qc_picture

    out = Path(out_dir)
    if out.exists() and not force:
        raise InputError(f"{out}: exists already; add --force to replace it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"{out.parent}: cannot create the output folder ({exc.strerror}); choose another -o"
        ) from exc
    volumes = {name: vol for name, _, vol in case.read_channels()}
    missing = [m for m in ("flair", "t1", "t1ce", "t2") if m not in volumes]
    if missing:
        raise InputError(f"modality {', '.join(missing)} is missing; give FLAIR, T1, T1CE and T2")
    prepared = align(volumes, BRATS_SPACE, mode, progress=progress, template_fit=template_fit)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise InputError(
            f"{out.parent}: output folder is not writable ({exc.strerror}); choose another -o"
        ) from exc
    try:
        cid = case.case_id
        for m, array in prepared.channels.items():
            write_volume(
                Volume(array.astype(np.float32, copy=False), prepared.affine), tmp / f"{cid}_{m}.nii.gz"
            )
        brain = (
            prepared.brain
            if prepared.brain is not None
            else np.any(prepared.image(list(prepared.channels)), 0)
        )
        write_volume(Volume(brain.astype(np.uint8), prepared.affine), tmp / f"{cid}_brainmask.nii.gz")
        transforms = {}
        for name, t in prepared.transforms.items():
            if "matrix_lps" in t:
                sitk.WriteTransform(matrix_to_sitk(np.asarray(t["matrix_lps"])), str(tmp / f"{name}.tfm"))
            transforms[name] = t
        (tmp / "transforms.json").write_text(
            json.dumps(
                {
                    "convention": "4x4 maps in ITK LPS millimetres from the fixed space to the moving one: "
                    "'atlas' maps BraTS-grid points to the skull-stripped channel's points, each sequence's "
                    f"entry maps {prepared.reference} points to that sequence's points",
                    "grid_from_native_lps": np.round(prepared.grid_from_native, 6).tolist()
                    if prepared.grid_from_native is not None
                    else None,
                    "transforms": transforms,
                },
                indent=1,
            )
            + "\n",
            encoding="utf-8",
        )
        (tmp / "preprocess.json").write_text(
            json.dumps(
                {"inputs": {m: str(p) for m, p in case.channels.items()}, **prepared.summary()}, indent=1
            )
            + "\n",
            encoding="utf-8",
        )
        empty = Volume(np.zeros(prepared.native.shape, np.uint8), prepared.native.affine)
        qc_picture(prepared, empty, get_scheme("brats"), tmp / "qc.png", prepared.native_brain)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except OSError as exc:
        raise InputError(f"{out}: cannot write the outputs ({exc.strerror}); check the folder") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [f"warning: {w}" for w in prepared.warnings]
    brain_ml = prepared.details.get("brain_ml")
    lines.append(
        f"preprocessing '{prepared.mode}' ({prepared.reason})"
        + (f"; brain {brain_ml:.0f} ml" if brain_ml else "")
    )
    lines.append(
        f"wrote {out}/ ({case.case_id}_flair/t1/t1ce/t2/brainmask.nii.gz, transforms.json, "
        "preprocess.json, qc.png)"
    )
    return lines
