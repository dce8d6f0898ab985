"""A real Orthanc for tests and measurements: started on loopback with its own configuration and storage in a
folder, driven through its REST API (urllib only)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

BINARY = "Orthanc"


def orthanc_binary() -> str | None:
    return shutil.which(BINARY)


class Orthanc:
    """Orthanc on 127.0.0.1 with ``folder`` holding its configuration, database and log.

    Args:
        folder: a fresh folder.
        dicom_port, http_port: free loopback ports.
        modalities: ``{name: (AE title, host, port)}`` it may send to.
    """

    def __init__(
        self, folder: Path, dicom_port: int, http_port: int, modalities: dict, ae_title: str = "ORTHANC"
    ):
        self.folder, self.dicom_port, self.http_port, self.ae_title = (
            Path(folder),
            dicom_port,
            http_port,
            ae_title,
        )
        self.url = f"http://127.0.0.1:{http_port}"
        config = {
            "Name": "medseg3d-test",
            "StorageDirectory": str(self.folder / "db"),
            "IndexDirectory": str(self.folder / "db"),
            "DicomAet": ae_title,
            "DicomPort": dicom_port,
            "HttpPort": http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "SslEnabled": False,
            "Plugins": [],
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomModalities": {k: list(v) for k, v in modalities.items()},
            "StableAge": 2,
            "ConcurrentJobs": 1,
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "orthanc.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> Orthanc:
        log = open(self.folder / "orthanc.log", "wb")  # noqa: SIM115 (Orthanc writes to it until stopped)
        self.process = subprocess.Popen(
            [orthanc_binary(), str(self.folder / "orthanc.json")],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.folder,
        )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Orthanc exited ({self.process.returncode}); see {self.folder / 'orthanc.log'}"
                )
            try:
                self.get("/system")
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"Orthanc did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def _call(
        self, method: str, path: str, data: bytes | None = None, content_type: str = "application/json"
    ):
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": content_type} if data is not None else {},
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.read()

    def get(self, path: str):
        return json.loads(self._call("GET", path))

    def post(self, path: str, body) -> dict:
        return json.loads(self._call("POST", path, json.dumps(body).encode()))

    def upload(self, folder: Path) -> str:
        """POST every DICOM file of ``folder`` to Orthanc; returns the Orthanc ID of their study."""
        studies = set()
        for f in sorted(folder.rglob("*.dcm")):
            answer = json.loads(self._call("POST", "/instances", f.read_bytes(), "application/dicom"))
            studies.add(answer["ParentStudy"])
        (study,) = studies
        return study

    def instance_file(self, instance_id: str) -> bytes:
        return self._call("GET", f"/instances/{instance_id}/file")

    def study_instances(self, study_id: str, modality: str) -> list[str]:
        """Orthanc IDs of the study's instances in series of ``modality``."""
        out = []
        for series in self.get(f"/studies/{study_id}/series"):
            if series["MainDicomTags"].get("Modality") == modality:
                out += series["Instances"]
        return out
