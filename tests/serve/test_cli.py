"""``medseg3d send`` and ``medseg3d serve`` on the command line: output, exit statuses, SIGTERM."""

import os
import signal
import subprocess
import sys

from medseg3d.cli import main
from medseg3d.dicom.net import SendError, echo, parse_peer

from .helpers import StandIn, free_port, small_study, wait_for


def test_send_stores_a_folder_and_notes_what_is_not_dicom(tmp_path, pacs, capsys):
    study = small_study(tmp_path / "study", "1.2.826.0.1.3680043.2.1125.39.30")
    (study / "README.txt").write_text("not an image")
    assert main(["send", str(study), pacs.address]) == 0
    out = capsys.readouterr().out
    assert f"note: skipped {study / 'README.txt'}: not a DICOM file" in out
    assert f"sent 16 DICOM file(s) to {pacs.address}" in out and len(pacs.received) == 16


def test_send_says_which_files_the_node_refused_and_exits_3(tmp_path, nodes, capsys):
    import pydicom

    study = small_study(tmp_path / "study", "1.2.826.0.1.3680043.2.1125.39.32")
    broken = max((study / "AX_T2").glob("*.dcm"))
    ds = pydicom.dcmread(broken)
    ds.PixelData = ds.PixelData[:10]
    ds.save_as(broken)
    _, node = nodes(tmp_path / "spool", StandIn(), worker=False)
    assert main(["send", str(study), str(node)]) == 3
    captured = capsys.readouterr()
    assert f"refused by {node}: {broken} (status 0xC210)" in captured.err
    assert f"sent 15 DICOM file(s) to {node}; 1 refused" in captured.out


def test_send_to_a_node_that_is_down_is_one_line_and_exit_2(tmp_path, capsys):
    study = small_study(tmp_path / "study", "1.2.826.0.1.3680043.2.1125.39.31")
    assert main(["send", str(study), f"NOBODY@127.0.0.1:{free_port()}", "--timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medseg3d: error: NOBODY@127.0.0.1:") and err.count("\n") == 1
    assert main(["send", str(study), "NOBODY@127.0.0.1"]) == 2


def test_serve_refuses_bad_options_before_loading_anything(tmp_path, capsys):
    assert main(["serve", "--spool", str(tmp_path / "s"), "--send-to", "PACS@host"]) == 2
    assert main(["serve", "--spool", str(tmp_path / "s"), "--allow", "PACS"]) == 2
    assert main(["serve", "--status", "--spool", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("medseg3d: error: ") for line in err)


def test_serve_answers_echo_and_stops_cleanly_on_sigterm(tmp_path):
    port = free_port()
    node = parse_peer(f"MEDSEG3D@127.0.0.1:{port}")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medseg3d",
            "serve",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--spool",
            str(tmp_path / "spool"),
            "--model",
            "brats-v1",
            "--device",
            "cpu",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        wait_for(lambda: _echoes(node), timeout=120, what="the node to answer C-ECHO")
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"listening as MEDSEG3D on 127.0.0.1:{port}" in err and "stopped" in err
    status = subprocess.run(
        [sys.executable, "-m", "medseg3d", "serve", "--status", "--spool", str(tmp_path / "spool")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert status.startswith("received 0, waiting 0, processing 0, done 0, failed 0, sent 0")


def _echoes(node) -> bool:
    try:
        return echo(node, timeout=2)
    except SendError:
        return False
