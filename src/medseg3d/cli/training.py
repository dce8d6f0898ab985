"""Commands that train or assemble models: ``nets``, ``train``, ``experiment``, ``plan``, ``crossval``,
``bundle``, ``calibrate``, ``ensemble``."""

from __future__ import annotations

from ..precision import PRECISIONS
from .common import (
    kv,
    new_model_file,
    passes,
    positive_floats,
    positive_ints,
)


def cmd_nets(args) -> None:
    """``medseg3d nets``: list the registered networks with their parameter counts."""
    from ..nets import describe_networks

    print(describe_networks(in_channels=args.in_channels, n_classes=args.classes))


def cmd_train(args) -> None:
    """``medseg3d train``: train (or resume) one network on a dataset."""
    from ..datasets import find_cases, layout_notes
    from ..errors import InputError
    from ..train import TrainConfig, train

    try:  # say what the layout assumed (e.g. nnU-Net's channel order) before hours of training on it
        cases = (
            find_cases(args.dataset, layout=args.layout, modalities=args.modalities) if args.dataset else []
        )
    except InputError:
        cases = []  # train reports the dataset's problem itself
    for note in layout_notes(cases):
        print(f"note: {note}")
    unlabelled = [c.case_id for c in cases if c.label is None]
    if unlabelled:  # the cache takes such cases, and training then fails inside its loop
        raise InputError(
            f"{args.dataset}: {len(unlabelled)} case(s) have no label file (e.g. {unlabelled[0]}); "
            "training needs labels"
        )
    overrides = {
        k: getattr(args, k)
        for k in (
            "net",
            "loss",
            "labels",
            "modalities",
            "layout",
            "downsample",
            "spacing",
            "patch",
            "lr",
            "batch",
            "accumulate",
            "epochs",
            "minutes",
            "fold",
            "folds",
            "seed",
            "device",
            "augment",
            "schedule",
            "val_every",
            "iters_per_epoch",
            "cache",
            "split_file",
            "foreground_p",
            "precision",
        )
    }
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
    cfg = TrainConfig.from_preset(
        args.preset,
        dataset=args.dataset,
        out=args.out,
        resume=args.resume,
        progress=not args.quiet,
        **overrides,
    )
    if args.resume:  # settings come from the run folder; what was typed must agree with them (budget aside)
        from ..train import PRESETS, resume_config

        typed = {k for k, v in overrides.items() if v is not None} | set(PRESETS.get(args.preset or "", {}))
        given = {k: getattr(cfg, k) for k in typed} | {"dataset": args.dataset, "progress": not args.quiet}
        cfg = resume_config(args.out, ({"preset": args.preset} if args.preset else {}) | given)
    summary = train(cfg, settings_merged=args.resume)
    print(
        f"done: {summary['epochs']} epochs, {summary['iterations']} iterations, "
        f"{summary['seconds'] / 60:.1f} min; best validation score {summary['best_score']:.4f} (epoch "
        f"{summary['best_epoch']}); model {summary['model']}"
    )


def cmd_experiment(args) -> None:
    """``medseg3d experiment``: run one of the paper's experiment grids (resumable) -> table and plot."""
    from ..errors import InputError
    from ..experiments import report_only, run_experiment

    if args.report:
        written = report_only(args.name, args.out)
        print(f"wrote {written['table_md']}, {written['table_csv'].name}, {written['plot'].name}")
        return
    if args.dataset is None:
        raise InputError(
            "no dataset given; e.g. medseg3d experiment ablations ../shared/data/brats2018 --out DIR"
        )
    runs = [r.strip() for r in args.runs.split(",") if r.strip()] if args.runs else None
    run_experiment(
        args.name,
        args.dataset,
        args.out,
        folds=args.folds,
        budget_minutes=args.budget_minutes,
        quick=args.quick,
        runs=runs,
        progress=not args.quiet,
        epochs=args.epochs,
        precision=args.precision,
        reuse=args.reuse,
        plan=args.plan,
    )


def cmd_plan(args) -> None:
    """``medseg3d plan``: print the training settings chosen from a dataset's properties."""
    from ..experiments.crossval import format_plan, plan_dataset
    from ..io import write_json_atomic

    plan = plan_dataset(args.dataset)
    print(format_plan(plan))
    if args.json:
        write_json_atomic(plan.to_dict(), args.json)


