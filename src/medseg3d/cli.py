"""``medseg3d <command>``: a thin layer over the Python API.

Errors a user can cause end in one line on stderr (``medseg3d: error: ...``) and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import MedsegError
from .precision import PRECISIONS


def _positive_triple(cast, kind: str, example: str):
    """An argparse type: three positive comma-separated values (sizes or spacings), e.g. 96,96,96."""

    def parse(text: str) -> tuple:
        try:
            values = tuple(cast(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind} like {example}, got {text!r}") from None
        if len(values) != 3 or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"expected three positive {kind} like {example}, got {text!r}")
        return values

    return parse


_ints = _positive_triple(int, "integers", "96,96,96")
_floats = _positive_triple(float, "numbers", "2,2,2")


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected INDEX/COUNT like 0/4, got {text!r}") from None
    return i, n


def _passes(text: str) -> int | str:
    """``--uncertainty`` / ``--passes``: 2, 4 or 8 mirrored passes, ``members`` (an ensemble's), or ``auto``
    (``--uncertainty`` without a number; argparse passes its string constant through here too)."""
    if text in ("members", "auto"):
        return text
    if text in ("2", "4", "8"):
        return int(text)
    raise argparse.ArgumentTypeError(f"expected 2, 4 or 8 mirrored passes, or 'members' for an ensemble, got {text!r}")


def _kv(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE like base_channels=16, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def cmd_info(args) -> None:
    from .info import describe

    print(describe(args.path, layout=args.layout))


def cmd_cache(args) -> None:
    from .cache import prepare_dataset

    if args.command == "prepare":  # the command's old name, kept as an alias for one release
        print("medseg3d: note: `medseg3d prepare` is now `medseg3d cache`; the old name will go in a later release",
              file=sys.stderr)
    from .preprocess import PrepConfig

    crop = "fixed" if args.crop else args.crop_mode
    config = PrepConfig(crop=crop, crop_size=args.crop, downsample=args.downsample, spacing=args.spacing)
    summary = prepare_dataset(args.dataset, args.out, config, args.labels, args.modalities, args.layout,
                              workers=args.workers)
    print(f"prepared {len(summary['prepared'])}, skipped {len(summary['skipped'])} (already done), "
          f"failed {len(summary['failed'])} -> {args.out}")
    for case, reason in summary["failed"].items():
        print(f"  failed {case}: {reason}")
    if summary["failed"]:
        sys.exit(1)


def cmd_split(args) -> None:
    from .datasets import find_cases, make_split, save_split

    ids = [c.case_id for c in find_cases(args.dataset, layout=args.layout)]
    if args.folds:
        split = make_split(ids, folds=args.folds, seed=args.seed)
    else:
        split = make_split(ids, counts=args.counts, fractions=args.fractions, seed=args.seed)
    save_split(split, args.out)
    print(f"wrote {args.out} ({split['kind']}, {len(ids)} cases, seed {args.seed})")


def cmd_nets(args) -> None:
    from .nets import describe_networks

    print(describe_networks(in_channels=args.in_channels, n_classes=args.classes))


def cmd_train(args) -> None:
    from .datasets import find_cases, layout_notes
    from .errors import InputError
    from .train import TrainConfig, train

    try:  # say what the layout assumed (e.g. nnU-Net's channel order) before hours of training on it
        cases = find_cases(args.dataset, layout=args.layout) if args.dataset else []
    except InputError:
        cases = []  # train reports the dataset's problem itself
    for note in layout_notes(cases):
        print(f"note: {note}")
    unlabelled = [c.case_id for c in cases if c.label is None]
    if unlabelled:  # the cache takes such cases, and training then fails inside its loop
        raise InputError(f"{args.dataset}: {len(unlabelled)} case(s) have no label file (e.g. {unlabelled[0]}); "
                         "training needs labels")
    overrides = {k: getattr(args, k) for k in (
        "net", "loss", "labels", "modalities", "layout", "downsample", "spacing", "patch", "lr", "batch",
        "accumulate", "epochs", "minutes", "fold", "folds", "seed", "device", "augment", "schedule", "val_every",
        "iters_per_epoch", "cache", "split_file", "foreground_p", "precision")}
    if args.compile:
        overrides["compile"] = True
    if args.output_prior:
        overrides["output_prior"] = True
    if args.all_cases:
        overrides["all_cases"] = True
    if args.crop:
        overrides["crop"], overrides["crop_size"] = "fixed", args.crop
    if args.net_arg:
        overrides["net_args"] = dict(args.net_arg)
    if args.skip_bad_cases:
        overrides["skip_bad_cases"] = True
    cfg = TrainConfig.from_preset(args.preset, dataset=args.dataset, out=args.out, resume=args.resume,
                                  progress=not args.quiet, **overrides)
    if args.resume:  # settings come from the run folder; what was typed must agree with them (budget aside)
        from .train import PRESETS, resume_config

        typed = {k for k, v in overrides.items() if v is not None} | set(PRESETS.get(args.preset or "", {}))
        given = {k: getattr(cfg, k) for k in typed} | {"dataset": args.dataset, "progress": not args.quiet}
        cfg = resume_config(args.out, ({"preset": args.preset} if args.preset else {}) | given)
    summary = train(cfg, settings_merged=args.resume)
    print(f"done: {summary['epochs']} epochs, {summary['iterations']} iterations, {summary['seconds'] / 60:.1f} min; "
          f"best validation score {summary['best_score']:.4f} (epoch {summary['best_epoch']}); model {summary['model']}")


PREDICT_EXIT_CODES = """exit codes:
  0  every output written and no quality check fired
  3  every output written, but a quality check fired for a case (channels that look swapped, brain outside a
     scan's field of view, a registration or skull stripping that looks wrong, tumour cut by the brain mask,
     low confidence): look at it; its <stem>.json lists the checks under "checks"
  2  refused: the input or an option (one 'medseg3d: error:' line); with --strict also a case whose checks fire,
     before anything of it is written
  1  anything else (a bug: please report it)
Warnings and errors go to standard error; --json prints one JSON object per case on standard output."""


def cmd_predict(args) -> int:
    import json

    from .io import output_stem
    from .predict import PredictOptions, predict
    from .review import EXIT_OK, EXIT_REVIEW, collecting

    options = PredictOptions(mirror=args.mirror, sliding_window=args.sliding_window, overlap=args.overlap,
                             min_component=args.min_component, min_enhancing=args.min_enhancing,
                             max_distance=args.max_distance, align=args.align, space=args.space,
                             uncertainty=args.uncertainty, template_fit=args.template_fit,
                             trust_names=args.trust_names, strict=args.strict)
    with collecting() as checks:
        written = predict(args.model, args.inputs, args.output, options, save_probabilities=args.probabilities,
                          force=args.force, shard=args.shard, progress=not (args.quiet or args.json),
                          device=args.device, precision=args.precision, channel_files=_channel_flags(args),
                          report=args.report, anonymise=args.anonymise, output_format=args.output_format,
                          refine=args.refine)
    if args.json:
        by_case: dict = {}
        for c in checks:
            by_case.setdefault(c.case, []).append(c.to_dict())
        for path in written:  # a dataset's outputs are named after their cases; one case takes all checks
            case = output_stem(path).name
            fired = [c.to_dict() for c in checks] if len(written) == 1 else by_case.get(case, [])
            print(json.dumps({"case": fired[0]["case"] if fired else case, "output": str(path),
                              "status": "review" if fired else "ok", "checks": fired}))
    elif not args.quiet:
        for path in written[:10]:
            print(f"wrote {path}")
        if len(written) > 10:
            print(f"... and {len(written) - 10} more")
    return EXIT_REVIEW if checks else EXIT_OK


def _channel_flags(args) -> dict:
    return {m: getattr(args, m) for m in ("flair", "t1", "t1ce", "t2") if getattr(args, m, None)}


def _add_template_fit(s) -> None:
    s.add_argument("--template-fit", choices=["rigid", "affine"], default=None,
                   help="raw scans: how the brain is aligned to the BraTS template. rigid (default): keeps its size, "
                        "as BraTS data do; affine: scales and shears it to the template's")


def _add_channel_flags(s) -> None:
    for m in ("flair", "t1", "t1ce", "t2"):
        s.add_argument(f"--{m}", metavar="FILE", help=f"the {m.upper()} file or DICOM folder (where names do not tell)")


def cmd_align(args) -> None:
    from .datasets import resolve_case_channels
    from .raw.outputs import write_preprocessed

    case, lines = resolve_case_channels([Path(p) for p in args.inputs], ("flair", "t1", "t1ce", "t2"),
                                        _channel_flags(args))
    for line in lines if not args.quiet else []:
        print(line)
    for line in write_preprocessed(case, args.output, mode=args.align, force=args.force,
                                   progress=None if args.quiet else print, template_fit=args.template_fit):
        print(line)


def cmd_export(args) -> None:
    from .export import export_model

    print(f"wrote {export_model(args.model, args.format, args.output)}")


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate

    out_csv = args.csv or Path(args.pred_dir) / "metrics.csv"
    _, summary = evaluate(args.pred_dir, args.ref, args.labels, out_csv=out_csv, hd95_penalty=args.hd95_penalty,
                             progress=not args.quiet, ref_labels=args.ref_labels, lesion_wise=args.lesion_wise)
    print(summary)
    print(f"\nper-case metrics: {out_csv}")


def cmd_models(args) -> None:
    from .models import describe_models

    print(describe_models())


def cmd_calibrate(args) -> None:
    from .calibrate import calibrate, summary_lines, write_calibrated_model
    from .errors import InputError
    from .io import write_json_atomic
    from .models import load_model, resolve_model_path

    out = _new_model_file(args.output, args.force, "calibrated model")
    source = resolve_model_path(args.model)
    if source.suffix != ".safetensors":
        raise InputError(f"{source}: only .safetensors models can carry a calibration; calibrate before exporting")
    summary = calibrate(load_model(source), args.dataset, passes=args.passes,
                        exclude_trained=not args.include_trained, progress=None if args.quiet else print)
    for line in summary_lines(summary):
        print(line)
    if args.json:
        write_json_atomic(summary, args.json)
    print(f"wrote {write_calibrated_model(source, summary, out)}")


def _new_model_file(path: str, force: bool, what: str) -> Path:
    """The ``.safetensors`` file a command writes a model to: refused if named otherwise, or if it exists
    without ``--force``."""
    from .errors import InputError

    out = Path(path)
    if out.suffix != ".safetensors":
        raise InputError(f"{out}: name the {what} file .safetensors")
    if out.exists() and not force:
        raise InputError(f"{out}: exists already; add --force to overwrite it")
    return out


def cmd_ensemble(args) -> None:
    from .models.ensemble import make_ensemble

    out = _new_model_file(args.output, args.force, "ensemble")
    print(f"wrote {make_ensemble(args.models, out, name=args.name, sliding_window=args.sliding_window, overlap=args.overlap)}"
          f" ({len(args.models)} members; `medseg3d predict {out} CASE` runs them all and averages)")


def cmd_show(args) -> None:
    from .show import show

    print(f"wrote {show(args.case, args.output, pred=args.pred, labels=args.labels, channel=args.channel)}")


def cmd_compare(args) -> None:
    from .clinical.compare import compare

    say = None if args.quiet else (lambda line: print(line, flush=True))
    compare(args.prior, args.current, args.output, model=args.model, register=not args.no_register, progress=say)


def cmd_experiment(args) -> None:
    from .errors import InputError
    from .experiments import report_only, run_experiment

    if args.report:
        written = report_only(args.name, args.out)
        print(f"wrote {written['table_md']}, {written['table_csv'].name}, {written['plot'].name}")
        return
    if args.dataset is None:
        raise InputError("no dataset given; e.g. medseg3d experiment ablations ../shared/data/brats2018 --out DIR")
    runs = [r.strip() for r in args.runs.split(",") if r.strip()] if args.runs else None
    run_experiment(args.name, args.dataset, args.out, folds=args.folds, budget_minutes=args.budget_minutes,
                   quick=args.quick, runs=runs, progress=not args.quiet, epochs=args.epochs,
                   precision=args.precision, reuse=args.reuse, plan=args.plan)


def cmd_plan(args) -> None:
    from .experiments.crossval import format_plan, plan_dataset
    from .io import write_json_atomic

    plan = plan_dataset(args.dataset)
    print(format_plan(plan))
    if args.json:
        write_json_atomic(plan.to_dict(), args.json)


def cmd_crossval(args) -> None:
    from .errors import InputError
    from .experiments.crossval import run_crossval, write_crossval_report

    if args.report:
        names = tuple(args.names) if args.names else None
        print(f"wrote {write_crossval_report(args.path, args.variant, args.reference, names, args.splice)}")
        return
    if args.out is None:
        raise InputError("give the run folder: medseg3d crossval DATA --out RUN (or RUN --report for its report)")
    overrides = {"iters_per_epoch": args.iters_per_epoch} if args.iters_per_epoch else None
    run_crossval(args.path, args.out, preset=args.preset, members=args.members, folds=args.folds, epochs=args.epochs,
                 fold=args.fold, final=args.final, progress=not args.quiet, overrides=overrides)


def cmd_bundle(args) -> None:
    from .experiments.crossval import bundle

    out = bundle(args.run, args.output, name=args.name, force=args.force)
    print(f"wrote {out} and its card {out.with_suffix('.json')} (`medseg3d predict {out} CASE -o OUT` runs it)")


def cmd_serve(args) -> None:
    from .serve import status_lines

    if args.status:
        for line in status_lines(args.spool):
            print(line)
        return
    import logging
    import signal

    from .dicom.net import parse_allowed, parse_peer
    from .serve import Node, PredictSegmenter

    send_to = parse_peer(args.send_to) if args.send_to else None
    allow = [parse_allowed(a) for a in args.allow or []]
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # one line per association and instance otherwise
    node = Node(args.spool, PredictSegmenter(args.model, device=args.device, report=not args.no_report),
                ae_title=args.ae_title, send_to=send_to, allow=allow, quiet=args.quiet_period)
    node.start(args.port, args.bind, worker=False)

    def stop(signum, frame):  # SIGTERM as Ctrl-C: a study cut short is queued again at the next start
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        node.work_forever()
    except KeyboardInterrupt:
        print("medseg3d serve: stopped (the spool keeps every study; a restart continues)", file=sys.stderr)
    finally:
        node.stop(wait=0)


def cmd_send(args) -> None:
    from .dicom.net import parse_peer, send_files

    result = send_files([args.folder], parse_peer(args.destination), calling_aet=args.ae_title, timeout=args.timeout)
    skipped = list(result.skipped.items())
    for path, why in skipped[:10]:
        print(f"note: skipped {path}: {why}")
    if len(skipped) > 10:
        print(f"note: ... and {len(skipped) - 10} more files skipped")
    for path, why in result.refused.items():
        print(f"refused by {args.destination}: {path} ({why})", file=sys.stderr)
    print(f"sent {len(result.stored)} DICOM file(s) to {args.destination}"
          + (f"; {len(result.refused)} refused" if result.refused else ""))
    if result.refused:
        sys.exit(1)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="medseg3d", description="3D CNN segmentation of medical images (Kayalibay et al. 2017).")
    p.add_argument("--version", action="version", version=f"medseg3d {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("info", help="describe an image file, a case folder or a dataset (and its problems), "
                                      "or where a training run stands")
    s.add_argument("path")
    s.add_argument("--layout", choices=["brats", "brats-mha", "nnunet", "csv"])
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("cache", aliases=["prepare"],
                       help="preprocess a dataset once into the training cache (`prepare`: its old name)")
    s.add_argument("dataset")
    s.add_argument("--out", required=True, help="cache folder")
    s.add_argument("--labels", default="brats", help="label scheme: brats, brats2015, brats2012, binary")
    s.add_argument("--modalities", help="channels in order, e.g. flair,t1,t1ce,t2 (default: all)")
    s.add_argument("--layout", choices=["brats", "brats-mha", "nnunet", "csv"])
    s.add_argument("--crop", type=_ints, help="fixed crop X,Y,Z around the foreground's centre of mass")
    s.add_argument("--crop-mode", default="bbox", choices=["bbox", "none"], help="without --crop: brain box or none")
    s.add_argument("--downsample", type=float, default=1.0, help="down-sampling factor (2 = half resolution)")
    s.add_argument("--spacing", type=_floats, help="resample to this voxel size in mm, e.g. 2,2,2")
    s.add_argument("--workers", type=int, help="processes (default: cores, at most 4)")
    s.set_defaults(func=cmd_cache)

    s = sub.add_parser("split", help="write a seeded train/validation(/test) or k-fold split file")
    s.add_argument("dataset")
    s.add_argument("--out", required=True, help="split JSON file")
    s.add_argument("--folds", type=int)
    s.add_argument("--counts", type=lambda t: tuple(int(v) for v in t.split(",")), help="train,val,test counts")
    s.add_argument("--fractions", type=lambda t: tuple(float(v) for v in t.split(",")), help="train,val,test")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--layout", choices=["brats", "brats-mha", "nnunet", "csv"])
    s.set_defaults(func=cmd_split)

    s = sub.add_parser("nets", help="list the registered networks with parameter counts")
    s.add_argument("--in-channels", type=int, default=4)
    s.add_argument("--classes", type=int, default=5)
    s.set_defaults(func=cmd_nets)

    s = sub.add_parser("train", help="train a network on a dataset")
    s.add_argument("dataset", nargs="?", help="dataset folder (with --resume: the run's own, may be left out)")
    s.add_argument("--out", required=True, help="run folder (checkpoints, log.csv, curves.png, model)")
    s.add_argument("--preset", help="paper, brats (the bundled model), brats-refine (its 1 mm refiner), brats-v0 or quick")
    s.add_argument("--net", help="network registry name (see `medseg3d nets`)")
    s.add_argument("--net-arg", action="append", type=_kv, help="network argument KEY=VALUE (repeatable)")
    s.add_argument("--loss", help="loss name or combination, e.g. jaccard, dice, ce, jaccard+ce, region-dice-bce")
    s.add_argument("--labels", help="brats, brats2015, binary, regions (BraTS WT/TC/ET sigmoid outputs)")
    s.add_argument("--modalities", help="channels in order, e.g. flair,t1ce")
    s.add_argument("--layout", choices=["brats", "brats-mha", "nnunet", "csv"])
    s.add_argument("--downsample", type=float)
    s.add_argument("--spacing", type=_floats)
    s.add_argument("--crop", type=_ints, help="fixed crop X,Y,Z (the paper: 144,160,128)")
    s.add_argument("--patch", type=_ints, help="train on patches X,Y,Z instead of whole crops")
    s.add_argument("--foreground-p", type=float, help="fraction of patches centred on foreground")
    s.add_argument("--augment", help="none, paper, default, strong")
    s.add_argument("--epochs", type=int)
    s.add_argument("--minutes", type=float, help="training-time budget (counted across resumes)")
    s.add_argument("--iters-per-epoch", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument("--schedule", choices=["constant", "poly", "cosine"])
    s.add_argument("--batch", type=int)
    s.add_argument("--accumulate", type=int,
                   help="micro-batches per optimiser step (global batch = batch x accumulate x processes)")
    s.add_argument("--fold", type=int)
    s.add_argument("--folds", type=int)
    s.add_argument("--split-file", help="use (or create) this split JSON")
    s.add_argument("--all-cases", action="store_true", help="train on every case without validation (final model)")
    s.add_argument("--val-every", type=int)
    s.add_argument("--seed", type=int)
    s.add_argument("--device", help="auto, cpu, cuda, cuda:1")
    s.add_argument("--precision", choices=PRECISIONS,
                   help="fp32, or mixed (float16 on CUDA, bfloat16 on CPUs with native bfloat16; about 2.5x "
                        "faster there); auto (default): the preset's, else mixed on CUDA and fp32 on the CPU")
    s.add_argument("--compile", action="store_true",
                   help="torch.compile the training step (needs fixed-size inputs: --patch or a fixed crop): "
                        "up to minutes of compilation, for little gain per epoch on a CPU (docs/results.md)")
    s.add_argument("--output-prior", action="store_true",
                   help="start the output biases at the training labels' frequencies instead of 0 (sigmoid: "
                        "log-odds, softmax: log); for networks with a biased output layer (unet, tiny-unet)")
    s.add_argument("--cache", help="cache folder (default: ~/.cache/medseg3d/<dataset>-<hash> or $MEDSEG3D_CACHE)")
    s.add_argument("--skip-bad-cases", action="store_true",
                   help="train without the cases that cannot be read, naming them (default: refuse to start)")
    s.add_argument("--resume", action="store_true",
                   help="continue the run in --out with its own settings (config.json); only a new budget "
                        "(--epochs, --minutes) may be given")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("predict", help="segment a case, a list of channel files or a whole dataset",
                       epilog=PREDICT_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("model", help="bundled model name (see `medseg3d models`), run folder or model file")
    s.add_argument("inputs", nargs="*", help="case folder, channel files in the model's order, or dataset folder")
    s.add_argument("-o", "--output", required=True, help="output file (one case) or folder (dataset)")
    s.add_argument("--align", "--preprocess", dest="align", choices=["auto", "full", "resample", "none"],
                   default="auto",
                   help="how scans reach the model's grid (--preprocess is its old name). auto (default): "
                        "scans not already on one skull-stripped grid in the model's space are "
                        "co-registered, skull-stripped and aligned to it (full), or only reoriented and resampled "
                        "(resample); none: use them as they are")
    s.add_argument("--space", choices=["native", "atlas"], default="native",
                   help="native (default): labels on the T1ce's own grid; atlas: on the 240x240x155 BraTS grid")
    _add_template_fit(s)
    _add_channel_flags(s)
    s.add_argument("--mirror", "--tta", dest="mirror", action="store_true",
                   help="average over the 8 mirrored copies, test-time augmentation (8x slower; --tta is its old name)")
    window = s.add_mutually_exclusive_group()
    window.add_argument("--sliding-window", dest="sliding_window", action="store_const", const=True, default=None,
                        help="infer in windows of the training patch size (default: as the model file says)")
    window.add_argument("--whole-volume", dest="sliding_window", action="store_const", const=False,
                        help="infer on the whole cropped volume at once")
    s.add_argument("--overlap", type=float, help="sliding-window overlap (default: the model's, else 0.5)")
    s.add_argument("--min-component", type=int, default=0, help="remove tumour components smaller than N voxels")
    s.add_argument("--min-enhancing", type=int, default=0,
                   help="BraTS: if fewer than N voxels are enhancing tumour, label them necrosis (cases without "
                        "enhancement score ET Dice 1 only with none predicted)")
    s.add_argument("--max-distance", type=float, default=None, metavar="MM",
                   help="remove tumour components farther than MM millimetres from the largest one (a "
                        "false-positive blob far from the tumour); default: the model's own (its card "
                        "in `medseg3d models` says), else off; 0: off")
    s.add_argument("--refine", default="auto", metavar="MODEL",
                   help="re-segment the box around the tumour with a finer refiner model (bundled name, run folder "
                        "or file); default: the refiner the model names, if any; 'none': the model alone")
    s.add_argument("--probabilities", action="store_true", help="also write the probability maps")
    s.add_argument("--report", action="store_true",
                   help="also write the report a clinician reads: <stem>.report.html, <stem>.report.pdf and, for a "
                        "DICOM input, <stem>.report.dcm (an Encapsulated PDF in the study): patient and study, "
                        "volumes, location, RANO diameters, pictures, quality checks; and <stem>.json")
    s.add_argument("--anonymise", action="store_true",
                   help="with --report: leave the patient, study and series details out (and write no .dcm)")
    s.add_argument("--uncertainty", nargs="?", type=_passes, const="auto", metavar="PASSES",
                   help="also write <stem>_uncertainty (voxel-wise normalised entropy of PASSES mirrored passes "
                        "(2, 4 or 8), or of an ensemble's members ('members')) and the case's confidence in "
                        "<stem>.json; the labels do not change. Default: an ensemble's members, at no extra cost, "
                        "with each member's tumour volumes; else 2 passes, about 2x the inference (8 with --mirror, "
                        "at no extra cost)")
    s.add_argument("--output-format", choices=["nifti", "dicom-seg"], default=None,
                   help="dicom-seg: also write <stem>.seg.dcm, a DICOM Segmentation object referencing the input "
                        "DICOM series (the default when the input is DICOM); nifti: do not")
    s.add_argument("--force", action="store_true", help="overwrite existing outputs")
    s.add_argument("--shard", type=_shard, help="INDEX/COUNT: this process takes every COUNT-th case")
    s.add_argument("--device", default="auto")
    s.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="fp32 or mixed (bfloat16 on CPUs with native bfloat16, float16 on CUDA); "
                        "auto (default): as the model file says, else fp32 on the CPU")
    s.add_argument("--strict", action="store_true",
                   help="refuse (exit 2, nothing written) a case whose quality checks fire, instead of writing it "
                        "and exiting 3")
    s.add_argument("--trust-names", action="store_true",
                   help="where file names and the channels' intensities confidently disagree about the sequences, "
                        "segment as named (flagged for review) instead of refusing")
    s.add_argument("--json", action="store_true",
                   help="print one JSON object per case on standard output (output, status, checks) and nothing "
                        "else there; implies --quiet")
    s.add_argument("--quiet", action="store_true", help="no progress; warnings and errors still go to standard error")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("align", aliases=["preprocess"],
                       help="raw scans -> BraTS-like channels on the BraTS grid, brain mask, transforms, QC picture "
                            "(`preprocess` is its old name)")
    s.add_argument("inputs", nargs="*", help="FLAIR T1 T1CE T2 files (or DICOM folders), or one case folder")
    s.add_argument("-o", "--output", required=True, help="output folder (written as a BraTS case folder)")
    s.add_argument("--align", "--preprocess", dest="align", choices=["full", "auto"], default="full",
                   help="full (default): always co-register, skull-strip and align; auto: only when needed "
                        "(--preprocess is its old name)")
    _add_template_fit(s)
    _add_channel_flags(s)
    s.add_argument("--force", action="store_true", help="overwrite an existing output folder")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_align)

    s = sub.add_parser("export", help="write a self-describing ONNX or TorchScript model (metadata inside)")
    s.add_argument("model", help="bundled model name, run folder or .safetensors file")
    s.add_argument("--format", default="onnx", choices=["onnx", "torchscript"])
    s.add_argument("-o", "--output", required=True, help="output file (.onnx or .pt)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("evaluate", help="score predictions against references (metrics.csv + summary)")
    s.add_argument("pred_dir")
    s.add_argument("ref", help="folder of reference label files or a dataset folder")
    s.add_argument("--labels", default="brats")
    s.add_argument("--ref-labels", help="label numbering of the references when it differs from --labels "
                                         "(e.g. brats2012, nnunet-brats; detected from the values when clear)")
    s.add_argument("--csv", help="where to write the per-case metrics (default PRED_DIR/metrics.csv)")
    s.add_argument("--hd95-penalty", action="store_true", help="HD95 = 373.13 mm when one mask is empty (BraTS)")
    s.add_argument("--lesion-wise", action="store_true",
                   help="add BraTS 2023 lesion-wise Dice/HD95 per region (missed or false-positive lesion: 0 / 374 mm)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("show", help="draw slices through the tumour with reference/prediction outlines (PNG)")
    s.add_argument("case", help="case folder (its label is the reference) or an image file")
    s.add_argument("--pred", help="predicted label file to outline (dashed)")
    s.add_argument("-o", "--output", required=True, help="PNG file")
    s.add_argument("--labels", default="brats")
    s.add_argument("--channel", help="channel to draw (default flair)")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("compare", help="follow-up: what changed between two scans (volumes, RANO, new lesions, page)")
    s.add_argument("prior", help="earlier scans (case folder, raw files' folder, DICOM study) or predict output")
    s.add_argument("current", help="later scans, or predict output, as PRIOR")
    s.add_argument("-o", "--output", required=True, help="folder for compare.json, compare.html, pictures, change map")
    s.add_argument("--model", default="brats", help="model to segment scans with (default: bundled brats)")
    s.add_argument("--no-register", action="store_true", help="compare as placed in SRI24, without the rigid fit")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("experiment", help="run one of the paper's experiment grids (resumable) -> table + plot")
    s.add_argument("name", help="modalities, ablations, losses, depth, binary or hand")
    s.add_argument("dataset", nargs="?", help="labelled dataset folder (not needed with --report)")
    s.add_argument("--out", required=True, help="experiment folder (one sub-folder per run and fold)")
    s.add_argument("--folds", type=int, help="cross-validation folds (default 5; 2 with --quick)")
    s.add_argument("--budget-minutes", type=float,
                   help="training minutes per run and fold (default: 260 / runs x folds), turned into a fixed "
                        "number of epochs when the experiment folder is made")
    s.add_argument("--epochs", type=int, help="epochs per run and fold (one epoch = one pass over the training "
                                               "cases) instead of --budget-minutes")
    s.add_argument("--precision", choices=["fp32", "mixed"],
                   help="numeric precision of every training, recorded with the budget (default mixed: bfloat16 "
                        "on CPUs with native bfloat16, float16 on CUDA, else float32)")
    s.add_argument("--quick", action="store_true", help="2 cases, a few iterations: a smoke test, not a result")
    s.add_argument("--runs", help="only these runs, comma-separated (default all)")
    s.add_argument("--reuse", action="append", metavar="DIR",
                   help="another experiment folder (repeatable): its finished runs that trained exactly what a run "
                        "here would (settings, channels, budget, fold cases) are copied instead of trained again")
    s.add_argument("--plan", action="store_true",
                   help="only print what would run (folds done, to copy, to train, to resume) and the time estimate; "
                        "writes nothing")
    s.add_argument("--report", action="store_true", help="only write table.md, table.csv and plot.png from finished runs")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_experiment)

    s = sub.add_parser("plan", help="training settings chosen from a dataset's spacings, shapes, modality and labels")
    s.add_argument("dataset", help="dataset folder with labels (BraTS, nnU-Net/MSD with dataset.json, CSV)")
    s.add_argument("--json", help="also write the plan (settings, reasons, measurements) to this JSON file")
    s.set_defaults(func=cmd_plan)

    s = sub.add_parser("crossval", help="cross-validate presets on your cases: train every fold (resumable, shared), "
                                          "score held-out cases as the final model runs, choose post-processing, "
                                          "calibrate, report")
    s.add_argument("path", help="the labelled dataset folder; with --report the run folder")
    s.add_argument("--out", help="the run folder (run the same command again to resume; several may run at once)")
    s.add_argument("--preset", default="auto", help="auto (planned from the data, see `medseg3d plan`) or a preset "
                                                   "of `medseg3d train` (default auto)")
    s.add_argument("--members", nargs="+", metavar="PRESET", default=[],
                   help="more presets, each trained on every fold; the final model is their ensemble")
    s.add_argument("--folds", type=int, help="number of folds (default 5)")
    s.add_argument("--epochs", type=int, help="epochs per training instead of each preset's own")
    s.add_argument("--iters-per-epoch", type=int, help="iterations per epoch instead of each preset's own")
    s.add_argument("--fold", type=int, help="only this fold (a Slurm array task; every process of torchrun)")
    s.add_argument("--final", action="store_true", help="also train every member on all cases (for `medseg3d bundle`)")
    s.add_argument("--report", action="store_true", help="only rebuild RUN/report.md from the run's records")
    s.add_argument("--variant", action="append", help="(--report) the variants to report, first the main one")
    s.add_argument("--reference", help="(--report) the variant the others are paired against")
    s.add_argument("--splice", metavar="FILE:NAME", help="(--report) also write the comparison into FILE's block "
                                                         "<!-- NAME --> ... <!-- /NAME -->")
    s.add_argument("--names", nargs=2, metavar=("REFERENCE", "VARIANT"), help="(--report) what --splice calls the two")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_crossval)

    s = sub.add_parser("bundle", help="a cross-validation's final members as one model file with its card")
    s.add_argument("run", help="the crossval run folder (trained with --final, every fold scored)")
    s.add_argument("-o", "--output", required=True, help="the model file (.safetensors); its card goes beside it (.json)")
    s.add_argument("--name", help="the model's name (default: the file's stem)")
    s.add_argument("--force", action="store_true", help="overwrite the output file")
    s.set_defaults(func=cmd_bundle)

    s = sub.add_parser("calibrate", help="fit temperature scaling on labelled held-out cases; write a calibrated model")
    s.add_argument("model", help="bundled name, run folder or .safetensors file")
    s.add_argument("dataset", help="labelled dataset of cases the model never saw (e.g. a fold's held-out cases)")
    s.add_argument("-o", "--output", required=True, help="the calibrated copy of the model (.safetensors)")
    s.add_argument("--passes", type=_passes, default=2,
                   help="mirrored passes for the per-case confidence (2, 4 or 8), or 'members' for an ensemble "
                        "(as predict --uncertainty; default 2)")
    s.add_argument("--include-trained", action="store_true",
                   help="also use cases the model's card lists as trained on (default: leave them out)")
    s.add_argument("--json", help="also write every measurement (per case, ECE, Spearman) to this JSON file")
    s.add_argument("--force", action="store_true", help="overwrite the output model file")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_calibrate)

    s = sub.add_parser("ensemble", help="one model file from several models trained alike (e.g. a CV's fold models)")
    s.add_argument("models", nargs="+", metavar="MODEL", help="two or more bundled names, run folders or .safetensors files")
    s.add_argument("-o", "--output", required=True, help="the ensemble model file (.safetensors)")
    s.add_argument("--name", help="a name to record in the file (default: the file's stem)")
    window = s.add_mutually_exclusive_group()
    window.add_argument("--sliding-window", dest="sliding_window", action="store_true", default=None,
                        help="run it in windows of the training patch by default (each window runs every member)")
    window.add_argument("--whole-volume", dest="sliding_window", action="store_false",
                        help="run it over the whole cropped volume in one pass per member by default")
    s.add_argument("--overlap", type=float, help="window overlap recorded as its default (in [0, 1))")
    s.add_argument("--force", action="store_true", help="overwrite the output file")
    s.set_defaults(func=cmd_ensemble)

    s = sub.add_parser("serve", help="a DICOM node: receive studies from a PACS, segment each, send the SEG and "
                                       "report back", epilog="exit status: 0 stopped (Ctrl-C or SIGTERM), 2 a bad option, "
                                       "a busy port or a spool held by another node")
    s.add_argument("--ae-title", default="MEDSEG3D", help="our AE title (default MEDSEG3D)")
    s.add_argument("--port", type=int, default=11112, help="port to listen on (default 11112)")
    s.add_argument("--bind", default="0.0.0.0", help="address to listen on (default all; 127.0.0.1: this machine only)")
    s.add_argument("--send-to", metavar="AET@HOST:PORT", help="where the results go (e.g. the PACS); default: kept "
                                                              "in the spool")
    s.add_argument("--allow", action="append", metavar="AET@ADDRESS",
                   help="accept only this calling AE title from this address (* for any address); repeatable; "
                        "default: any caller")
    s.add_argument("--spool", default=str(Path.home() / ".cache" / "medseg3d" / "spool"),
                   help="folder for received studies and results, mode 0700 (default ~/.cache/medseg3d/spool)")
    s.add_argument("--quiet-period", type=float, default=10.0, metavar="SECONDS",
                   help="a study is complete after this long without a new instance (default 10)")
    s.add_argument("--model", default="brats", help="bundled model name, run folder or model file (default brats)")
    s.add_argument("--device", default="auto")
    s.add_argument("--no-report", action="store_true", help="send the DICOM SEG only, without the case report")
    s.add_argument("--status", action="store_true",
                   help="print the spool's queue (received, waiting, processing, done, failed, sent) and exit")
    s.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("send", help="C-STORE the DICOM files of a folder to a DICOM node",
                       epilog="exit status: 0 all sent, 1 some refused by the node, 2 the node cannot be reached "
                              "or a bad argument")
    s.add_argument("folder", help="a study folder (searched recursively; files that are not DICOM are skipped)")
    s.add_argument("destination", metavar="AET@HOST:PORT", help="e.g. MEDSEG3D@127.0.0.1:11112")
    s.add_argument("--ae-title", default="MEDSEG3D", help="our (calling) AE title (default MEDSEG3D)")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds for connecting and each answer (default 30)")
    s.set_defaults(func=cmd_send)

    s = sub.add_parser("models", help="list the bundled models")
    s.set_defaults(func=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)  # a command with an exit-code contract returns its code (predict: 0 or 3)
    except MedsegError as exc:
        print(f"medseg3d: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medseg3d: interrupted (a training run continues with --resume)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `medseg3d models | head`: the reader has gone, which is no error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
