"""Commands that segment and look at results: ``predict``, ``align`` (alias ``preprocess``), ``export``,
``evaluate``, ``show``, ``compare``, ``models``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..precision import PRECISIONS
from .common import (
    add_channel_flags,
    add_template_fit,
    channel_flags,
    passes,
    region_volumes,
    shard,
)

PREDICT_EXIT_CODES = """exit codes:
  0  every output written and no quality check fired
  3  every output written, but a quality check fired for a case (channels that look swapped, brain outside a
     scan's field of view, a registration or skull stripping that looks wrong, tumour cut by the brain mask,
     low confidence): look at it; its <stem>.json lists the checks under "checks"
  2  refused: the input or an option (one 'medseg3d: error:' line); with --strict also a case whose checks \
fire,
     before anything of it is written
  1  anything else (a bug: please report it)
Warnings and errors go to standard error; --json prints one JSON object per case on standard output."""


def cmd_predict(args) -> int:
    """``medseg3d predict``: segment the inputs; returns 3 (EXIT_REVIEW) when a check fired, else 0."""

    from ..io import output_stem
    from ..predict import PredictOptions, predict
    from ..review import EXIT_OK, EXIT_REVIEW, collecting

    options = PredictOptions(
        mirror=args.mirror,
        sliding_window=args.sliding_window,
        overlap=args.overlap,
        min_component=args.min_component,
        min_enhancing=args.min_enhancing,
        min_lesion=args.min_lesion,
        max_distance=args.max_distance,
        align=args.align,
        space=args.space,
        uncertainty=args.uncertainty,
        template_fit=args.template_fit,
        trust_names=args.trust_names,
        strict=args.strict,
    )
    with collecting() as checks:
        written = predict(
            args.model,
            args.inputs,
            args.output,
            options,
            save_probabilities=args.probabilities,
            force=args.force,
            shard=args.shard,
            progress=not (args.quiet or args.json),
            device=args.device,
            precision=args.precision,
            channel_files=channel_flags(args),
            report=args.report,
            anonymise=args.anonymise,
            output_format=args.output_format,
            refine=args.refine,
        )
    if args.json:
        by_case: dict = {}
        for c in checks:
            by_case.setdefault(c.case, []).append(c.to_dict())
        for path in written:  # a dataset's outputs are named after their cases; one case takes all checks
            case = output_stem(path).name
            fired = [c.to_dict() for c in checks] if len(written) == 1 else by_case.get(case, [])
            print(
                json.dumps(
                    {
                        "case": fired[0]["case"] if fired else case,
                        "output": str(path),
                        "status": "review" if fired else "ok",
                        "checks": fired,
                    }
                )
            )
    elif not args.quiet:
        for path in written[:10]:
            print(f"wrote {path}")
        if len(written) > 10:
            print(f"... and {len(written) - 10} more")
    return EXIT_REVIEW if checks else EXIT_OK


def cmd_align(args) -> None:
    """``medseg3d align``: raw scans -> BraTS-like channels on the BraTS grid, printing what was written."""
    from ..datasets import resolve_case_channels
    from ..raw.outputs import write_preprocessed

    case, lines = resolve_case_channels(
        [Path(p) for p in args.inputs], ("flair", "t1", "t1ce", "t2"), channel_flags(args)
    )
    for line in lines if not args.quiet else []:
        print(line)
    for line in write_preprocessed(
        case,
        args.output,
        mode=args.align,
        force=args.force,
        progress=None if args.quiet else print,
        template_fit=args.template_fit,
    ):
        print(line)


def cmd_export(args) -> None:
    """``medseg3d export``: write a model as ONNX or TorchScript."""
    from ..export import export_model

    print(f"wrote {export_model(args.model, args.format, args.output)}")


def cmd_evaluate(args) -> None:
    """``medseg3d evaluate``: score predictions against references; prints the summary, writes the per-case
    CSV."""
    from ..evaluate import evaluate

    out_csv = args.csv or Path(args.pred_dir) / "metrics.csv"
    _, summary = evaluate(
        args.pred_dir,
        args.ref,
        args.labels,
        out_csv=out_csv,
        hd95_penalty=args.hd95_penalty,
        progress=not args.quiet,
        ref_labels=args.ref_labels,
        lesion_wise=args.lesion_wise,
    )
    print(summary)
    print(f"\nper-case metrics: {out_csv}")


def cmd_show(args) -> None:
    """``medseg3d show``: draw a case's slices with outlines to a PNG."""
    from ..show import show

    print(f"wrote {show(args.case, args.output, pred=args.pred, labels=args.labels, channel=args.channel)}")


def cmd_compare(args) -> None:
    """``medseg3d compare``: what changed between two scans of one patient."""
    from ..clinical.compare import compare

    say = None if args.quiet else (lambda line: print(line, flush=True))
    compare(
        args.prior, args.current, args.output, model=args.model, register=not args.no_register, progress=say
    )


def cmd_models(args) -> None:
    """``medseg3d models``: list the bundled models."""
    from ..models import describe_models

    print(describe_models())


