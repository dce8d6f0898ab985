"""The DICOM node against a real Orthanc (docs/pacs.md): one study's latency, then a burst of studies.

    nice -n 10 python benchmarks/pacs.py --burst 10 --out docs/runs/pacs.json

Starts Orthanc (loopback, its own configuration in a temporary folder) and ``medseg3d serve`` as a separate
process, exactly as a user would, with the real segmenter (the bundled model, ``--report``). Then:

1. latency: the shared raw case (TCGA-FG-6692, as a DICOM study) is uploaded to Orthanc, Orthanc sends it to
   the node; measured from the node's last received instance (the spool's ``received`` time) to the moment
   the SEG is found in Orthanc (polled every 0.25 s), split into quiet period, queue, segmentation and send;
2. burst: ``--burst`` copies of the study with new UIDs are uploaded and sent one after another; checked that
   every study has its SEG in Orthanc (none lost) and the node's queue is drained (``serve --status``), with
   the node's resident memory (VmRSS) sampled every second and after each study.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tests' DICOM study writer and Orthanc driver

from integration.orthanc import Orthanc
from serve.helpers import free_port, raw_study

UID_ROOT = "1.2.826.0.1.3680043.2.1125.3900"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def copy_with_new_uids(study: Path, out: Path, k: int) -> str:
    """The study with study, series, SOP and frame-of-reference UIDs made unique for copy ``k``."""
    import pydicom

    new = f"{UID_ROOT}.{k}"
    for f in sorted(study.rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        old = str(ds.StudyInstanceUID)
        for name in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            setattr(ds, name, new + str(getattr(ds, name))[len(old) :])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        target = out / f.relative_to(study)
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target)
    return new


def state(spool: Path, uid: str) -> dict:
    path = spool / "studies" / uid / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--quiet-period", type=float, default=10.0)
    parser.add_argument("--out", type=Path, help="JSON file for the numbers")
    args = parser.parse_args()
    data = Path(os.environ.get("MEDSEG3D_DATA", REPO.parent / "shared" / "data"))
    tmp = Path(tempfile.mkdtemp(prefix="medseg3d-pacs-"))
    node_port = free_port()
    orthanc = Orthanc(
        tmp / "orthanc", free_port(), free_port(), {"medseg3d": ("MEDSEG3D", "127.0.0.1", node_port)}
    )
    orthanc.start()
    spool = tmp / "spool"
    node = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medseg3d",
            "serve",
            "--ae-title",
            "MEDSEG3D",
            "--port",
            str(node_port),
            "--bind",
            "127.0.0.1",
            "--send-to",
            f"ORTHANC@127.0.0.1:{orthanc.dicom_port}",
            "--allow",
            "ORTHANC@127.0.0.1",
            "--spool",
            str(spool),
            "--quiet-period",
            str(args.quiet_period),
        ],
        stderr=open(tmp / "node.log", "wb"),  # noqa: SIM115
    )
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            samples.append((time.time(), rss_mb(node.pid)))

    threading.Thread(target=sample, daemon=True).start()
    results: dict = {
        "quiet_period_s": args.quiet_period,
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
    }
    try:
        end = time.time() + 300  # the node loads the model before it listens
        while time.time() < end:
            try:
                orthanc.post("/modalities/medseg3d/echo", {})
                break
            except OSError:
                time.sleep(1.0)
        base = raw_study(data, tmp / "study", f"{UID_ROOT}.0")
        uid = f"{UID_ROOT}.0"
        study_id = orthanc.upload(base)
        t_send = time.time()
        orthanc.post("/modalities/medseg3d/store", {"Resources": [study_id], "Synchronous": True})
        t_sent = time.time()
        while not orthanc.study_instances(study_id, "SEG"):
            time.sleep(0.25)
        t_seg = time.time()
        s = state(spool, uid)
        last = (spool / "studies" / uid / "received").stat().st_mtime
        results["latency"] = {
            "instances": len(list(base.rglob("*.dcm"))),
            "orthanc_to_node_store_s": round(t_sent - t_send, 1),
            "last_instance_to_seg_in_orthanc_s": round(t_seg - last, 1),
            "quiet_period_s": round(s["complete"] - last, 1) if "complete" in s else None,
            "segmentation_s": s.get("seconds"),
            "send_s": round(s["sent_at"] - s["started"] - s["seconds"], 1) if "sent_at" in s else None,
            "objects_sent": s.get("outputs"),
        }
        print(json.dumps(results["latency"], indent=1), flush=True)
        uids = []
        for k in range(1, args.burst + 1):
            copy = tmp / f"copy{k}"
            uids.append(copy_with_new_uids(base, copy, k))
            ids = orthanc.upload(copy)
            orthanc.post("/modalities/medseg3d/store", {"Resources": [ids], "Synchronous": False})
        t_burst = time.time()
        per_study, deadline = {}, time.time() + 60 * 60
        while len(per_study) < len(uids) and time.time() < deadline:
            for u in uids:
                if u not in per_study and state(spool, u).get("status") in ("sent", "failed"):
                    per_study[u] = {
                        "status": state(spool, u)["status"],
                        "rss_mb": round(rss_mb(node.pid), 1),
                        "done_after_s": round(time.time() - t_burst, 1),
                    }
                    print(u, per_study[u], flush=True)
            time.sleep(1.0)
        studies_in_orthanc = orthanc.get("/studies")
        segs = sum(bool(orthanc.study_instances(i, "SEG")) for i in studies_in_orthanc)
        status = subprocess.run(
            [sys.executable, "-m", "medseg3d", "serve", "--status", "--spool", str(spool)],
            check=False,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        rss = [mb for t, mb in samples if t >= t_burst]
        results["burst"] = {
            "studies": len(uids),
            "finished": len(per_study),
            "sent": sum(v["status"] == "sent" for v in per_study.values()),
            "studies_with_a_seg_in_orthanc": segs,
            "orthanc_studies": len(studies_in_orthanc),
            "wall_s": round(time.time() - t_burst, 1),
            "status_head": status[0] if status else None,
            "rss_mb_after_each_study": [v["rss_mb"] for v in per_study.values()],
            "rss_mb_min_max_over_burst": [round(min(rss), 1), round(max(rss), 1)] if rss else None,
            "load_average_at_end": os.getloadavg(),
        }
        print(json.dumps(results["burst"], indent=1), flush=True)
    finally:
        stop.set()
        node.terminate()
        node.wait(30)
        orthanc.stop()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"work folder (node.log, orthanc.log): {tmp}")


if __name__ == "__main__":
    main()
