"""Check ``medseg3d.clinical.location`` on the 27 shared BraTS 2018 references: against VASARI-auto, and by
eye.

``vasari``: runs VASARI-auto (pip ``vasari-auto`` 0.1.0; needs antspyx, pandas, seaborn, scikit-image, so run
it from an environment that has them) on each reference segmentation and compares the features that both
compute, on the same masks:

- side (VASARI F2: the side holding more lesion voxels, WT) against our WT's larger side;
- location (F1: the structure, lobes and brainstem/corpus callosum/thalamus together, holding the largest
  share of the non-oedema tumour, TC) against our TC's largest share among the same eight;
- ependymal (F19), cortical (F20), deep white matter (F21: brainstem, corpus callosum, internal capsule) on
  TC;
- enhancing tumour crossing the midline (F23) against our ET ``crosses_midline``.

VASARI-auto multiplies the label array with its masks voxel by voxel, so the labels are given to it in the
masks' own array layout (the BraTS array flipped along the second axis) and with its labels (1 non-enhancing,
2 oedema, 3 enhancing). Its midline is index ``shape[z_dim] / 2`` along the first axis; the default
``z_dim=-1`` gives 77 on the 240 x 240 x 155 grid (the MNI grid's midline, 91, is the third axis' half), so
``z_dim=0`` (120) is passed.

``sheets``: draws, per case, the axial and sagittal FLAIR slices through the tumour's centre with the
tumour outlined, nine cases per PNG, in radiological convention without any atlas drawn, for a by-eye call
of the side and the main lobe; ``hand`` then compares calls typed into a JSON file with ours.

    /tmp/vasenv/bin/python validation/location_check.py vasari --out docs/runs/location_vasari.json
    python validation/location_check.py sheets --out runs/location_sheets
    python validation/location_check.py hand --calls docs/runs/location_hand_calls.json
    python validation/location_check.py time
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

from medseg3d.clinical.location import case_location, on_atlas_grid
from medseg3d.io import read_volume
from medseg3d.labels import get_scheme

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "brats2018"
EIGHT = {
    "frontal": "Frontal Lobe",
    "temporal": "Temporal Lobe",
    "insula": "Insula",
    "parietal": "Parietal Lobe",
    "occipital": "Occipital Lobe",
    "brainstem": "Brainstem",
    "corpus callosum": "Corpus callosum",
    "thalamus": "Thalamus",
}
F1 = {
    1: "Frontal Lobe",
    2: "Temporal Lobe",
    3: "Insula",
    4: "Parietal Lobe",
    5: "Occipital Lobe",
    6: "Brainstem",
    7: "Corpus callosum",
    8: "Thalamus",
}


def references(data: Path):
    return sorted(data.glob("*/*_seg.nii.gz"))


def ours(path: Path) -> dict:
    vol = read_volume(path)
    t = time.perf_counter()
    loc = case_location(on_atlas_grid(vol), get_scheme("brats"))
    return loc | {"seconds": round(time.perf_counter() - t, 3)}


def our_top_of_eight(region: dict) -> str:
    shares = {k: v for k, v in region["lobes"].items() if k in EIGHT}
    for name in ("brainstem", "corpus callosum", "thalamus"):
        shares[name] = region["deep_ml"][name] / region["volume_ml"]
    return EIGHT[max(shares, key=shares.get)]


def run_vasari(args) -> None:
    import nibabel as nib

    # only its registration uses ANTs; not needed here
    sys.modules.setdefault("ants", types.ModuleType("ants"))
    from vasari_auto.vasari_auto import get_vasari_features

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in references(args.data):
            case = path.parent.name
            labels = np.asarray(nib.load(path).dataobj).astype(np.int16)
            theirs = np.zeros_like(labels)
            theirs[labels == 1], theirs[labels == 2], theirs[labels == 4] = 1, 2, 3
            file = Path(tmp) / f"{case}.nii.gz"
            nib.save(nib.Nifti1Image(np.ascontiguousarray(theirs[:, ::-1, :]), np.eye(4)), file)
            v = get_vasari_features(str(file), template_space="sri24", z_dim=0).iloc[0]
            mine = ours(path)
            wt, tc, et = (mine["regions"][r] for r in ("WT", "TC", "ET"))
            row = {
                "case": case,
                "seconds_ours": mine["seconds"],
                "seconds_vasari": round(float(v["time_taken_seconds"]), 2),
                "side": {
                    "vasari": {1: "right", 2: "bilateral", 3: "left"}[int(v["F2 Side of Tumour Epicenter"])],
                    "ours": "left" if wt["side_share"]["left"] >= 0.5 else "right",
                    "ours_word": wt["hemisphere"],
                },
                "location": {"vasari": F1[int(v["F1 Tumour Location"])], "ours": our_top_of_eight(tc)},
                "ependymal": {
                    "vasari": int(v["F19 Ependymal Invasion"]) == 2,
                    "ours": tc["ventricles"]["contact"],
                    "ours_ml": tc["ventricles"]["ml"],
                },
                "cortical": {
                    "vasari": int(v["F20 Cortical involvement"]) == 2,
                    "ours": tc["cortex"]["contact"],
                    "ours_ml": tc["cortex"]["ml"],
                },
                "deep_wm": {
                    "vasari": int(v["F21 Deep WM invasion"]) == 2,
                    "ours": bool(set(tc["deep_structures"]) - {"thalamus"}),
                },
                "et_crosses_midline": {
                    "vasari": int(v["F23 CET Crosses midline"]) == 3,
                    "ours": et.get("crosses_midline", False),
                    "ours_beyond_ml": et.get("beyond_midline_ml", 0.0),
                },
            }
            rows.append(row)
            print(
                case, {k: (r["vasari"], r["ours"]) for k, r in row.items() if isinstance(r, dict)}, flush=True
            )
    agree = {
        k: sum(r[k]["vasari"] == r[k]["ours"] for r in rows) for k in rows[0] if isinstance(rows[0][k], dict)
    }
    summary = {
        "cases": len(rows),
        "agree": agree,
        "seconds_ours_max": max(r["seconds_ours"] for r in rows),
        "command": "/tmp/vasenv/bin/python validation/location_check.py vasari --out " + str(args.out),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "cases": rows}, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=1))


def run_sheets(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medseg3d.clinical.pictures import radiological_slices

    args.out.mkdir(parents=True, exist_ok=True)
    paths = references(args.data)
    for sheet in range(0, len(paths), 9):
        fig, axes = plt.subplots(3, 6, figsize=(15, 8), dpi=80)
        fig.patch.set_facecolor("black")
        for n, path in enumerate(paths[sheet : sheet + 9]):
            labels = read_volume(path)
            flair = read_volume(next(path.parent.glob("*_flair.nii.gz")))
            centre = np.argwhere(labels.array > 0).mean(axis=0).round().astype(int)
            views = radiological_slices(flair.array, labels.array, labels.affine, centre)
            for k, view in enumerate(("axial", "sagittal")):
                image, sl, aspect, letters = views[view]
                ax = axes[n // 3, 2 * (n % 3) + k]
                ax.imshow(image, cmap="gray", aspect=aspect)
                ax.contour(sl > 0, levels=[0.5], colors=["#ff3030"], linewidths=0.8)
                ax.set_title(
                    f"{sheet + n + 1} {path.parent.name[7:]} {view} ({letters[0]}|{letters[1]})",
                    color="white",
                    fontsize=8,
                )
                ax.axis("off")
        fig.savefig(args.out / f"sheet{sheet // 9 + 1}.png", facecolor="black", bbox_inches="tight")
        plt.close(fig)
        print(args.out / f"sheet{sheet // 9 + 1}.png")


def run_hand(args) -> None:
    calls = json.loads(args.calls.read_text(encoding="utf-8"))["calls"]
    side = lobe = 0
    for path in references(args.data):
        case = path.parent.name
        wt = ours(path)["regions"]["WT"]
        mine = {"side": wt["hemisphere"], "lobe": wt["main_lobe"]}
        hand = calls[case]
        side += hand["side"] == mine["side"]
        lobe += hand["lobe"] == mine["lobe"]
        if hand["side"] != mine["side"] or hand["lobe"] != mine["lobe"]:
            print(f"{case}: by eye {hand}, ours {mine} ({wt['lobes']})")
    print(f"side agrees on {side}/{len(calls)}, main lobe on {lobe}/{len(calls)}")


def run_time(args) -> None:
    """Location + diameters per case as ``predict --report`` runs them (atlas read once per process)."""
    from medseg3d.clinical.diameters import case_diameters
    from medseg3d.clinical.location import load_location_atlas

    scheme = get_scheme("brats")
    t = time.perf_counter()
    load_location_atlas()
    print(f"atlas read once: {time.perf_counter() - t:.2f} s")
    seconds, cpu = [], []
    for path in references(args.data):
        vol = read_volume(path)
        t, c = time.perf_counter(), time.process_time()
        case_location(on_atlas_grid(vol), scheme)
        t1 = time.perf_counter()
        case_diameters(vol.array, vol.affine, scheme)
        seconds.append((t1 - t, time.perf_counter() - t1))
        cpu.append(time.process_time() - c)  # what it costs; wall time also shows how busy the machine was
    both = sorted(a + b for a, b in seconds)
    print(
        f"{len(both)} cases: location median {np.median([a for a, _ in seconds]):.2f} s, diameters median "
        f"{np.median([b for _, b in seconds]):.2f} s, together median {np.median(both):.2f} s, max "
        f"{both[-1]:.2f} s wall; CPU median {np.median(cpu):.2f} s, max {max(cpu):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("vasari", "sheets", "hand", "time"))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("runs/location_check"))
    parser.add_argument("--calls", type=Path)
    args = parser.parse_args()
    {"vasari": run_vasari, "sheets": run_sheets, "hand": run_hand, "time": run_time}[args.what](args)


if __name__ == "__main__":
    main()
