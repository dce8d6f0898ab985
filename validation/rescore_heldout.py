"""Score a model file's post-processing on label maps that a cross-validation kept, without running a network.

A cross-validation keeps each fold's held-out label maps (``ROOT/fold<k>/pred-<VARIANT>/<case>.nii.gz``, made
by the fold's models, which never saw the case). This applies to them what ``medseg3d predict MODEL`` applies
to its labels after the network (the model file's ``inference`` metadata: far-component removal, lesion-size
rule, enhancing rule, resolved exactly as ``predict`` resolves them), writes the maps to ``SCRATCH`` and
scores them whole-case and lesion-wise (BraTS 2023 rules) into ``ROOT/fold<k>/pred-<NAME>/metrics.csv``,
which ``medseg3d.experiments.crossval.bundle.card_scores`` and ``crossval --report`` read. It is how the cards
of bundled models that share their networks with another (``brats-v2.1`` = ``brats-v2``'s networks,
post-processed otherwise) are scored exactly as they run.

    python validation/rescore_heldout.py docs/runs/brats-v2-cv/cv27-v1 --variant ens-cv27-strong-sw \\
        --model src/medseg3d/weights/brats-v2.1.safetensors --name v2.1 --data ../shared/data/brats2018 \\
        --scratch /tmp/rescore
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np


def rescore(root: Path, variant: str, model: Path, name: str, data: Path, scratch: Path) -> list[Path]:
    """Post-process every kept held-out map of ``variant`` as ``model`` runs and score it as ``pred-<name>``.

    Args:
        root: the cross-validation folder (``fold<k>/pred-<variant>/``).
        variant: the kept label maps' variant.
        model: the model file whose ``inference`` metadata says the post-processing.
        name: the scored variant's name (``fold<k>/pred-<name>/metrics.csv``).
        data: the dataset with the references.
        scratch: where the post-processed maps go (outside the repository).

    Returns:
        The metrics files written.
    """
    from medseg3d.evaluate import evaluate
    from medseg3d.experiments.crossval.scoring import _hd95_penalty
    from medseg3d.models import load_model
    from medseg3d.postprocess import postprocess
    from medseg3d.predict import PredictOptions

    loaded = load_model(model, refine="none")
    opts = PredictOptions().resolve(loaded)
    written = []
    for fold in sorted(root.glob("fold*")):
        maps = sorted((fold / f"pred-{variant}").glob("*.nii.gz"))
        if not maps:
            continue
        out_maps = scratch / fold.name / f"pred-{name}"
        out_maps.mkdir(parents=True, exist_ok=True)
        for path in maps:
            img = nib.load(str(path))
            labels = np.asarray(img.dataobj).astype(np.int16)
            spacing = tuple(float(s) for s in img.header.get_zooms()[:3])
            kw = opts.postprocessing(spacing)
            new = postprocess(
                labels,
                loaded.scheme,
                spacing=spacing,
                min_component=kw["min_component"],
                min_enhancing=kw["min_enhancing"],
                max_distance_mm=kw["max_distance"],
                min_lesion=kw["min_lesion"],
            )
            out = nib.Nifti1Image(new.astype(np.uint8), img.affine, img.header)
            out.set_data_dtype(np.uint8)
            nib.save(out, str(out_maps / path.name))
        csv = fold / f"pred-{name}" / "metrics.csv"
        csv.parent.mkdir(exist_ok=True)
        evaluate(
            out_maps,
            data,
            loaded.scheme,
            out_csv=csv,
            hd95_penalty=_hd95_penalty(loaded.scheme),
            progress=False,
            lesion_wise=True,
        )
        written.append(csv)
        print(f"{fold.name}: {len(maps)} cases -> {csv}")
    return written


def main(argv=None) -> int:
    """Command line: see the module's docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path)
    p.add_argument("--variant", required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--scratch", type=Path, required=True)
    a = p.parse_args(argv)
    if not rescore(a.root, a.variant, a.model, a.name, a.data, a.scratch):
        print(f"{a.root}: no fold*/pred-{a.variant}/*.nii.gz", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
