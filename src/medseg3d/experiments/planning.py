"""Training settings that adapt to a dataset, as nnU-Net's planning does: ``medseg3d plan DATA``.

What is measured (on every case, or an even sample of :data:`MAX_MEASURED` cases of a large dataset): each
case's voxel spacing, the box around its non-zero voxels (the crop training uses) and, for CT, the
intensities inside its labels. What is chosen from it, each with the reason :func:`format_plan` prints:

* target spacing: the median spacing per axis; for a strongly anisotropic dataset (one axis more than
  :data:`ANISOTROPY` times coarser) that axis takes the 10th percentile instead, so the thin slices are not
  interpolated away (nnU-Net's rule);
* coarser spacing while a patch of :data:`PATCH_VOXELS` (what a CPU trains in seconds) would see less than
  :data:`MIN_COVER` of the median case: each step doubles the spacing (nnU-Net's low-resolution stage, as
  the bundled BraTS preset's 2 mm);
* patch size: the median case at that spacing, shrunk along its longest axis until it fits the budget,
  rounded up to the network's size multiple; batch: as many patches as the budget holds (at least 1, at most
  :data:`MAX_BATCH`);
* network depth: the paper's network with as many resolution levels as halve the patch's shortest side while
  it stays at least :data:`MIN_EDGE` voxels (at most 5 levels), instance norm;
* normalisation from the modality ``dataset.json`` names: CT gets one window for every case (0.5 and 99.5
  percentiles of the labelled voxels, then their mean and standard deviation), anything else (MRI) a z-score
  per case and channel inside its non-zero voxels;
* labels: BraTS (a BraTS layout, or a ``dataset.json`` of BraTS classes in any numbering) trains its nested
  regions WT / TC / ET with region Dice + BCE; any other ``dataset.json`` its own classes
  (``--labels dataset``) with Dice + cross-entropy.

The result is a set of :class:`~medseg3d.train.TrainConfig` settings, the ``auto`` preset of ``medseg3d
crossval``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..datasets import Case, dataset_labels, find_cases
from ..datasets.dataset_json import read_dataset_json
from ..datasets.names import CT_NAMES
from ..errors import InputError

PATCH_VOXELS = 64**3  # a patch a 2-core CPU trains a step on in about a second with the paper's network
MIN_COVER = 0.25
ANISOTROPY = 3.0
MIN_EDGE = 4
MAX_LEVELS = 5
MAX_BATCH = 8
MAX_MEASURED = 40
# iterations of one plan's training: 50 per epoch, validation every 10 epochs; the budget is the caller's
ITERS_PER_EPOCH = 50
DEFAULT_EPOCHS = 100


@dataclass
class DatasetPlan:
    """What :func:`plan_dataset` measured and chose.

    Attributes:
        dataset: the dataset folder.
        settings: :class:`~medseg3d.train.TrainConfig` settings (JSON-ready).
        reasons: one line per choice: what was chosen and why.
        facts: the measurements (cases, spacings, shapes, intensities).
    """

    dataset: str
    settings: dict
    reasons: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The plan as a JSON-ready dict (dataset, settings, reasons, facts)."""
        return {
            "dataset": self.dataset,
            "settings": self.settings,
            "reasons": self.reasons,
            "facts": self.facts,
        }