def cmd_crossval(args) -> None:
    """``medseg3d crossval``: cross-validate presets on a dataset's cases (resumable)."""
    from ..errors import InputError
    from ..experiments.crossval import run_crossval, write_crossval_report

    if args.report:
        names = tuple(args.names) if args.names else None
        print(f"wrote {write_crossval_report(args.path, args.variant, args.reference, names, args.splice)}")
        return
    if args.out is None:
        raise InputError(
            "give the run folder: medseg3d crossval DATA --out RUN (or RUN --report for its report)"
        )
    overrides = {"iters_per_epoch": args.iters_per_epoch} if args.iters_per_epoch else None
    run_crossval(
        args.path,
        args.out,
        preset=args.preset,
        members=args.members,
        folds=args.folds,
        epochs=args.epochs,
        fold=args.fold,
        final=args.final,
        progress=not args.quiet,
        overrides=overrides,
        split_file=args.split,
        heldout_variants=args.heldout_variants,
    )


def cmd_bundle(args) -> None:
    """``medseg3d bundle``: a cross-validation's final members as one model file with its card."""
    from ..experiments.crossval import bundle

    out = bundle(args.run, args.output, name=args.name, force=args.force)
    print(
        f"wrote {out} and its card {out.with_suffix('.json')} (`medseg3d predict {out} CASE -o OUT` runs it)"
    )


def cmd_calibrate(args) -> None:
    """``medseg3d calibrate``: fit temperature scaling on held-out cases and write the calibrated model."""
    from ..calibrate import calibrate, summary_lines, write_calibrated_model
    from ..errors import InputError
    from ..io import write_json_atomic
    from ..models import load_model, resolve_model_path

    out = new_model_file(args.output, args.force, "calibrated model")
    source = resolve_model_path(args.model)
    if source.suffix != ".safetensors":
        raise InputError(
            f"{source}: only .safetensors models can carry a calibration; calibrate before exporting"
        )
    summary = calibrate(
        load_model(source),
        args.dataset,
        passes=args.passes,
        exclude_trained=not args.include_trained,
        progress=None if args.quiet else print,
    )
    for line in summary_lines(summary):
        print(line)
    if args.json:
        write_json_atomic(summary, args.json)
    print(f"wrote {write_calibrated_model(source, summary, out)}")


def cmd_ensemble(args) -> None:
    """``medseg3d ensemble``: one model file from several models trained alike."""
    from ..models.ensemble import make_ensemble

    out = new_model_file(args.output, args.force, "ensemble")
    print(
        f"""wrote {
            make_ensemble(
                args.models, out, name=args.name, sliding_window=args.sliding_window, overlap=args.overlap
            )
        }"""
        f" ({len(args.models)} members; `medseg3d predict {out} CASE` runs them all and averages)"
    )


def add_nets(sub) -> None:
    """Add the ``nets`` sub-command."""
    s = sub.add_parser("nets", help="list the registered networks with parameter counts")
    s.add_argument("--in-channels", type=int, default=4)
    s.add_argument("--classes", type=int, default=5)
    s.set_defaults(func=cmd_nets)


def add_train(sub) -> None:
    """Add the ``train`` sub-command."""
    s = sub.add_parser("train", help="train a network on a dataset")
    s.add_argument(
        "dataset", nargs="?", help="dataset folder (with --resume: the run's own, may be left out)"
    )
    s.add_argument("--out", required=True, help="run folder (checkpoints, log.csv, curves.png, model)")
    s.add_argument(
        "--preset",
        help="paper, brats (the bundled model), brats-refine (its 1 mm refiner), brats-v0, "
        "brats-v3 and brats-v3-strong (issue #40: synthetic non-enhancing variants train "
        "beside their parents, low-grade cases oversampled) or quick",
    )
    s.add_argument("--net", help="network registry name (see `medseg3d nets`)")
    s.add_argument("--net-arg", action="append", type=kv, help="network argument KEY=VALUE (repeatable)")
    s.add_argument(
        "--loss", help="loss name or combination, e.g. jaccard, dice, ce, jaccard+ce, region-dice-bce"
    )
    s.add_argument("--labels", help="brats, brats2015, binary, regions (BraTS WT/TC/ET sigmoid outputs)")
    s.add_argument("--modalities", help="channels in order, e.g. flair,t1ce")
    s.add_argument("--layout", choices=["brats", "brats-mha", "nnunet", "csv"])
    s.add_argument("--downsample", type=float)
    s.add_argument("--spacing", type=positive_floats)
    s.add_argument("--crop", type=positive_ints, help="fixed crop X,Y,Z (the paper: 144,160,128)")
    s.add_argument("--patch", type=positive_ints, help="train on patches X,Y,Z instead of whole crops")
    s.add_argument("--foreground-p", type=float, help="fraction of patches centred on foreground")
    s.add_argument("--augment", help="none, paper, default, strong")
    s.add_argument("--epochs", type=int)
    s.add_argument("--minutes", type=float, help="training-time budget (counted across resumes)")
    s.add_argument("--iters-per-epoch", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument("--schedule", choices=["constant", "poly", "cosine"])
    s.add_argument("--batch", type=int)
    s.add_argument(
        "--accumulate",
        type=int,
        help="micro-batches per optimiser step (global batch = batch x accumulate x processes)",
    )
    s.add_argument("--fold", type=int)
    s.add_argument("--folds", type=int)
    s.add_argument("--split-file", help="use (or create) this split JSON")
    s.add_argument(
        "--all-cases", action="store_true", help="train on every case without validation (final model)"
    )
    s.add_argument("--val-every", type=int)
    s.add_argument("--seed", type=int)
    s.add_argument("--device", help="auto, cpu, cuda, cuda:1")
    s.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="fp32, or mixed (float16 on CUDA, bfloat16 on CPUs with native bfloat16; about 2.5x "
        "faster there); auto (default): the preset's, else mixed on CUDA and fp32 on the CPU",
    )
    s.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training step (needs fixed-size inputs: --patch or a fixed crop): "
        "up to minutes of compilation, for little gain per epoch on a CPU (docs/results.md)",
    )
    s.add_argument(
        "--output-prior",
        action="store_true",
        help="start the output biases at the training labels' frequencies instead of 0 (sigmoid: "
        "log-odds, softmax: log); for networks with a biased output layer (unet, tiny-unet)",
    )
    s.add_argument(
        "--cache", help="cache folder (default: ~/.cache/medseg3d/<dataset>-<hash> or $MEDSEG3D_CACHE)"
    )
    s.add_argument(
        "--skip-bad-cases",
        action="store_true",
        help="train without the cases that cannot be read, naming them (default: refuse to start)",
    )
    s.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out with its own settings (config.json); only a new budget "
        "(--epochs, --minutes) may be given",
    )
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_train)


