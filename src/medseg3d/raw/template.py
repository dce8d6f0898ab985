"""The bundled brain template in BraTS (SRI24) space, and how it is built.

The template is the mean of BraTS training cases, which are all skull-stripped and aligned to the SRI24 atlas
on one 240 x 240 x 155 grid at 1 mm: per modality the voxel-wise mean of the brain-normalised images, and the
fraction of cases in which each voxel is brain. It is stored at 2 mm (120 x 120 x 78, about a megabyte) as one
4D uint8 NIfTI inside the package, so the raw-input pipeline needs no download.

Brain normalisation (:func:`normalise_brain`) is shared by the template and by the images registered to it:
a z-score inside the brain, clipped to ``[-3, 5]``, and a constant ``-4`` outside, so that the brain's edge
and its inner structure (ventricles, white matter) drive the mutual-information metric.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import Volume, read_volume

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "weights" / "atlas"
TEMPLATE_NAME = "brats_sri24_2mm"
MODALITIES = ("flair", "t1", "t1ce", "t2")
OUTSIDE = -4.0
CLIP = (-3.0, 5.0)
# The BraTS 2017-2021 grid (SRI24 space): 240 x 240 x 155 voxels of 1 mm, LPS axis order.
BRATS_SHAPE = (240, 240, 155)
BRATS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 239.0], [0, 0, 1.0, 0], [0, 0, 0, 1]])


@dataclass
class Template:
    """Mean brain-normalised images per modality and a brain probability, on a 2 mm grid in BraTS space."""

    images: dict[str, np.ndarray]  # modality -> (X, Y, Z) float32, OUTSIDE where not brain
    brain: np.ndarray  # (X, Y, Z) float32 in [0, 1]
    affine: np.ndarray  # RAS voxel-to-world of the 2 mm grid
    info: dict

    @property
    def shape(self) -> tuple[int, int, int]:
        """The template grid's shape (X, Y, Z)."""
        return tuple(int(s) for s in self.brain.shape)

    def volume(self, modality: str) -> Volume:
        """One modality's template image as a Volume on the template grid."""
        return Volume(self.images[modality], self.affine)

    def brain_mask(self) -> Volume:
        """The template's brain (probability >= 0.5) as a 0/1 float32 Volume."""
        return Volume((self.brain >= 0.5).astype(np.float32), self.affine)


