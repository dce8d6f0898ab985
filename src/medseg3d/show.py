"""Pictures of a segmentation (``medseg3d show``): three orthogonal slices with label outlines.

The slices pass through the centre of the tumour (of the prediction, else the reference, else the brain).
Reference labels are drawn as solid outlines, predictions as dashed ones, one colour per label, with a
legend, over the FLAIR (or first) channel, so that a person can look at a result instead of reading numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .datasets import find_cases
from .errors import InputError
from .io import read_volume
from .labels import LabelStats, get_scheme, resolve_convention
from .plotting import save_figure

# one colour per structure, whatever value a numbering gives it (BRATS 2012 edema is 1, BraTS 2017+ edema 2)
COLOURS = {
    "NCR/NET": "#e41a1c",
    "necrosis": "#e41a1c",
    "edema": "#4daf4a",
    "non-enhancing": "#984ea3",
    "core": "#984ea3",
    "enhancing": "#ffd92f",
}
_OTHER_COLOURS = ("#377eb8", "#ff7f00", "#a65628", "#f781bf", "#999999")


def _colour(scheme, value: int) -> str:
    name = scheme.class_names[scheme.values.index(value)]
    return COLOURS.get(name, _OTHER_COLOURS[scheme.values.index(value) % len(_OTHER_COLOURS)])


def _centre(mask: np.ndarray) -> tuple[int, int, int]:
    idx = np.argwhere(mask)
    return tuple(int(v) for v in np.round(idx.mean(0)))


def show(
    case_path, out, pred=None, labels: str = "brats", channel: str | None = None, title: str | None = None
) -> Path:
    """Draw axial, coronal and sagittal slices of ``case_path`` with outlines; write a PNG to ``out``.

    Args:
        case_path: a case folder (its label is the reference) or an image file.
        out: the PNG file.
        pred: a predicted label file to outline (dashed) (None: none).
        labels: the label scheme's name.
        channel: the channel drawn (None: FLAIR, else the first).
        title: the figure's title (None: the case, channel and centre voxel).

    Returns:
        The PNG written.

    Raises:
        InputError: a folder of several cases, an unknown channel, grids that differ, an empty image, or an
            output folder that cannot be made.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    scheme = get_scheme(labels)
    case_path = Path(case_path)
    if case_path.is_dir():
        cases = find_cases(case_path)
        if len(cases) != 1:
            raise InputError(f"{case_path}: holds {len(cases)} cases; give one case folder")
        case = cases[0]
        name = channel or ("flair" if "flair" in case.channels else next(iter(case.channels)))
        if name not in case.channels:
            raise InputError(f"{case_path}: no channel '{name}' (found {', '.join(case.channels)})")
        image = read_volume(case.channels[name])
        ref = read_volume(case.label) if case.label else None
        label = case.case_id
    else:
        image, ref, label, name = read_volume(case_path), None, case_path.name, "image"
    prediction = read_volume(pred) if pred else None
    for what, vol in (("reference", ref), ("prediction", prediction)):
        if vol is not None and vol.shape != image.shape:
            raise InputError(
                f"the {what} grid {vol.shape} differs from the image's {image.shape}; give matching files"
            )
    # each map in the numbering its values show (a BRATS 2012 truth under --labels brats is read as 2012)
    ref_scheme = pred_scheme = scheme
    notes = []
    if ref is not None:
        ref_scheme, note = resolve_convention(scheme, LabelStats().add(ref.array), f"reference {label}")
        notes.append(note)
    if prediction is not None:
        pred_scheme, note = resolve_convention(
            scheme, LabelStats().add(prediction.array), f"prediction {pred}", by_shape=False
        )
        notes.append(note)
    for note in filter(None, notes):
        print(f"medseg3d: note: {note}", file=sys.stderr)
    ref_arr = ref_scheme.to_values(ref_scheme.to_classes(ref.array)) if ref is not None else None
    pred_arr = (
        pred_scheme.to_values(pred_scheme.to_classes(prediction.array)) if prediction is not None else None
    )
    data = image.array.astype(np.float32)
    fg = next((a > 0 for a in (pred_arr, ref_arr) if a is not None and (a > 0).any()), data != 0)
    if not fg.any():
        raise InputError(f"{case_path}: the image is empty; nothing to show")
    cx, cy, cz = _centre(fg)
    lo, hi = np.percentile(data[data != 0], [1, 99.5]) if (data != 0).any() else (0, 1)
    views = [
        ("axial", lambda a: a[:, :, cz]),
        ("coronal", lambda a: a[:, cy, :]),
        ("sagittal", lambda a: a[cx, :, :]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 5))
    for ax, (view, cut) in zip(axes, views):
        ax.imshow(np.rot90(cut(data)), cmap="gray", vmin=lo, vmax=hi)
        for arr, style, arr_scheme in ((ref_arr, "solid", ref_scheme), (pred_arr, "dashed", pred_scheme)):
            if arr is None:
                continue
            sl = np.rot90(cut(arr))
            for value in arr_scheme.values[1:]:
                if (sl == value).any():
                    ax.contour(
                        sl == value,
                        levels=[0.5],
                        colors=[_colour(arr_scheme, value)],
                        linewidths=1.2,
                        linestyles=style,
                    )
        ax.set_title(view)
        ax.axis("off")
    handles = []
    legend_schemes = [s for s, a in ((ref_scheme, ref_arr), (pred_scheme, pred_arr)) if a is not None] or [
        scheme
    ]
    if len(legend_schemes) == 2 and legend_schemes[0].name == legend_schemes[1].name:
        legend_schemes = legend_schemes[:1]
    for shown in legend_schemes:
        prefix = "" if len(legend_schemes) == 1 else f"{shown.name} "
        handles += [
            Line2D([], [], color=_colour(shown, v), label=f"{prefix}{v}: {n}")
            for v, n in zip(shown.values[1:], shown.class_names[1:])
        ]
    if ref_arr is not None:
        handles.append(Line2D([], [], color="white", linestyle="solid", label="reference (solid)"))
    if pred_arr is not None:
        handles.append(Line2D([], [], color="white", linestyle="dashed", label="prediction (dashed)"))
    leg = fig.legend(
        handles=handles, loc="lower center", ncol=len(handles), facecolor="#333333", labelcolor="white"
    )
    leg.get_frame().set_edgecolor("#333333")
    fig.patch.set_facecolor("black")
    fig.suptitle(title or f"{label} ({name}) at voxel ({cx}, {cy}, {cz})", color="white")
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"{out.parent}: cannot create the output folder ({exc.strerror}); choose another -o"
        ) from exc
    return save_figure(fig, out, dpi=90, facecolor=fig.get_facecolor(), bbox_inches="tight")
