import pytest

from .helpers import Pacs


@pytest.fixture
def pacs():
    peer = Pacs().start()
    yield peer
    peer.stop()


class Nodes:
    """Starts nodes: ``nodes(spool, segmenter, **options)`` on a free loopback port, worker running, with
    short test timings; returns ``(node, its Peer address)``. ``stop_all()`` stops them (also after the
    test)."""

    def __init__(self):
        self.started = []

    def __call__(self, spool, segmenter, worker=True, **options):
        from medseg3d.dicom.net import parse_peer
        from medseg3d.serve import Node

        options.setdefault("quiet", 0.3)
        options.setdefault("retry", (0.2, 1.0))
        options.setdefault("timeout", 5.0)
        options.setdefault("poll", 0.05)
        if isinstance(options.get("send_to"), str):
            options["send_to"] = parse_peer(options["send_to"])
        node = Node(spool, segmenter, **options)
        self.started.append(node)
        port = node.start(0, "127.0.0.1", worker=worker)
        return node, parse_peer(f"{node.ae_title}@127.0.0.1:{port}")

    def stop_all(self):
        while self.started:
            self.started.pop().stop(wait=10)


@pytest.fixture
def nodes():
    started = Nodes()
    yield started
    started.stop_all()