def add_predict(sub) -> None:
    """Add the ``predict`` sub-command."""
    s = sub.add_parser(
        "predict",
        help="segment a case, a list of channel files or a whole dataset",
        epilog=PREDICT_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("model", help="bundled model name (see `medseg3d models`), run folder or model file")
    s.add_argument(
        "inputs", nargs="*", help="case folder, channel files in the model's order, or dataset folder"
    )
    s.add_argument("-o", "--output", required=True, help="output file (one case) or folder (dataset)")
    s.add_argument(
        "--align",
        "--preprocess",
        dest="align",
        choices=["auto", "full", "resample", "none"],
        default="auto",
        help="how scans reach the model's grid (--preprocess is its old name). auto (default): "
        "scans not already on one skull-stripped grid in the model's space are "
        "co-registered, skull-stripped and aligned to it (full), or only reoriented and resampled "
        "(resample); none: use them as they are",
    )
    s.add_argument(
        "--space",
        choices=["native", "atlas"],
        default="native",
        help="native (default): labels on the T1ce's own grid; atlas: on the 240x240x155 BraTS grid",
    )
    add_template_fit(s)
    add_channel_flags(s)
    mirror = s.add_mutually_exclusive_group()
    mirror.add_argument(
        "--mirror",
        "--tta",
        dest="mirror",
        action="store_const",
        const=True,
        default=None,
        help="average over the 8 mirrored copies, test-time augmentation (8x slower; --tta is its old name); "
        "default: as the model file says (a model whose cross-validation chose mirroring mirrors)",
    )
    mirror.add_argument(
        "--no-mirror",
        dest="mirror",
        action="store_const",
        const=False,
        help="one pass, whatever the model says",
    )
    window = s.add_mutually_exclusive_group()
    window.add_argument(
        "--sliding-window",
        dest="sliding_window",
        action="store_const",
        const=True,
        default=None,
        help="infer in windows of the training patch size (default: as the model file says)",
    )
    window.add_argument(
        "--whole-volume",
        dest="sliding_window",
        action="store_const",
        const=False,
        help="infer on the whole cropped volume at once",
    )
    s.add_argument("--overlap", type=float, help="sliding-window overlap (default: the model's, else 0.5)")
    s.add_argument(
        "--min-component", type=int, default=0, help="remove tumour components smaller than N voxels"
    )
    s.add_argument(
        "--min-enhancing",
        type=int,
        default=None,
        help="BraTS: if fewer than N voxels are enhancing tumour, label them necrosis (cases without "
        "enhancement score ET Dice 1 only with none predicted); default: the model's own volume "
        "threshold (its card in `medseg3d models` says), else off; 0: off",
    )
    s.add_argument(
        "--min-lesion",
        type=region_volumes,
        default=None,
        metavar="WT=MM3,TC=MM3,ET=MM3",
        help="BraTS: components of a region smaller than its volume become the next outer region "
        "(enhancing -> necrosis, core -> oedema, whole tumour -> background), e.g. "
        "WT=1000,TC=200,ET=100; default: the model's own (its card says), else off; 0: off",
    )
    s.add_argument(
        "--max-distance",
        type=float,
        default=None,
        metavar="MM",
        help="remove tumour components farther than MM millimetres from the largest one (a "
        "false-positive blob far from the tumour); default: the model's own (its card "
        "in `medseg3d models` says), else off; 0: off",
    )
    s.add_argument(
        "--refine",
        default="auto",
        metavar="MODEL",
        help="re-segment the box around the tumour with a finer refiner model (bundled name, run folder "
        "or file); default: the refiner the model names, if any; 'none': the model alone",
    )
    s.add_argument("--probabilities", action="store_true", help="also write the probability maps")
    s.add_argument(
        "--report",
        action="store_true",
        help="also write the report a clinician reads: <stem>.report.html, <stem>.report.pdf and, for a "
        "DICOM input, <stem>.report.dcm (an Encapsulated PDF in the study): patient and study, "
        "volumes, location, RANO diameters, pictures, quality checks; and <stem>.json",
    )
    s.add_argument(
        "--anonymise",
        action="store_true",
        help="with --report: leave the patient, study and series details out (and write no .dcm)",
    )
    s.add_argument(
        "--uncertainty",
        nargs="?",
        type=passes,
        const="auto",
        metavar="PASSES",
        help="also write <stem>_uncertainty (voxel-wise normalised entropy of PASSES mirrored passes "
        "(2, 4 or 8), or of an ensemble's members ('members')) and the case's confidence in "
        "<stem>.json; the labels do not change. Default: an ensemble's members, at no extra cost, "
        "with each member's tumour volumes; else 2 passes, about 2x the inference (8 with --mirror, "
        "at no extra cost)",
    )
    s.add_argument(
        "--output-format",
        choices=["nifti", "dicom-seg"],
        default=None,
        help="dicom-seg: also write <stem>.seg.dcm, a DICOM Segmentation object referencing the input "
        "DICOM series (the default when the input is DICOM); nifti: do not",
    )
    s.add_argument("--force", action="store_true", help="overwrite existing outputs")
    s.add_argument("--shard", type=shard, help="INDEX/COUNT: this process takes every COUNT-th case")
    s.add_argument("--device", default="auto")
    s.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="fp32 or mixed (bfloat16 on CPUs with native bfloat16, float16 on CUDA); "
        "auto (default): as the model file says, else fp32 on the CPU",
    )
    s.add_argument(
        "--strict",
        action="store_true",
        help="refuse (exit 2, nothing written) a case whose quality checks fire, instead of writing it "
        "and exiting 3",
    )
    s.add_argument(
        "--trust-names",
        action="store_true",
        help="where file names and the channels' intensities confidently disagree about the sequences, "
        "segment as named (flagged for review) instead of refusing",
    )
    s.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per case on standard output (output, status, checks) and nothing "
        "else there; implies --quiet",
    )
    s.add_argument(
        "--quiet", action="store_true", help="no progress; warnings and errors still go to standard error"
    )
    s.set_defaults(func=cmd_predict)