def _spacing_and_box(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(spacing, non-zero box size in voxels, first channel, label) of one case."""
    from ..preprocess import bounding_box, foreground_mask

    _, _, volume = next(case.read_channels())
    image = np.asarray(volume.array, dtype=np.float32)
    label = None
    if case.label is not None:
        from ..io import read_volume

        label = np.asarray(read_volume(case.label).array)
    mask = foreground_mask(image[None])
    if label is not None and label.shape == mask.shape:
        mask = mask | (label != 0)
    start, stop = bounding_box(mask)
    return np.asarray(volume.spacing, dtype=float), np.subtract(stop, start), image, label


def _modalities(root: Path, cases: list[Case]) -> list[str]:
    """The channel names as the dataset states them (``dataset.json``), else as the layout found them."""
    if root.is_dir() and (root / "dataset.json").is_file():
        names = read_dataset_json(root).get("channel_names") or read_dataset_json(root).get("modality") or {}
        if isinstance(names, dict) and names:
            return [str(names[k]) for k in sorted(names, key=lambda k: int(k))]
    return list(cases[0].modalities)


def _is_brats(root: Path, cases: list[Case]) -> bool:
    labels = dataset_labels(root)
    if labels is not None:
        return set(labels.values()) == {0, 1, 2, 4} and "enhancing" in labels
    return set(cases[0].modalities) >= {"flair", "t1", "t1ce", "t2"}


def target_spacing(spacings: np.ndarray) -> tuple[tuple[float, ...], str]:
    """The median spacing per axis, or nnU-Net's anisotropic rule; returns (spacing, why)."""
    median = np.median(spacings, axis=0)
    coarse = int(np.argmax(median))
    if median[coarse] > ANISOTROPY * np.min(median):
        median[coarse] = np.percentile(spacings[:, coarse], 10)
        return tuple(float(v) for v in median), (
            f"axis {coarse} is more than {ANISOTROPY:g}x coarser than the others: its 10th percentile "
            "spacing, so thin slices are not interpolated away; the median elsewhere"
        )
    return tuple(float(v) for v in median), "the median spacing of the cases, per axis"


def levels_for(patch) -> int:
    """Resolution levels of the paper's network for a patch: halvings of its shortest side while that stays at
    least :data:`MIN_EDGE` voxels, plus one; between 2 and :data:`MAX_LEVELS`."""
    shortest, halvings = min(patch), 0
    while shortest / 2 ** (halvings + 1) >= MIN_EDGE and halvings + 1 < MAX_LEVELS:
        halvings += 1
    return max(2, halvings + 1)


def fit_patch(shape, budget: int = PATCH_VOXELS) -> tuple[tuple[int, ...], int]:
    """A patch for cases of median ``shape`` voxels: the shape itself, its longest axis shrunk until the patch
    holds at most ``budget`` voxels, each side a multiple of the network's size multiple.

    Args:
        shape: the median case shape in voxels (X, Y, Z); fractions are rounded up.
        budget: the most voxels a patch may hold (it may hold more when every side is down to one multiple).

    Returns:
        (patch shape, the number of U-Net levels it allows).
    """
    patch = [max(1, math.ceil(s)) for s in shape]
    levels = levels_for(patch)
    multiple = 2 ** (levels - 1)
    patch = [math.ceil(s / multiple) * multiple for s in patch]
    while int(np.prod(patch)) > budget:
        longest = int(np.argmax(patch))
        if patch[longest] <= multiple:
            break
        patch[longest] -= multiple
    return tuple(patch), levels


def plan_dataset(dataset, max_measured: int = MAX_MEASURED) -> DatasetPlan:
    """Measure ``dataset`` and choose its training settings (module docstring).

    Args:
        dataset: a dataset folder (any layout :func:`~medseg3d.datasets.find_cases` reads) with labels.
        max_measured: read at most this many cases (evenly spaced by name) for the measurements.

    Returns:
        a :class:`DatasetPlan`.

    Raises:
        InputError: no labelled cases, or cases that cannot be read.
    """
    root = Path(dataset)
    cases = find_cases(root, require_label=True)
    if not cases:
        raise InputError(f"{root}: no labelled cases; a plan needs cases with label files")
    step = max(1, math.ceil(len(cases) / max_measured))
    measured = cases[::step]
    spacings, boxes, samples = [], [], []
    modalities = _modalities(root, cases)
    is_ct = modalities and modalities[0].strip().lower() in CT_NAMES
    rng = np.random.default_rng(0)
    for case in measured:
        spacing, box, image, label = _spacing_and_box(case)
        spacings.append(spacing)
        boxes.append(box * spacing)  # in mm, so cases of other spacings compare
        if is_ct and label is not None and label.shape == image.shape:
            values = image[label != 0]
            if values.size:
                samples.append(rng.choice(values, min(values.size, 10_000), replace=False))
    spacings = np.asarray(spacings)
    spacing, why_spacing = target_spacing(spacings)
    median_mm = np.median(np.asarray(boxes), axis=0)
    reasons = [f"cases: {len(cases)} labelled ({len(measured)} measured); channels: {', '.join(modalities)}"]
    reasons.append(
        f"spacing {_mm(spacing)} mm: {why_spacing} (cases from {_mm(spacings.min(0))} to "
        f"{_mm(spacings.max(0))} mm)"
    )
    shape = median_mm / np.asarray(spacing)
    coarsened = 0
    while np.prod(shape) * MIN_COVER > PATCH_VOXELS:
        coarsened += 1
        shape = shape / 2
    if coarsened:
        before = spacing
        spacing = tuple(float(s * 2**coarsened) for s in spacing)
        reasons.append(
            f"spacing coarsened to {_mm(spacing)} mm: at {_mm(before)} mm a patch of {PATCH_VOXELS} "
            f"voxels would see less than {MIN_COVER:.0%} of the median case ({_mm(median_mm)} mm)"
        )
    patch, levels = fit_patch(shape)
    whole = all(p >= s for p, s in zip(patch, shape))
    reasons.append(
        f"patch {'x'.join(map(str, patch))} voxels: the median case at that spacing is "
        f"{'x'.join(f'{s:.0f}' for s in shape)} voxels, "
        + ("so a patch holds a whole case" if whole else f"cut to {PATCH_VOXELS} voxels at most")
        + f"; sides multiples of {2 ** (levels - 1)}"
    )
    batch = int(min(MAX_BATCH, max(1, PATCH_VOXELS // int(np.prod(patch)))))
    reasons.append(f"batch {batch}: as many patches as {PATCH_VOXELS} voxels hold")
    reasons.append(
        f"network: the paper's (kayalibay) with {levels} resolution levels (the patch's shortest side "
        f"halved {levels - 1} times stays >= {MIN_EDGE} voxels), instance norm"
    )
    settings = dict(
        net="kayalibay",
        net_args={"norm": "instance", "levels": levels},
        crop="bbox",
        spacing=list(spacing),
        patch=list(patch),
        batch=batch,
        foreground_p=0.5 if not whole else 0.33,
        augment="default",
        lr=2e-3,
        schedule="poly",
        epochs=DEFAULT_EPOCHS,
        iters_per_epoch=ITERS_PER_EPOCH,
        val_every=10,
    )
    facts = {
        "cases": len(cases),
        "measured": len(measured),
        "modalities": modalities,
        "median_spacing_mm": [round(float(v), 4) for v in np.median(spacings, axis=0)],
        "median_box_mm": [round(float(v), 1) for v in median_mm],
    }
    if is_ct:
        values = np.concatenate(samples) if samples else np.zeros(0)
        if values.size < 100:
            raise InputError(f"{root}: CT, but too few labelled voxels to choose an intensity window")
        low, high = (float(v) for v in np.percentile(values, [0.5, 99.5]))
        clipped = np.clip(values, low, high)
        window = [
            round(low, 2),
            round(high, 2),
            round(float(clipped.mean()), 3),
            round(float(clipped.std()), 3),
        ]
        settings |= {"normalize": "window", "window": window}
        reasons.append(
            f"normalisation: CT window {window[0]:g} to {window[1]:g} (0.5 and 99.5 percentiles of "
            f"labelled voxels), then minus {window[2]:g}, over {window[3]:g}: one scale for all scans"
        )
        facts["ct_window"] = window
    else:
        settings["normalize"] = "zscore"
        reasons.append(
            f"normalisation: z-score per case and channel inside its non-zero voxels "
            f"({modalities[0]} is not CT: its intensities have no fixed scale)"
        )
    if _is_brats(root, cases):
        settings |= {"labels": "regions", "loss": "region-dice-bce"}
        reasons.append(
            "labels: BraTS: the nested regions WT / TC / ET, one sigmoid output each, region Dice + BCE"
        )
    else:
        labels = dataset_labels(root)
        if labels is None:
            raise InputError(
                f"{root}: no dataset.json labels and not a BraTS layout; add a dataset.json "
                "with 'labels' (name -> value)"
            )
        settings |= {"labels": "dataset", "loss": "dice+ce"}
        names = ", ".join(f"{v} {k}" for k, v in sorted(labels.items(), key=lambda kv: kv[1]))
        reasons.append(f"labels: dataset.json's classes ({names}), softmax, Dice + cross-entropy")
    return DatasetPlan(str(root), settings, reasons, facts)


def _mm(values) -> str:
    return " x ".join(f"{float(v):.3g}" for v in values)


def format_plan(plan: DatasetPlan) -> str:
    """What ``medseg3d plan`` prints: each choice and its reason, then the settings as JSON."""
    lines = [f"plan for {plan.dataset}:"] + [f"  {r}" for r in plan.reasons]
    lines += ["settings (the `auto` preset of `medseg3d crossval`):", json.dumps(plan.settings, indent=None)]
    return "\n".join(lines)
