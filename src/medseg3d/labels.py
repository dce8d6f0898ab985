"""Label schemes: file label values <-> training classes, and evaluation regions.

A :class:`LabelScheme` says which values a label file may hold, which training class each maps to, what the
classes are called, and which evaluation regions (sets of file values) are scored. BraTS 2017+ files hold
0, 1, 2, 4; the network predicts classes 0..3; predictions are written back as 0, 1, 2, 4.

Region training (``region_training=True``) replaces the softmax classes with one sigmoid output per region
(WT, TC, ET for BraTS, as the challenge winners train); :meth:`LabelScheme.regions_to_values` turns the
nested region masks back into file values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class LabelScheme:
    """How label values in files map to classes and regions.

    Args:
        name: registry name (``"brats"``, ``"brats2015"``...).
        values: file value of each training class; ``values[k]`` is written for class ``k``.
        class_names: a name per class (``values`` order).
        regions: evaluation regions, name -> file values it contains (e.g. ``"WT": (1, 2, 4)``).
        merge: extra file values accepted on reading and mapped to a class value (binary: 2 -> 1...).
        region_training: train one sigmoid output per region instead of softmax classes.
    """

    name: str
    values: tuple[int, ...]
    class_names: tuple[str, ...]
    regions: dict[str, tuple[int, ...]] = field(default_factory=dict)
    merge: dict[int, int] = field(default_factory=dict)
    region_training: bool = False

    @property
    def n_classes(self) -> int:
        """The number of classes, background included."""
        return len(self.values)

    @property
    def n_outputs(self) -> int:
        """Output channels of a network trained with this scheme."""
        return len(self.regions) if self.region_training else self.n_classes

    def _lookup(self) -> np.ndarray:
        top = max(list(self.values) + list(self.merge)) + 1
        table = np.full(top, 255, dtype=np.uint8)
        for k, v in enumerate(self.values):
            table[v] = k
        for src, dst in self.merge.items():
            table[src] = self.values.index(dst)
        return table

    def to_classes(self, labels: np.ndarray, where: str = "label map") -> np.ndarray:
        """File values -> class indices (uint8).

        Args:
            labels: a label map of integers (floats holding integers are accepted).
            where: what the map is, for the message.

        Raises:
            InputError: non-integer or NaN values, a non-integer type, or values the scheme does not know.
        """
        labels = np.asarray(labels)
        if labels.dtype.kind == "f":
            if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
                raise InputError(f"{where}: holds non-integer or NaN values; a label map must hold integers")
            labels = labels.astype(np.int64)
        elif labels.dtype.kind not in "iub":
            raise InputError(f"{where}: has data type {labels.dtype}; a label map must hold integers")
        table = self._lookup()
        present = label_values(labels)
        if present.size and (present[0] < 0 or present[-1] >= len(table) or np.any(table[present] == 255)):
            allowed = sorted(set(self.values) | set(self.merge))
            unknown = [int(v) for v in present if v < 0 or v >= len(table) or table[v] == 255]
            raise InputError(
                f"{where}: label values {unknown} do not fit the '{self.name}' scheme (found "
                f"{[int(v) for v in present]}, allowed {allowed}); choose the right --labels scheme"
            )
        return table[labels]

    def to_values(self, classes: np.ndarray) -> np.ndarray:
        """Class indices -> file values (smallest integer dtype that holds them)."""
        dtype = np.uint8 if max(self.values) < 256 else np.int16
        return np.asarray(self.values, dtype=dtype)[np.asarray(classes)]

    def region_masks(self, classes: np.ndarray) -> np.ndarray:
        """Class indices (X, Y, Z) -> boolean region masks (R, X, Y, Z) in ``regions`` order."""
        classes = np.asarray(classes)
        out = np.empty((len(self.regions),) + classes.shape, dtype=bool)
        for r, members in enumerate(self.regions.values()):
            ks = [self.values.index(v) for v in members]
            out[r] = np.isin(classes, ks)
        return out

    def regions_to_values(self, masks: np.ndarray) -> np.ndarray:
        """Boolean region masks (R, ...) -> file values, painting regions from largest to smallest.

        Regions are painted in the order given (WT, then TC, then ET for BraTS); each region is painted with
        the value of its members that no later region contains (WT minus TC = edema 2, TC minus ET = 1,
        ET = 4), which is how BraTS region outputs are turned back into a label map.
        """
        names = list(self.regions)
        out = np.zeros(masks.shape[1:], dtype=self.to_values(np.zeros(1, dtype=np.int64)).dtype)
        for r, name in enumerate(names):
            later = (
                set().union(*[set(self.regions[n]) for n in names[r + 1 :]]) if r + 1 < len(names) else set()
            )
            own = [v for v in self.regions[name] if v not in later]
            if not own:
                raise InputError(
                    f"region {name} has no value of its own; regions must be nested, largest first"
                )
            out[masks[r]] = own[0]
        return out

    def with_region_training(self, on: bool = True) -> LabelScheme:
        """This scheme trained on its regions (sigmoid outputs) or, with ``on=False``, on its classes;
        InputError when
        ``on`` and the scheme has no regions.
        """
        if on and not self.regions:
            raise InputError(f"label scheme '{self.name}' has no regions; region training needs them")
        return LabelScheme(self.name, self.values, self.class_names, self.regions, self.merge, on)

    def to_dict(self) -> dict:
        """The scheme as a JSON-ready dict, as model files store it."""
        return {
            "name": self.name,
            "values": list(self.values),
            "class_names": list(self.class_names),
            "regions": {k: list(v) for k, v in self.regions.items()},
            "merge": {str(k): v for k, v in self.merge.items()},
            "region_training": self.region_training,
        }

    @classmethod
    def from_dict(cls, d: dict) -> LabelScheme:
        """The scheme :meth:`to_dict` wrote; InputError when the dict is not a valid scheme."""
        try:
            return cls(
                d["name"],
                tuple(int(v) for v in d["values"]),
                tuple(d["class_names"]),
                {k: tuple(int(x) for x in v) for k, v in d.get("regions", {}).items()},
                {int(k): int(v) for k, v in d.get("merge", {}).items()},
                bool(d.get("region_training", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"label scheme record is incomplete or malformed ({exc})") from exc


def value_masks(labels: np.ndarray, groups) -> dict[str, np.ndarray]:
    """Boolean masks of a label map (file values), one per named group of values.

    Args:
        labels: the label map.
        groups: {name: one value or several}.

    Example:
        >>> value_masks(np.array([0, 1, 2, 4]), {"WT": (1, 2, 4), "ET": 4})["WT"].tolist()
        [False, True, True, True]
    """
    masks = {}
    for name, values in groups.items():
        values = tuple(int(v) for v in np.atleast_1d(values))
        masks[name] = labels == values[0] if len(values) == 1 else np.isin(labels, values)
    return masks


def label_values(labels: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer label map (a bincount, much faster than ``np.unique``)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = int(labels.min()), int(labels.max())
    if hi - lo > 65_535:
        return np.unique(labels).astype(np.int64)
    # subtract in a wide type: int16 - (-32768) would wrap around to negative counts' indices
    counts = np.bincount(np.subtract(labels.ravel(), lo, dtype=np.intp), minlength=hi - lo + 1)
    return np.flatnonzero(counts).astype(np.int64) + lo


BRATS = LabelScheme(
    "brats",
    (0, 1, 2, 4),
    ("background", "NCR/NET", "edema", "enhancing"),
    {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)},
    merge={3: 1},  # BraTS 2015 non-enhancing (3) was merged into 1 in 2017
)
BRATS2015 = LabelScheme(
    "brats2015",
    (0, 1, 2, 3, 4),
    ("background", "necrosis", "edema", "non-enhancing", "enhancing"),
    {"WT": (1, 2, 3, 4), "TC": (1, 3, 4), "ET": (4,)},
)
BRATS2012 = LabelScheme("brats2012", (0, 1, 2), ("background", "edema", "core"), {"WT": (1, 2), "TC": (2,)})
# Tumour vs background: the class is the BraTS whole tumour. The region is named WT, not "tumour", because a
# class and a region must have different names to be scored side by side (metrics.score_case).
BINARY = LabelScheme("binary", (0, 1), ("background", "tumour"), {"WT": (1,)}, merge={2: 1, 3: 1, 4: 1})
# nnU-Net's BraTS conversion (Task043/Dataset137): 1 edema, 2 non-enhancing/necrosis, 3 enhancing.
NNUNET_BRATS = LabelScheme(
    "nnunet-brats",
    (0, 1, 2, 3),
    ("background", "edema", "NCR/NET", "enhancing"),
    {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)},
)
# The paper's Task 1 (hand MRI, not public): five classes, one region holding every bone.
HAND = LabelScheme(
    "hand",
    (0, 1, 2, 3, 4),
    ("background", "metacarpals", "proximal", "middle", "distal"),
    {"bone": (1, 2, 3, 4)},
)

SCHEMES = {s.name: s for s in (BRATS, BRATS2015, BRATS2012, NNUNET_BRATS, BINARY, HAND)}


def get_scheme(name: str) -> LabelScheme:
    """A scheme by name; ``"regions"`` is BraTS with region (WT/TC/ET sigmoid) training."""
    if name == "regions":
        return BRATS.with_region_training()
    if name.endswith("-regions") and name[: -len("-regions")] in SCHEMES:
        return SCHEMES[name[: -len("-regions")]].with_region_training()
    if name not in SCHEMES:
        raise InputError(f"unknown label scheme '{name}'; choose one of {sorted(SCHEMES) + ['regions']}")
    return SCHEMES[name]


def scheme_from_labels(labels: dict[str, int], name: str = "dataset") -> LabelScheme:
    """A scheme from an nnU-Net/MSD ``dataset.json`` ``labels`` entry (name -> value or value -> name).

    Args:
        labels: the entry.
        name: the scheme's name.

    Raises:
        InputError: not a mapping, region labels (nnU-Net v2), values that are not integers or repeat, or no
            background 0.
    """
    if not isinstance(labels, dict):
        raise InputError("dataset.json 'labels' must be a mapping of names to values; fix the file")
    pairs = []
    for k, v in labels.items():
        if isinstance(v, (list, tuple)):  # nnU-Net v2 region labels: not a plain class
            raise InputError("dataset.json defines region labels; medseg3d reads plain class labels only")
        try:
            if str(k).strip().lstrip("-").isdigit():
                pairs.append((int(k), str(v)))
            else:
                pairs.append((int(v), str(k)))
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"dataset.json label {k!r}: {v!r} has no integer value; use name -> value pairs"
            ) from exc
    pairs.sort()
    values = [v for v, _ in pairs]
    if len(set(values)) != len(values):
        raise InputError(f"dataset.json labels repeat a value ({values}); give each class its own value")
    if not pairs or pairs[0][0] != 0:
        raise InputError("dataset.json labels must include background with value 0")
    fg = tuple(v for v, _ in pairs if v != 0)
    return LabelScheme(
        name, tuple(v for v, _ in pairs), tuple(n for _, n in pairs), {"foreground": fg} if fg else {}
    )


# ------------------------------------------------------------------------ BraTS label conventions


# The four numberings of BraTS tumour labels met in practice, told apart by their values and by which of 1
# and 2 is the edema: edema surrounds the core, so far more of its voxels touch the background.
BRATS_FAMILY = ("brats", "brats2015", "brats2012", "nnunet-brats")
_EDEMA_VALUE = {"brats": 2, "brats2015": 2, "brats2012": 1, "nnunet-brats": 1}
CONVENTION_TEXT = {
    "brats": "BraTS 2017+ (1 NCR/NET, 2 edema, 4 enhancing)",
    "brats2015": "BRATS 2013-2015 (1 necrosis, 2 edema, 3 non-enhancing, 4 enhancing)",
    "brats2012": "BRATS 2012 (1 edema, 2 core)",
    "nnunet-brats": "nnU-Net's BraTS numbering (1 edema, 2 NCR/NET, 3 enhancing)",
}
# Edema touches the background in 15 to 49 % of its voxels on the 27 shared BraTS 2018 cases and in 17 %
# on the BRATS 2012 case; the core in 0.1 to 15 % (5 %). 1.5 times the other's share is a clear call on
# all 28.
EDEMA_CONTACT_RATIO = 1.5
_MIN_VOXELS = 50


@dataclass
class LabelStats:
    """Values present in one or more label maps and, for tumour values 1 to 4, how many voxels touch the
    background outside the tumour."""

    values: set[int] = field(default_factory=set)
    touching: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(1, 5), 0))
    voxels: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(1, 5), 0))

    def add(self, labels: np.ndarray) -> LabelStats:
        """Pool the statistics of one more label map (integer valued; others are left out)."""
        labels = np.asarray(labels)
        if labels.dtype.kind == "f":
            if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
                return self
            labels = labels.astype(np.int64)
        if labels.dtype.kind not in "iub" or labels.ndim != 3:
            return self
        self.values |= {int(v) for v in label_values(labels)}
        nz = np.argwhere(labels != 0)
        if nz.size == 0:
            return self
        from scipy.ndimage import binary_fill_holes

        lo, hi = nz.min(0), nz.max(0) + 1
        crop = np.pad(labels[tuple(slice(a, b) for a, b in zip(lo, hi))], 1)  # outside the grid = background
        # only the background outside the tumour counts: holes (a removed class) are not what edema surrounds
        background = ~binary_fill_holes(crop != 0)
        near = np.zeros_like(background)
        for axis in range(3):
            for shift in (1, -1):
                near |= np.roll(background, shift, axis=axis)
        for v in self.voxels:
            mask = crop == v
            self.voxels[v] += int(np.count_nonzero(mask))
            self.touching[v] += int(np.count_nonzero(mask & near))
        return self

    def edema_value(self) -> int | None:
        """The tumour value that clearly surrounds the others (far more of its voxels touch the background
        than of any other value's), else None: too few voxels, or no clear winner."""
        present = {v: self.touching[v] / self.voxels[v] for v in self.voxels if self.voxels[v] >= _MIN_VOXELS}
        if len(present) < 2 or any(0 < self.voxels[v] < _MIN_VOXELS for v in (1, 2)):
            return None
        ranked = sorted(present, key=present.get, reverse=True)
        if present[ranked[0]] >= EDEMA_CONTACT_RATIO * present[ranked[1]]:
            return ranked[0]
        return None


def resolve_convention(
    declared: LabelScheme, stats: LabelStats, what: str, option: str = "--labels", *, by_shape: bool = True
) -> tuple[LabelScheme, str | None]:
    """The BraTS numbering that label maps really use, given the one declared with ``--labels``.

    For a scheme of the BraTS family (:data:`BRATS_FAMILY`), the values present and which label surrounds
    the other decide: 4 present -> BraTS 2017+ (or 2015 with 3); 3 without 4 -> nnU-Net's numbering when 1
    is the edema, BRATS 2015 when 2 is; only 0, 1, 2 -> BRATS 2012 when 1 is the edema, BraTS 2017+ when 2
    is. When that differs from ``declared`` the detected scheme is returned with a note to print. Other
    schemes are returned unchanged.

    Args:
        declared: the scheme the user declared.
        stats: the values found in the maps and which touch the background (:class:`LabelStats`).
        what: what the maps are (e.g. "references"), for the messages.
        option: the option the user would pass, for the messages.
        by_shape: False (for predictions, whose shapes are noisy and whose numbering is the model's) keeps
            the declared scheme for maps holding only 0, 1 and 2.

    Returns:
        (scheme to read the maps with, note or ``None``).

    Raises:
        InputError: the values fit more than one numbering and the declared one is doubtful, or fit no
            numbering of the family; the line names the values found and the ``--labels`` choices.
    """
    base = declared.name
    if base not in BRATS_FAMILY or not stats.values <= {0, 1, 2, 3, 4}:
        return declared, None
    values, edema = stats.values, stats.edema_value()
    found = sorted(values)
    if 4 in values:
        detected = "brats2015" if 3 in values and base == "brats2015" else "brats"
        if edema == 1:
            detected = None  # 4 with 1 as the edema fits no numbering: let the declared scheme judge
    elif 3 in values:
        detected = {1: "nnunet-brats", 2: "brats2015"}.get(edema)
        if detected is None and base not in ("nnunet-brats", "brats2015"):
            raise InputError(
                f"{what}: label values {found} hold 3 but no 4, which fits both nnU-Net's BraTS numbering (3 "
                f"enhancing) and BRATS 2015 without enhancing tumour; pass {option} nnunet-brats or brats2015"
            )
    elif by_shape:
        detected = {1: "brats2012", 2: "brats"}.get(edema)
    else:
        detected = (
            None  # only 0, 1, 2 in a prediction: noisy shapes are no evidence against the model's scheme
        )
    if detected is None or _EDEMA_VALUE[detected] == _EDEMA_VALUE[base]:
        if base == "brats2012" and values & {3, 4}:
            raise InputError(
                f"{what}: label values {found} are not BRATS 2012's (0, 1 edema, 2 core); pass {option} "
                + ("nnunet-brats" if 4 not in values else "brats")
            )
        return declared, None
    scheme = get_scheme(detected)
    if declared.region_training:
        scheme = scheme.with_region_training()
    note = (
        f"{what}: label values {found}, label {edema} surrounding the others: read as "
        f"{CONVENTION_TEXT[detected]}, not as {option} {base}; pass {option} {detected} to say so"
    )
    return scheme, note
