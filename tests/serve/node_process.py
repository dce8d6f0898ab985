"""A node in its own process, for the test that kills it mid-study: ``python -m serve.node_process SPOOL PORT
DESTINATION STARTED`` (run from tests/); its stand-in segmenter writes STARTED, then takes 60 s."""

import sys
import time
from pathlib import Path

from medseg3d.dicom.net import parse_peer
from medseg3d.serve import Node

from .helpers import StandIn

if __name__ == "__main__":
    spool, port, destination, started = sys.argv[1:5]
    node = Node(
        spool,
        StandIn(delay=60.0, started=Path(started)),
        send_to=parse_peer(destination),
        quiet=0.3,
        timeout=5.0,
    )
    node.start(int(port), "127.0.0.1")
    time.sleep(120)  # killed by the test long before
