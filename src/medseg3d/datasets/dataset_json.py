"""nnU-Net/MSD ``dataset.json``: channel names and labels, BraTS labels renumbered by nnU-Net read back."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from .names import name_words


def read_dataset_json(root: Path) -> dict:
    """The JSON object of ``root/dataset.json`` (nnU-Net / MSD); InputError if it cannot be read or is no
    object."""
    path = root / "dataset.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); fix the file") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    if not isinstance(info, dict):
        raise InputError(f"{path}: must hold a JSON object with 'channel_names' (or 'modality') and 'labels'")
    return info


_BRATS_LABEL_NAMES = {0: "background", 1: "NCR/NET", 2: "edema", 4: "enhancing"}


def _brats_value_of_class(name: str) -> int | None:
    """The BraTS value (1 NCR/NET, 2 edema, 4 enhancing) a class name of a BraTS conversion stands for."""
    words = set(name_words(name.replace("/", " ")))
    text = " ".join(sorted(words))
    if words & {"edema", "oedema", "ed", "peritumoral"}:
        return 2
    if (
        words & {"non", "nonenhancing", "necrotic", "necrosis", "ncr", "net"}
        or "non-enhancing" in name.lower()
    ):
        return 1
    if words & {"enhancing", "et"} or "enhancing" in text:
        return 4
    return None


def brats_label_map(labels) -> dict[int, int] | None:
    """File value -> BraTS value for an nnU-Net/MSD ``labels`` entry that renumbered the BraTS labels.

    nnU-Net's own BraTS conversions write 1 edema, 2 NCR/NET, 3 enhancing, declared either as classes
    (MSD Task01: ``"1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"``) or as regions
    (Dataset137: ``"whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]``). Returns
    ``None`` when the labels are not BraTS's or already hold the BraTS values.
    """
    if not isinstance(labels, dict):
        return None
    regions: dict[str, set[int]] = {}
    classes: dict[int, str] = {}
    try:
        for k, v in labels.items():
            if isinstance(v, (list, tuple)):
                regions[str(k).lower()] = {int(x) for x in v}
            elif str(k).strip().lstrip("-").isdigit():
                classes[int(k)] = str(v)
            else:
                classes[int(v)] = str(k)
    except (TypeError, ValueError):
        return None
    if regions:

        def region(*keys):
            return next(
                (vals for name, vals in regions.items() if any(k in name_words(name) for k in keys)), None
            )

        whole, core, enhancing = region("whole", "wt"), region("core", "tc"), region("enhancing", "et")
        if whole is None or core is None or enhancing is None or not enhancing <= core <= whole:
            return None
        mapping = {v: 4 for v in enhancing} | {v: 1 for v in core - enhancing} | {v: 2 for v in whole - core}
    else:
        mapping = {}
        for value, name in classes.items():
            if value == 0:
                continue
            brats = _brats_value_of_class(name)
            if brats is None:
                return None
            mapping[value] = brats
        if not mapping or len(set(mapping.values())) != len(mapping):
            return None
    if all(k == v for k, v in mapping.items()):
        return None
    return dict(sorted(mapping.items()))


def dataset_labels(root: str | Path) -> dict | None:
    """The ``labels`` entry of an nnU-Net/MSD ``dataset.json`` at ``root``, or ``None``.

    For a conversion that renumbered the BraTS labels (see :func:`brats_label_map`), the labels as
    :meth:`Case.load` returns them: BraTS values (``{"background": 0, "NCR/NET": 1, "edema": 2,
    "enhancing": 4}``).
    """
    root = Path(root)
    if root.is_dir() and (root / "dataset.json").is_file():
        labels = read_dataset_json(root).get("labels")
        mapping = brats_label_map(labels)
        if mapping:
            return {_BRATS_LABEL_NAMES[v]: v for v in sorted({0, *mapping.values()})}
        return labels
    return None