def add_experiment(sub) -> None:
    """Add the ``experiment`` sub-command."""
    s = sub.add_parser(
        "experiment", help="run one of the paper's experiment grids (resumable) -> table + plot"
    )
    s.add_argument("name", help="modalities, ablations, losses, depth, binary, hand or task1 (any dataset)")
    s.add_argument("dataset", nargs="?", help="labelled dataset folder (not needed with --report)")
    s.add_argument("--out", required=True, help="experiment folder (one sub-folder per run and fold)")
    s.add_argument("--folds", type=int, help="cross-validation folds (default 5; 2 with --quick)")
    s.add_argument(
        "--budget-minutes",
        type=float,
        help="training minutes per run and fold (default: 260 / runs x folds), turned into a fixed "
        "number of epochs when the experiment folder is made",
    )
    s.add_argument(
        "--epochs",
        type=int,
        help="epochs per run and fold (one epoch = one pass over the training "
        "cases) instead of --budget-minutes",
    )
    s.add_argument(
        "--precision",
        choices=["fp32", "mixed"],
        help="numeric precision of every training, recorded with the budget (default mixed: bfloat16 "
        "on CPUs with native bfloat16, float16 on CUDA, else float32)",
    )
    s.add_argument(
        "--quick", action="store_true", help="2 cases, a few iterations: a smoke test, not a result"
    )
    s.add_argument("--runs", help="only these runs, comma-separated (default all)")
    s.add_argument(
        "--reuse",
        action="append",
        metavar="DIR",
        help="another experiment folder (repeatable): its finished runs that trained exactly what a run "
        "here would (settings, channels, budget, fold cases) are copied instead of trained again",
    )
    s.add_argument(
        "--plan",
        action="store_true",
        help="only print what would run (folds done, to copy, to train, to resume) and the time estimate; "
        "writes nothing",
    )
    s.add_argument(
        "--report", action="store_true", help="only write table.md, table.csv and plot.png from finished runs"
    )
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_experiment)


def add_plan(sub) -> None:
    """Add the ``plan`` sub-command."""
    s = sub.add_parser(
        "plan", help="training settings chosen from a dataset's spacings, shapes, modality and labels"
    )
    s.add_argument("dataset", help="dataset folder with labels (BraTS, nnU-Net/MSD with dataset.json, CSV)")
    s.add_argument("--json", help="also write the plan (settings, reasons, measurements) to this JSON file")
    s.set_defaults(func=cmd_plan)


