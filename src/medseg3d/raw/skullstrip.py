"""Skull stripping with deepbet (Fisch et al. 2024, MIT licence), whose two small networks ship in its wheel.

deepbet finds the brain's bounding box with one network at 128^3, then segments the brain with a second at
256^3 inside that box, keeps the largest component and fills holes. It runs offline on a CPU in seconds
(measured: docs/raw.md#time-and-memory-idle-2-core-machine-avx2-only) and works on thick-slice clinical
T1-weighted scans as exported. Nothing is downloaded: its TorchScript weights are read from the installed
package.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..io import Volume

_MODEL = None


def _extractor():
    global _MODEL
    if _MODEL is None:
        import warnings

        import torch

        # torch.jit's deprecation notices, raised on import and when deepbet loads its networks: about
        # deepbet's code, nothing a user of medseg3d can act on (a batch would read them as a doubt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                from deepbet import BrainExtraction
            except ImportError as exc:  # pragma: no cover - deepbet is a dependency
                raise InputError(
                    "skull stripping needs the package deepbet; reinstall medseg3d (pip install medseg3d)"
                ) from exc
            _MODEL = BrainExtraction(no_gpu=not torch.cuda.is_available())
    return _MODEL


def brain_mask(volume: Volume, threshold: float = 0.5) -> np.ndarray:
    """Boolean brain mask of a T1-weighted head scan, on the scan's own grid.

    Args:
        volume: the 3D scan.
        threshold: deepbet's brain probability above which a voxel is brain.

    Returns:
        A boolean array of the scan's shape.

    Raises:
        InputError: the image is not 3D, or deepbet found no brain (e.g. the image is not a head scan).
    """
    import nibabel as nib

    image = volume.array
    if image.ndim != 3:
        raise InputError(f"skull stripping needs a 3D image, got shape {image.shape}")
    img = nib.Nifti1Image(np.asarray(image, dtype=np.float32), volume.affine)
    model = _extractor()
    try:
        canonical = nib.as_closest_canonical(img)
        x = canonical.get_fdata(dtype=np.float32)
        prob = model.run_model(x.copy())
        mask = model.postprocess(prob > threshold, 0)
    except (AssertionError, ValueError, RuntimeError) as exc:
        raise InputError(
            f"skull stripping found no brain in the image ({str(exc)[:120]}); is this a head MRI?"
        ) from exc
    # back from the closest canonical (RAS) orientation to the input's axis order
    ornt = nib.orientations.ornt_transform(
        nib.io_orientation(canonical.affine), nib.io_orientation(img.affine)
    )
    mask = nib.orientations.apply_orientation(mask.astype(np.uint8), ornt).astype(bool)
    if mask.shape != image.shape:
        raise InputError("skull stripping returned a mask on another grid; please report this input")
    return mask
