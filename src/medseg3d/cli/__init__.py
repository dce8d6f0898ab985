"""``medseg3d <command>``: a thin layer over the Python API.

Errors a user can cause end in one line on stderr (``medseg3d: error: ...``) and exit status 2. The commands
live by area: :mod:`.data` (info, cache, split), :mod:`.training` (nets, train, experiment, plan, crossval,
bundle, calibrate, ensemble), :mod:`.predicting` (predict, align, export, evaluate, show, compare, models) and
:mod:`.node` (serve, send); :mod:`.common` holds the argument types they share.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import MedsegError
from . import data, node, predicting, training

EXIT_STATUS = """exit status, every command:
  0  done (predict: every output written and no quality check fired)
  3  predict: every output written, but a quality check fired for a case: look at it (see
     medseg3d predict --help); send: some files refused by the node
  2  refused: the input or an option, one 'medseg3d: error:' line on standard error, nothing half-written
  1  anything else: a bug (please report it); 130 interrupted"""


def build_parser() -> argparse.ArgumentParser:
    """The ``medseg3d`` argument parser, one sub-command per ``add_*`` of the cli modules."""
    from .. import __version__

    p = argparse.ArgumentParser(
        prog="medseg3d",
        description="3D CNN segmentation of medical images (Kayalibay et al. 2017).",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"medseg3d {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data.add_info(sub)
    data.add_cache(sub)
    data.add_split(sub)
    data.add_synth_nonenhancing(sub)
    training.add_nets(sub)
    training.add_train(sub)
    predicting.add_predict(sub)
    predicting.add_align(sub)
    predicting.add_export(sub)
    predicting.add_evaluate(sub)
    predicting.add_show(sub)
    predicting.add_compare(sub)
    training.add_experiment(sub)
    training.add_plan(sub)
    training.add_crossval(sub)
    training.add_bundle(sub)
    training.add_calibrate(sub)
    training.add_ensemble(sub)
    node.add_serve(sub)
    node.add_send(sub)
    predicting.add_models(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one ``medseg3d`` command line.

    Args:
        argv: the arguments after the program name (None: ``sys.argv[1:]``).

    Returns:
        The exit status: the command's own (predict: 0 or 3), 2 on a MedsegError (printed as one
        ``medseg3d: error: ...`` line on stderr), 130 on Ctrl-C, 141 when stdout's reader has gone.
    """
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
