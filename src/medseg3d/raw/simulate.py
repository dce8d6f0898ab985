"""Make a BraTS case look as a hospital exports it: to test the raw-input pipeline against known answers.

Each channel gets its own oblique grid (a random rotation up to ``max_rotation`` degrees), its own axis order
and orientation code, its own voxel size (thick slices for some, made by averaging 1 mm slabs so that the
partial-volume blur is real, not just sparse sampling), a field of view around the head with a margin, a
small motion between sequences and a scaled intensity. The reference label is carried onto the T1ce's grid
by nearest neighbour; the true maps are returned so registration can be checked against them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io import Volume
from .geometry import resample

AXCODES = [
    ("L", "A", "S"),
    ("R", "A", "S"),
    ("L", "P", "S"),
    ("P", "I", "R"),
    ("A", "S", "L"),
    ("R", "P", "I"),
]


@dataclass
class SimulatedCase:
    volumes: dict[str, Volume]  # modality -> raw-looking volume
    label: Volume | None  # the reference on the T1ce's grid
    motion: dict[str, np.ndarray]  # modality -> 4x4 LPS map: T1ce-session points -> this sequence's points
    settings: dict


def rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    """The 3x3 rotation by ``degrees`` about ``axis`` (any length; normalised), by Rodrigues' formula.

    Args:
        axis: the axis, (3,).
        degrees: the angle, right-handed.
    """
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    a = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)


def rigid_matrix(rot: np.ndarray, shift, centre) -> np.ndarray:
    """4x4 map rotating about ``centre`` then shifting (all in the same mm frame).

    Args:
        rot: the 3x3 rotation.
        shift: the translation after it, mm (3,).
        centre: the fixed point of the rotation, mm (3,).
    """
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = np.asarray(centre) - rot @ np.asarray(centre) + np.asarray(shift)
    return out


def _random_rotation(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    return rotation(rng.normal(size=3), rng.uniform(-max_degrees, max_degrees))


def raw_grid(extent_lo: np.ndarray, extent_hi: np.ndarray, axcodes, rot: np.ndarray, spacing) -> tuple:
    """(shape, RAS affine) of a grid with ``axcodes`` turned by ``rot`` that covers the RAS box lo..hi.

    Args:
        extent_lo, extent_hi: the box's corners, RAS mm (3,).
        axcodes: the grid's orientation before the turn, e.g. ("L", "P", "S").
        rot: a 3x3 rotation applied to the axes.
        spacing: voxel size in mm, (X, Y, Z).
    """
    import nibabel as nib

    ornt = nib.orientations.axcodes2ornt(axcodes)
    axes = np.zeros((3, 3))
    for col, (axis, sign) in enumerate(ornt):
        axes[int(axis), col] = sign
    direction = rot @ axes
    spacing = np.asarray(spacing, dtype=np.float64)
    box = np.array(
        [
            [x, y, z]
            for x in (extent_lo[0], extent_hi[0])
            for y in (extent_lo[1], extent_hi[1])
            for z in (extent_lo[2], extent_hi[2])
        ]
    )
    coords = box @ direction  # positions along each grid axis (direction columns are unit vectors)
    lo, hi = coords.min(0), coords.max(0)
    shape = tuple(int(v) for v in np.ceil((hi - lo) / spacing) + 1)
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing[None, :]
    affine[:3, 3] = direction @ lo
    return shape, affine


def simulate(
    volumes: dict[str, Volume],
    label: Volume | None,
    seed: int,
    *,
    reference: str = "t1ce",
    max_rotation: float = 12.0,
    max_motion_mm: float = 3.0,
    max_motion_deg: float = 3.0,
    thick: tuple[float, float] = (3.0, 5.5),
    margin_mm: float = 25.0,
) -> SimulatedCase:
    """A raw-looking copy of one case (all channels on one grid, e.g. a BraTS case): each channel on its own
    turned grid, some with thick slices, with motion between sequences.

    Args:
        volumes: {modality: volume}, all on one grid.
        label: the reference on that grid (None: none).
        seed: the seed of every random choice.
        reference: the sequence the others move relative to (its grid carries the label).
        max_rotation: the largest turn of the scanner grid, degrees.
        max_motion_mm, max_motion_deg: the largest motion of a sequence relative to ``reference``.
        thick: the range of slab thickness (mm) of the sequences drawn to have thick slices.
        margin_mm: the field of view beyond the foreground, mm.

    Returns:
        The SimulatedCase: volumes, the label on the reference's grid, each sequence's true motion and the
        settings drawn.
    """
    rng = np.random.default_rng(seed)
    first = volumes[reference]
    fg = np.argwhere(np.any(np.stack([v.array != 0 for v in volumes.values()]), axis=0))
    lo_idx, hi_idx = fg.min(0), fg.max(0)
    corners = np.array(
        [
            [i, j, k]
            for i in (lo_idx[0], hi_idx[0])
            for j in (lo_idx[1], hi_idx[1])
            for k in (lo_idx[2], hi_idx[2])
        ],
        dtype=np.float64,
    )
    world = corners @ first.affine[:3, :3].T + first.affine[:3, 3]
    lo, hi = world.min(0) - margin_mm, world.max(0) + margin_mm
    centre = (world.min(0) + world.max(0)) / 2
    others = [m for m in volumes if m != reference]
    n_thick = int(rng.integers(1, len(others) + 1)) if others else 0
    thick_set = set(rng.choice(others, size=n_thick, replace=False).tolist()) if others else set()
    out, motion, settings = {}, {}, {}
    for m, vol in volumes.items():
        codes = AXCODES[int(rng.integers(len(AXCODES)))]
        rot = _random_rotation(rng, max_rotation)
        if m == reference:
            spacing = (rng.uniform(0.9, 1.1),) * 2 + (rng.uniform(1.0, 1.5),)
            move = np.eye(4)
        else:
            inplane = rng.uniform(0.8, 1.0)
            slab = rng.uniform(*thick) if m in thick_set else rng.uniform(1.0, 1.5)
            spacing = (inplane, inplane, slab)
            centre_lps = centre * np.array([-1.0, -1.0, 1.0])
            shift = rng.uniform(-1, 1, 3) * max_motion_mm / np.sqrt(3)
            move = rigid_matrix(_random_rotation(rng, max_motion_deg), shift, centre_lps)
        slab_voxels = max(1, int(np.round(spacing[2])))
        fine = (spacing[0], spacing[1], spacing[2] / slab_voxels)
        shape, affine = raw_grid(lo, hi, codes, rot, fine)
        shape = (shape[0], shape[1], shape[2] + (-shape[2]) % slab_voxels)
        # the sequence was acquired with the head moved by ``move``: its voxel p shows the head's point
        # move^-1 p
        data = resample(vol, shape, affine, np.linalg.inv(move), order=1)
        if slab_voxels > 1:  # thick slices: the mean over each slab, on a grid of slab-sized voxels
            data = data.reshape(shape[0], shape[1], shape[2] // slab_voxels, slab_voxels).mean(-1)
            scale = np.eye(4)
            scale[2, 2] = slab_voxels
            scale[2, 3] = (slab_voxels - 1) / 2.0
            affine = affine @ scale
        gain = rng.uniform(0.5, 3.0)
        out[m] = Volume((data * gain).astype(np.float32), affine)
        motion[m] = move
        settings[m] = {
            "axcodes": "".join(codes),
            "spacing": [round(float(s), 3) for s in np.linalg.norm(affine[:3, :3], axis=0)],
            "shape": list(out[m].shape),
            "gain": round(float(gain), 3),
        }
    ref_label = None
    if label is not None:
        ref = out[reference]
        ref_label = Volume(
            resample(label, ref.shape, ref.affine, order=0, dtype=np.float32).astype(np.uint8), ref.affine
        )
    return SimulatedCase(out, ref_label, motion, settings)


def permute_axes(vol: Volume) -> Volume:
    """The same image with its axes permuted (z, x, y) and the first flipped: another valid affine, same
    physical voxels (a BraTS case becomes I, L, P)."""
    arr = np.ascontiguousarray(np.transpose(vol.array, (2, 0, 1))[::-1])
    affine = vol.affine[:, [2, 0, 1, 3]].copy()
    affine[:3, 3] += affine[:3, 0] * (arr.shape[0] - 1)
    affine[:3, 0] *= -1
    return Volume(arr, affine)


def true_rigid(sim: SimulatedCase, reference: str, modality: str) -> np.ndarray:
    """The map a perfect co-registration finds: reference points -> ``modality``'s points (LPS mm).

    Args:
        sim: the simulated case (its motions).
        reference, modality: the fixed and the moving sequence.
    """
    return sim.motion[modality] @ np.linalg.inv(sim.motion[reference])
