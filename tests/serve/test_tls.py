"""DICOM over TLS: the node listens with a certificate, and sends its results to a TLS destination; an
unencrypted caller gets no association."""

import shutil
import subprocess

import pytest

from medseg3d.cli import main
from medseg3d.dicom.net import SendError, echo, send_files, tls_context
from medseg3d.errors import InputError

from .helpers import Pacs, StandIn, small_study, wait_for

STUDY = "1.2.826.0.1.3680043.2.1125.39.40"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and its key (PEM files)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed; it makes the test's certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(folder / "key.pem"),
            "-out",
            str(folder / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    return folder / "cert.pem", folder / "key.pem"


def test_the_node_takes_studies_and_sends_results_over_tls(tmp_path, nodes, certificate):
    cert, key = certificate
    pacs = Pacs(tls=tls_context("server", cert, key)).start()
    try:
        client = tls_context("client", ca=cert)
        _, address = nodes(
            tmp_path / "spool",
            StandIn(),
            send_to=pacs.address,
            tls_server=tls_context("server", cert, key),
            tls_client=client,
        )
        assert echo(address, tls=client)
        with pytest.raises(SendError):  # an unencrypted caller: no association
            echo(address, timeout=3)
        assert len(send_files([small_study(tmp_path / "study", STUDY)], address, tls=client).stored) == 16
        wait_for(lambda: pacs.received, what="the result over TLS")
        assert str(pacs.received[0].StudyInstanceUID) == STUDY
    finally:
        pacs.stop()


def test_a_certificate_that_cannot_be_used_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(InputError, match="TLS: cannot use"):
        tls_context("server", tmp_path / "bad.pem", tmp_path / "bad.pem")
    assert main(["serve", "--spool", str(tmp_path / "s"), "--tls-cert", str(tmp_path / "bad.pem")]) == 2
    assert main(["send", str(tmp_path), "N@127.0.0.1:1", "--tls-ca", str(tmp_path / "bad.pem")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "--tls-key together" in err[0] and "TLS: cannot use" in err[1]
