"""The node's spool: every received instance on disk, by study, and each study's state, so that a node that is
killed loses nothing and a restarted one picks up where it was.

Layout (every folder mode 0700: the spool holds patient data and is nobody else's to read)::

    SPOOL/
      node.lock                         held by the running node (one node per spool)
      studies/<StudyInstanceUID>/
        state.json                      status, round, outputs, what was sent (written atomically)
        received                        its modification time: when the last instance arrived
        series/<SeriesInstanceUID>/<SOPInstanceUID>.dcm
        out/<round>/                    what the segmenter wrote for that round
      malformed/<time>-<n>.dcm + .txt   instances that could not be used, and why

Each instance is written to a temporary file and renamed into place, so a file in ``series/`` is always
whole. A study's status is one of :data:`STATUSES`.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

from ..errors import InputError
from ..io import atomic_write, write_json_atomic

STATUSES = ("received", "waiting", "processing", "done", "failed", "sent")
"""received: instances arriving (quiet period not over); waiting: complete, queued; processing: being
segmented; done: segmented, results being sent (or no destination); failed: not segmented (cannot be resolved,
or the segmenter failed; the reason is kept); sent: every result stored by the destination."""

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_PRIVATE = 0o700


def valid_uid(uid) -> bool:
    """A DICOM UID (digits and dots, at most 64 characters): safe as a folder name."""
    return isinstance(uid, str) and len(uid) <= 64 and bool(_UID.match(uid))


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=_PRIVATE)
    os.chmod(path, _PRIVATE)  # mkdir's mode is masked by the umask, and an existing folder keeps its own
    return path


class Spool:
    """The spool folder of one node (see the module's description for its layout).

    Args:
        root: the spool folder; created (mode 0700) if missing.
        create: False to read an existing spool only (no folder made, no permission changed).

    Raises:
        InputError: ``root`` exists and is not a folder, or cannot be written; without ``create``: ``root`` is
            not a spool.
    """

    def __init__(self, root: str | os.PathLike, create: bool = True):
        self.root = Path(root)
        self._lock = threading.RLock()  # state read-modify-write: association threads and the worker
        self._n_malformed = 0
        if not create:
            if not (self.root / "studies").is_dir():
                raise InputError(
                    f"{self.root}: not a medseg3d spool folder (no studies/ inside); give the node's --spool"
                )
            return
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"{self.root}: is a file; give a folder for --spool")
        try:
            _private_dir(self.root)
            _private_dir(self.root / "studies")
            _private_dir(self.root / "malformed")
        except OSError as exc:
            raise InputError(
                f"{self.root}: cannot make the spool folder ({exc.strerror}); choose another --spool"
            ) from None

    # ----------------------------------------------------------------------------------------- instances
    def study_dir(self, study_uid: str) -> Path:
        """A study's folder in the spool: ``studies/<study uid>``."""
        return self.root / "studies" / study_uid

    def instance_path(self, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        """Where a received instance is kept: ``<study>/series/<series uid>/<sop uid>.dcm``."""
        return self.study_dir(study_uid) / "series" / series_uid / f"{sop_uid}.dcm"

    def store(self, study_uid: str, series_uid: str, sop_uid: str, write) -> tuple[Path, bool]:
        """Write one instance into its series folder, atomically.

        Args:
            study_uid, series_uid, sop_uid: the instance's UIDs (its place in the spool).
            write: ``write(tmp_path)`` writes the file.

        Returns:
            ``(path, new)``: ``new`` is False when the spool already held this SOP instance (kept as it was).
        """
        path = self.instance_path(study_uid, series_uid, sop_uid)
        if path.exists():
            return path, False
        if not path.parent.is_dir():  # the study's first instance of this series
            for folder in (path.parent.parent.parent, path.parent.parent, path.parent):
                _private_dir(folder)
        atomic_write(path, write, suffix=".part")
        marker = self.study_dir(study_uid) / "received"
        marker.touch()
        os.utime(marker)  # touch() keeps an existing file's time on some systems
        with self._lock:
            if not (self.study_dir(study_uid) / "state.json").exists():
                self._write(
                    study_uid,
                    {"study_uid": study_uid, "status": "received", "round": 0, "first_received": time.time()},
                )
        return path, True

    def keep_malformed(self, data: bytes, reason: str) -> Path:
        """Keep an instance that cannot be used aside (its bytes and a ``.txt`` saying why).

        Args:
            data: the instance's bytes as received.
            reason: why it cannot be used.

        Returns:
            The ``.dcm`` file under ``malformed/``.
        """
        with self._lock:
            self._n_malformed += 1
            stem = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{self._n_malformed}"
        path = self.root / "malformed" / f"{stem}.dcm"
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), suffix=".part")
        atomic_write(
            path.with_suffix(".txt"), lambda tmp: Path(tmp).write_text(reason + "\n", encoding="utf-8")
        )
        return path

    def last_received(self, study_uid: str) -> float:
        """When the study's last new instance arrived (seconds since the epoch; survives a restart)."""
        try:
            return (self.study_dir(study_uid) / "received").stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def series_dirs(self, study_uid: str) -> list[Path]:
        """A study's series folders, sorted ([] before its first instance)."""
        base = self.study_dir(study_uid) / "series"
        return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def count_instances(self, study_uid: str) -> tuple[int, int]:
        """``(instances, series)`` held for the study."""
        dirs = self.series_dirs(study_uid)
        return sum(1 for d in dirs for f in d.iterdir() if f.suffix == ".dcm"), len(dirs)

    def out_dir(self, study_uid: str, round_: int) -> Path:
        """The (private, made if missing) folder of a study's results of one round:
        ``<study>/out/<round>``."""
        return _private_dir(self.study_dir(study_uid) / "out" / str(round_))

    # ------------------------------------------------------------------------------------------ state
    def studies(self) -> list[str]:
        """The study UIDs that have a state, sorted."""
        base = self.root / "studies"
        return sorted(p.name for p in base.iterdir() if (p / "state.json").is_file())

    def state(self, study_uid: str) -> dict:
        """A study's state (``state.json``)."""
        path = self.study_dir(study_uid) / "state.json"
        return json.loads(path.read_text(encoding="utf-8"))

    def _write(self, study_uid: str, state: dict) -> None:
        write_json_atomic(dict(state, updated=time.time()), self.study_dir(study_uid) / "state.json")

    def update(self, study_uid: str, round_: int | None = None, **fields) -> dict | None:
        """Set ``fields`` in the study's state.

        Args:
            study_uid: the study.
            round_: only while the study is still in this round (a study reopened meanwhile by new instances
                is left to its next round); None: always.
            fields: the state entries to set.

        Returns:
            The new state, or None when the round had moved on.
        """
        with self._lock:
            state = self.state(study_uid)
            if round_ is not None and state.get("round", 0) != round_:
                return None
            state.update(fields)
            self._write(study_uid, state)
            return state

    def reopen(self, study_uid: str) -> dict | None:
        """A new image for a study that was already queued or finished: back to ``received`` in a new round
        (segmented again with everything received). Returns the new state, or None if it was receiving."""
        with self._lock:
            state = self.state(study_uid)
            if state["status"] == "received":
                return None
            state = {
                "study_uid": study_uid,
                "status": "received",
                "round": state.get("round", 0) + 1,
                "first_received": state.get("first_received"),
                "reopened_from": state["status"],
            }
            self._write(study_uid, state)
            return state