def add_crossval(sub) -> None:
    """Add the ``crossval`` sub-command."""
    s = sub.add_parser(
        "crossval",
        help="cross-validate presets on your cases: train every fold (resumable, shared), "
        "score held-out cases as the final model runs, choose post-processing, "
        "calibrate, report",
    )
    s.add_argument("path", help="the labelled dataset folder; with --report the run folder")
    s.add_argument(
        "--out", help="the run folder (run the same command again to resume; several may run at once)"
    )
    s.add_argument(
        "--preset",
        default="auto",
        help="auto (planned from the data, see `medseg3d plan`) or a preset "
        "of `medseg3d train` (default auto)",
    )
    s.add_argument(
        "--members",
        nargs="+",
        metavar="PRESET",
        default=[],
        help="more presets, each trained on every fold; the final model is their ensemble",
    )
    s.add_argument("--folds", type=int, help="number of folds (default 5)")
    s.add_argument("--epochs", type=int, help="epochs per training instead of each preset's own")
    s.add_argument("--iters-per-epoch", type=int, help="iterations per epoch instead of each preset's own")
    s.add_argument(
        "--split",
        metavar="FILE",
        help="on the first call, this k-fold split instead of a new seeded one (e.g. an earlier "
        "cross-validation's, to compare fold by fold); it must hold out each original case once",
    )
    s.add_argument(
        "--heldout-variants",
        metavar="DIR",
        help="BraTS: synthetic non-enhancing variants (medseg3d synth-nonenhancing) that each fold's model "
        "also segments where it holds out their parent; the enhancing-tumour rule (--min-enhancing) is then "
        "chosen on them and the real held-out cases (recorded for later calls)",
    )
    s.add_argument("--fold", type=int, help="only this fold (a Slurm array task; every process of torchrun)")
    s.add_argument(
        "--final", action="store_true", help="also train every member on all cases (for `medseg3d bundle`)"
    )
    s.add_argument("--report", action="store_true", help="only rebuild RUN/report.md from the run's records")
    s.add_argument("--variant", action="append", help="(--report) the variants to report, first the main one")
    s.add_argument("--reference", help="(--report) the variant the others are paired against")
    s.add_argument(
        "--splice",
        metavar="FILE:NAME",
        help="(--report) also write the comparison into FILE's block <!-- NAME --> ... <!-- /NAME -->",
    )
    s.add_argument(
        "--names", nargs=2, metavar=("REFERENCE", "VARIANT"), help="(--report) what --splice calls the two"
    )
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_crossval)


def add_bundle(sub) -> None:
    """Add the ``bundle`` sub-command."""
    s = sub.add_parser("bundle", help="a cross-validation's final members as one model file with its card")
    s.add_argument("run", help="the crossval run folder (trained with --final, every fold scored)")
    s.add_argument(
        "-o", "--output", required=True, help="the model file (.safetensors); its card goes beside it (.json)"
    )
    s.add_argument("--name", help="the model's name (default: the file's stem)")
    s.add_argument("--force", action="store_true", help="overwrite the output file")
    s.set_defaults(func=cmd_bundle)


def add_calibrate(sub) -> None:
    """Add the ``calibrate`` sub-command."""
    s = sub.add_parser(
        "calibrate", help="fit temperature scaling on labelled held-out cases; write a calibrated model"
    )
    s.add_argument("model", help="bundled name, run folder or .safetensors file")
    s.add_argument(
        "dataset", help="labelled dataset of cases the model never saw (e.g. a fold's held-out cases)"
    )
    s.add_argument("-o", "--output", required=True, help="the calibrated copy of the model (.safetensors)")
    s.add_argument(
        "--passes",
        type=passes,
        default=2,
        help="mirrored passes for the per-case confidence (2, 4 or 8), or 'members' for an ensemble "
        "(as predict --uncertainty; default 2)",
    )
    s.add_argument(
        "--include-trained",
        action="store_true",
        help="also use cases the model's card lists as trained on (default: leave them out)",
    )
    s.add_argument("--json", help="also write every measurement (per case, ECE, Spearman) to this JSON file")
    s.add_argument("--force", action="store_true", help="overwrite the output model file")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_calibrate)


def add_ensemble(sub) -> None:
    """Add the ``ensemble`` sub-command."""
    s = sub.add_parser(
        "ensemble", help="one model file from several models trained alike (e.g. a CV's fold models)"
    )
    s.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="two or more bundled names, run folders or .safetensors files",
    )
    s.add_argument("-o", "--output", required=True, help="the ensemble model file (.safetensors)")
    s.add_argument("--name", help="a name to record in the file (default: the file's stem)")
    window = s.add_mutually_exclusive_group()
    window.add_argument(
        "--sliding-window",
        dest="sliding_window",
        action="store_true",
        default=None,
        help="run it in windows of the training patch by default (each window runs every member)",
    )
    window.add_argument(
        "--whole-volume",
        dest="sliding_window",
        action="store_false",
        help="run it over the whole cropped volume in one pass per member by default",
    )
    s.add_argument("--overlap", type=float, help="window overlap recorded as its default (in [0, 1))")
    s.add_argument("--force", action="store_true", help="overwrite the output file")
    s.set_defaults(func=cmd_ensemble)