def add_align(sub) -> None:
    """Add the ``align`` sub-command."""
    s = sub.add_parser(
        "align",
        aliases=["preprocess"],
        help="raw scans -> BraTS-like channels on the BraTS grid, brain mask, transforms, QC picture "
        "(`preprocess` is its old name)",
    )
    s.add_argument("inputs", nargs="*", help="FLAIR T1 T1CE T2 files (or DICOM folders), or one case folder")
    s.add_argument("-o", "--output", required=True, help="output folder (written as a BraTS case folder)")
    s.add_argument(
        "--align",
        "--preprocess",
        dest="align",
        choices=["full", "auto"],
        default="full",
        help="full (default): always co-register, skull-strip and align; auto: only when needed "
        "(--preprocess is its old name)",
    )
    add_template_fit(s)
    add_channel_flags(s)
    s.add_argument("--force", action="store_true", help="overwrite an existing output folder")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_align)


def add_export(sub) -> None:
    """Add the ``export`` sub-command."""
    s = sub.add_parser("export", help="write a self-describing ONNX or TorchScript model (metadata inside)")
    s.add_argument("model", help="bundled model name, run folder or .safetensors file")
    s.add_argument("--format", default="onnx", choices=["onnx", "torchscript"])
    s.add_argument("-o", "--output", required=True, help="output file (.onnx or .pt)")
    s.set_defaults(func=cmd_export)


def add_evaluate(sub) -> None:
    """Add the ``evaluate`` sub-command."""
    s = sub.add_parser("evaluate", help="score predictions against references (metrics.csv + summary)")
    s.add_argument("pred_dir")
    s.add_argument("ref", help="folder of reference label files or a dataset folder")
    s.add_argument(
        "--labels",
        help="label scheme (brats, brats2015, brats2012, binary...; default: the classes of the references' "
        "dataset.json when they are not a brain tumour's, else brats)",
    )
    s.add_argument(
        "--ref-labels",
        help="label numbering of the references when it differs from --labels "
        "(e.g. brats2012, nnunet-brats; detected from the values when clear)",
    )
    s.add_argument("--csv", help="where to write the per-case metrics (default PRED_DIR/metrics.csv)")
    s.add_argument(
        "--hd95-penalty", action="store_true", help="HD95 = 373.13 mm when one mask is empty (BraTS)"
    )
    s.add_argument(
        "--lesion-wise",
        action="store_true",
        help="add BraTS 2023 lesion-wise Dice/HD95 per region (missed or false-positive lesion: 0 / 374 mm)",
    )
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_evaluate)


def add_show(sub) -> None:
    """Add the ``show`` sub-command."""
    s = sub.add_parser("show", help="draw slices through the tumour with reference/prediction outlines (PNG)")
    s.add_argument("case", help="case folder (its label is the reference) or an image file")
    s.add_argument("--pred", help="predicted label file to outline (dashed)")
    s.add_argument("-o", "--output", required=True, help="PNG file")
    s.add_argument("--labels", default="brats")
    s.add_argument("--channel", help="channel to draw (default flair)")
    s.set_defaults(func=cmd_show)


def add_compare(sub) -> None:
    """Add the ``compare`` sub-command."""
    s = sub.add_parser(
        "compare", help="follow-up: what changed between two scans (volumes, RANO, new lesions, page)"
    )
    s.add_argument(
        "prior", help="earlier scans (case folder, raw files' folder, DICOM study) or predict output"
    )
    s.add_argument("current", help="later scans, or predict output, as PRIOR")
    s.add_argument(
        "-o", "--output", required=True, help="folder for compare.json, compare.html, pictures, change map"
    )
    s.add_argument("--model", default="brats", help="model to segment scans with (default: bundled brats)")
    s.add_argument(
        "--no-register", action="store_true", help="compare as placed in SRI24, without the rigid fit"
    )
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_compare)


def add_models(sub) -> None:
    """Add the ``models`` sub-command."""
    s = sub.add_parser("models", help="list the bundled models")
    s.set_defaults(func=cmd_models)