def status_lines(root: str | os.PathLike) -> list[str]:
    """What ``medseg3d serve --status`` prints: counts per status, then one line per study in the order they
    arrived.

    Raises:
        InputError: ``root`` is not a spool folder.
    """
    spool = Spool(root, create=False)
    root = spool.root
    rows, counts = [], dict.fromkeys(STATUSES, 0)
    uids = sorted(spool.studies(), key=spool.last_received)  # the order they arrived: the queue's order
    width = max(map(len, uids), default=0)
    for uid in uids:
        state = spool.state(uid)
        counts[state["status"]] = counts.get(state["status"], 0) + 1
        n, series = spool.count_instances(uid)
        last = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(spool.last_received(uid)))
        detail = state.get("reason") or state.get("send_error") or ""
        sent = (
            f" sent {len(state.get('sent', []))}/{len(state.get('outputs', []))}"
            if state.get("outputs")
            else ""
        )
        rows.append(
            f"{uid:<{width}}  {state['status']:<10} {n} instances in {series} series, last {last}{sent}"
            + (f"  ({detail})" if detail else "")
        )
    malformed = len(list((root / "malformed").glob("*.dcm"))) if (root / "malformed").is_dir() else 0
    head = ", ".join(f"{k} {counts[k]}" for k in STATUSES) + f"; malformed instances kept aside {malformed}"
    return [head] + rows
