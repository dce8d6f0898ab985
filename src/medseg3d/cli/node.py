"""The DICOM node: ``serve`` and ``send``."""

from __future__ import annotations

import sys
from pathlib import Path


def cmd_serve(args) -> None:
    """``medseg3d serve``: run the DICOM node until Ctrl-C or SIGTERM (or print the spool's queue with
    ``--status``)."""
    from ..serve import status_lines

    if args.status:
        for line in status_lines(args.spool):
            print(line)
        return
    import logging
    import signal

    from ..dicom.net import parse_allowed, parse_peer, tls_context
    from ..errors import InputError
    from ..serve import Node, PredictSegmenter

    send_to = parse_peer(args.send_to) if args.send_to else None
    allow = [parse_allowed(a) for a in args.allow or []]
    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_ca and not args.tls_cert):
        raise InputError("TLS: give --tls-cert and --tls-key together (and --tls-ca only with them)")
    tls_server = tls_context("server", args.tls_cert, args.tls_key, args.tls_ca) if args.tls_cert else None
    tls_client = tls_context("client", ca=args.send_tls_ca) if args.send_tls_ca else None
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    # one line per association and instance otherwise
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    node = Node(
        args.spool,
        PredictSegmenter(args.model, device=args.device, report=not args.no_report),
        ae_title=args.ae_title,
        send_to=send_to,
        allow=allow,
        quiet=args.quiet_period,
        tls_server=tls_server,
        tls_client=tls_client,
    )
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


def cmd_send(args) -> int:
    """``medseg3d send``: C-STORE a folder's DICOM files; returns 3 when the node refused some, else 0."""
    from ..dicom.net import parse_peer, send_files, tls_context

    tls = tls_context("client", ca=args.tls_ca) if args.tls_ca else None
    result = send_files(
        [args.folder], parse_peer(args.destination), calling_aet=args.ae_title, timeout=args.timeout, tls=tls
    )
    skipped = list(result.skipped.items())
    for path, why in skipped[:10]:
        print(f"note: skipped {path}: {why}")
    if len(skipped) > 10:
        print(f"note: ... and {len(skipped) - 10} more files skipped")
    for path, why in result.refused.items():
        print(f"refused by {args.destination}: {path} ({why})", file=sys.stderr)
    print(
        f"sent {len(result.stored)} DICOM file(s) to {args.destination}"
        + (f"; {len(result.refused)} refused" if result.refused else "")
    )
    return 3 if result.refused else 0  # 3: done, but look (as predict's checks); 1 stays a bug's


def add_serve(sub) -> None:
    """Add the ``serve`` sub-command."""
    s = sub.add_parser(
        "serve",
        help="a DICOM node: receive studies from a PACS, segment each, send the SEG and report back",
        epilog="exit status: 0 stopped (Ctrl-C or SIGTERM), 2 a bad option, "
        "a busy port or a spool held by another node, 1 anything else (a bug)",
    )
    s.add_argument("--ae-title", default="MEDSEG3D", help="our AE title (default MEDSEG3D)")
    s.add_argument("--port", type=int, default=11112, help="port to listen on (default 11112)")
    s.add_argument(
        "--bind", default="0.0.0.0", help="address to listen on (default all; 127.0.0.1: this machine only)"
    )
    s.add_argument(
        "--send-to",
        metavar="AET@HOST:PORT",
        help="where the results go (e.g. the PACS); default: kept in the spool",
    )
    s.add_argument(
        "--allow",
        action="append",
        metavar="AET@ADDRESS",
        help="accept only this calling AE title from this address (* for any address); repeatable; "
        "default: any caller",
    )
    s.add_argument(
        "--spool",
        default=str(Path.home() / ".cache" / "medseg3d" / "spool"),
        help="folder for received studies and results, mode 0700 (default ~/.cache/medseg3d/spool)",
    )
    s.add_argument(
        "--quiet-period",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a study is complete after this long without a new instance (default 10)",
    )
    s.add_argument(
        "--model", default="brats", help="bundled model name, run folder or model file (default brats)"
    )
    s.add_argument("--device", default="auto")
    s.add_argument(
        "--no-report", action="store_true", help="send the DICOM SEG only, without the case report"
    )
    s.add_argument("--tls-cert", metavar="PEM", help="listen over TLS with this certificate (and --tls-key)")
    s.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    s.add_argument(
        "--tls-ca",
        metavar="PEM",
        help="with --tls-cert: accept only callers whose certificate this CA signed",
    )
    s.add_argument(
        "--send-tls-ca",
        metavar="PEM",
        help="send results over TLS, checking the destination's certificate against this CA file",
    )
    s.add_argument(
        "--status",
        action="store_true",
        help="print the spool's queue (received, waiting, processing, done, failed, sent) and exit",
    )
    s.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    s.set_defaults(func=cmd_serve)


def add_send(sub) -> None:
    """Add the ``send`` sub-command."""
    s = sub.add_parser(
        "send",
        help="C-STORE the DICOM files of a folder to a DICOM node",
        epilog="exit status: 0 all sent, 3 some refused by the node (named on stderr), 2 the node "
        "cannot be reached or a bad argument, 1 anything else (a bug)",
    )
    s.add_argument(
        "folder", help="a study folder (searched recursively; files that are not DICOM are skipped)"
    )
    s.add_argument("destination", metavar="AET@HOST:PORT", help="e.g. MEDSEG3D@127.0.0.1:11112")
    s.add_argument("--ae-title", default="MEDSEG3D", help="our (calling) AE title (default MEDSEG3D)")
    s.add_argument(
        "--timeout", type=float, default=30.0, help="seconds for connecting and each answer (default 30)"
    )
    s.add_argument(
        "--tls-ca", metavar="PEM", help="send over TLS, checking the node's certificate against this CA file"
    )
    s.set_defaults(func=cmd_send)