def normalise_brain(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Z-score inside ``mask`` (clipped to ``CLIP``), ``OUTSIDE`` elsewhere; float32.

    Args:
        image: the (X, Y, Z) image.
        mask: the boolean brain mask, of that shape.

    Raises:
        InputError: the mask holds fewer than 100 voxels, or the image is constant inside it.
    """
    values = image[mask].astype(np.float64)
    if values.size < 100:
        raise InputError("the brain mask holds fewer than 100 voxels; the skull stripping failed")
    std = values.std()
    if not np.isfinite(std) or std == 0:
        raise InputError("the image is constant inside the brain; check the input file")
    out = np.full(image.shape, OUTSIDE, dtype=np.float32)
    out[mask] = np.clip((image[mask] - values.mean()) / std, *CLIP)
    return out


def block_sum(a: np.ndarray, f: int = 2) -> np.ndarray:
    """The sums over ``f`` x ``f`` x ``f`` blocks of a 3D array (zero-padded to a multiple of ``f``).

    Args:
        a: the (X, Y, Z) array.
        f: the block side in voxels.
    """
    pad = [(0, (-s) % f) for s in a.shape]
    a = np.pad(a, pad)
    x, y, z = (s // f for s in a.shape)
    return a.reshape(x, f, y, f, z, f).sum(axis=(1, 3, 5))


def template_affine(factor: int = 2) -> np.ndarray:
    """The BraTS grid coarsened by ``factor`` (block centres; align_corners=False geometry)."""
    scale = np.eye(4)
    scale[:3, :3] *= factor
    scale[:3, 3] = (factor - 1) / 2.0
    return BRATS_AFFINE @ scale


def build_template(cases, factor: int = 2, progress: bool = True) -> Template:
    """Average BraTS cases (``datasets.Case`` objects on the BraTS grid) into a template.

    Each case is brain-normalised per modality; the template value of a 2 mm block is the mean over cases of
    the brain voxels in it, and ``OUTSIDE`` where fewer than half of the cases have brain there.

    Args:
        cases: the cases (each with a brain given by non-zero voxels).
        factor: the block side in voxels (2: 2 mm on the 1 mm BraTS grid).
        progress: show a progress bar.

    Returns:
        The Template: images per modality, brain fraction in [0, 1], affine and info.

    Raises:
        InputError: a case is not on the BraTS 240x240x155 grid, or no case is given.
    """
    from tqdm import tqdm

    sums = {m: None for m in MODALITIES}
    weight = None
    used = []
    for case in tqdm(list(cases), desc="template", unit="case", disable=not progress):
        vols = {m: read_volume(case.channels[m]) for m in MODALITIES}
        first = vols[MODALITIES[0]]
        if first.shape != BRATS_SHAPE or not np.allclose(first.affine, BRATS_AFFINE, atol=1e-3):
            raise InputError(
                f"{case.case_id}: not on the BraTS 240x240x155 grid; the template needs BraTS cases"
            )
        mask = np.any(np.stack([v.array != 0 for v in vols.values()]), axis=0)
        w = block_sum(mask.astype(np.float64), factor)
        weight = w if weight is None else weight + w
        for m, v in vols.items():
            z = normalise_brain(v.array.astype(np.float32), mask)
            s = block_sum(np.where(mask, z, 0.0).astype(np.float64), factor)
            sums[m] = s if sums[m] is None else sums[m] + s
        used.append(case.case_id)
    if not used:
        raise InputError("no case given to build the template from")
    brain = weight / (len(used) * factor**3)
    images = {}
    for m in MODALITIES:
        mean = np.divide(sums[m], weight, out=np.zeros_like(weight), where=weight > 0)
        images[m] = np.where(brain >= 0.5, mean, OUTSIDE).astype(np.float32)
    info = {
        "name": TEMPLATE_NAME,
        "cases": used,
        "factor": factor,
        "modalities": list(MODALITIES),
        "normalisation": f"z-score inside the brain clipped to {list(CLIP)}, {OUTSIDE} outside",
    }
    return Template(images, brain.astype(np.float32), template_affine(factor), info)


# uint8 storage: images map [OUTSIDE, CLIP[1]] to 0..255, the brain probability 0..1 to 0..255
_LO, _HI = OUTSIDE, CLIP[1]


def save_template(template: Template, folder: Path = TEMPLATE_DIR, name: str = TEMPLATE_NAME) -> Path:
    """Write a template as one uint8 NIfTI (the modalities and the brain as channels) and its JSON info.

    Args:
        template: the template.
        folder: where it goes (made if missing).
        name: the files' stem.

    Returns:
        The NIfTI file.
    """
    from ..io import write_text_atomic, write_volume

    folder.mkdir(parents=True, exist_ok=True)
    q = [np.round((np.clip(template.images[m], _LO, _HI) - _LO) / (_HI - _LO) * 255) for m in MODALITIES]
    q.append(np.round(np.clip(template.brain, 0, 1) * 255))
    stack = np.stack(q, axis=-1).astype(np.uint8)
    path = write_volume(Volume(stack, template.affine), folder / f"{name}.nii.gz")
    info = dict(
        template.info,
        channels=list(MODALITIES) + ["brain"],
        storage=f"uint8: images {_LO}..{_HI}, brain 0..1",
    )
    write_text_atomic(json.dumps(info, indent=1) + "\n", folder / f"{name}.json")
    return path


_CACHE: dict[str, Template] = {}


def load_template(folder: Path = TEMPLATE_DIR, name: str = TEMPLATE_NAME) -> Template:
    """The bundled template (read once per process).

    Args:
        folder: where it is.
        name: the files' stem.

    Raises:
        InputError: the template is missing or damaged (reinstall).
    """
    key = str(folder / name)
    if key in _CACHE:
        return _CACHE[key]
    path = folder / f"{name}.nii.gz"
    if not path.is_file():
        raise InputError(f"{path}: the brain template is missing from the installation; reinstall medseg3d")
    vol = read_volume(path)
    info = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    if vol.array.ndim != 4 or vol.array.shape[3] != len(MODALITIES) + 1:
        raise InputError(
            f"{path}: the brain template is damaged (shape {vol.array.shape}); reinstall medseg3d"
        )
    a = vol.array.astype(np.float32)
    images = {m: (a[..., i] / 255 * (_HI - _LO) + _LO).astype(np.float32) for i, m in enumerate(MODALITIES)}
    template = Template(images, a[..., -1] / 255, vol.affine, info)
    _CACHE[key] = template
    return template


def brain_fraction(brain: np.ndarray, template: Template) -> np.ndarray:
    """The fraction of each of the template's blocks that ``brain`` (on the BraTS grid) covers.

    Args:
        brain: a boolean (X, Y, Z) mask on the BraTS grid.
        template: the template (its block factor).
    """
    f = int(template.info.get("factor", 2))
    return (block_sum(brain.astype(np.float32), f) / f**3).astype(np.float32)


def to_template_grid(
    array: np.ndarray, brain: np.ndarray, fraction: np.ndarray, template: Template
) -> np.ndarray:
    """A BraTS-grid image brain-normalised and averaged into the template's blocks.

    Args:
        array: the (X, Y, Z) image on the BraTS grid.
        brain: its boolean brain mask (fewer than 100 voxels: all ``OUTSIDE``).
        fraction: :func:`brain_fraction` of the same ``brain``.
        template: the template (its shape and block factor).

    Raises:
        InputError: the image is constant inside the brain.
    """
    if brain.sum() < 100:
        return np.full(template.shape, OUTSIDE, np.float32)
    f = int(template.info.get("factor", 2))
    s = block_sum(np.where(brain, normalise_brain(array, brain), 0.0), f)
    w = fraction * f**3
    return np.where(w > 0, s / np.maximum(w, 1), OUTSIDE).astype(np.float32)
