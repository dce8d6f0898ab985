"""The DICOM node (``medseg3d serve``): receive studies, segment each once it is complete, send the results
back.

Three parts run together:

- the Storage SCP (association threads, pynetdicom): C-ECHO, and C-STORE of each instance into the spool
  (:class:`~medseg3d.serve.spool.Spool`), checked first: a malformed instance is kept aside, never a crash;
- the worker (one thread, one study at a time: a segmentation already uses both cores of a small machine):
  a study is complete after ``quiet`` seconds without a new instance; its usable series are identified with
  the project's case resolution (:func:`medseg3d.datasets.resolve_case_channels`: series descriptions and
  its content checks); a study that cannot be resolved is reported (status ``failed`` with the reason),
  never segmented on a guess; otherwise the segmenter writes its outputs for the study;
- sending back: every ``*.dcm`` the segmenter wrote is C-STOREd to ``send_to``; each file is recorded in the
  study's state as soon as the destination confirms it, so a restart never sends it again; while the
  destination is down the worker retries with exponential back-off.

Policy for a study sent again: instances the spool already holds (same SOP Instance UID) are acknowledged and
change nothing, so a study re-sent whole is segmented once and its results sent once. New MR images for a
study that was already queued or finished reopen it: it is segmented again with everything received (a new
round) and the new results are sent too.

Every log line names the study (``study <StudyInstanceUID>: ...``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import threading
import time
from collections import Counter
from pathlib import Path

from ..datasets import resolve_case_channels
from ..dicom.net import DEFAULT_AE_TITLE, Peer, send_files
from ..errors import InputError, MedsegError
from .spool import Spool, valid_uid
from .usable import unusable_reason, usable_series

log = logging.getLogger("medseg3d.serve")

# C-STORE statuses (PS3.4 B.2.3, PS3.7 C): what the sender is told
_SUCCESS, _NOT_AUTHORISED, _OUT_OF_RESOURCES, _CANNOT_UNDERSTAND = 0x0000, 0x0124, 0xA700, 0xC210
_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


def instance_problem(ds) -> str | None:
    """Why a received instance (a decoded pydicom Dataset with its file meta) cannot be spooled, or None.

    Checks the three UIDs that place it in the spool, and that uncompressed pixel data are as long as its
    rows, columns, samples, bits and frames say (a truncated transfer is the common corruption).
    """
    for name in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        value = ds.get(name)
        if not valid_uid(str(value) if value is not None else None):
            return f"{name} missing or not a valid UID ({str(value)[:70]!r})"
    syntax = str(getattr(ds, "file_meta", {}).get("TransferSyntaxUID", ""))
    if "PixelData" in ds and syntax in _UNCOMPRESSED:
        try:
            expected = (
                int(ds.Rows)
                * int(ds.Columns)
                * int(ds.get("SamplesPerPixel", 1))
                * int(ds.get("NumberOfFrames", 1) or 1)
                * int(ds.BitsAllocated)
                // 8
            )
        except (AttributeError, TypeError, ValueError) as exc:
            return f"image without a usable size ({type(exc).__name__}: {exc})"
        got = len(ds.PixelData)
        if got < expected:
            return f"pixel data truncated: {got} of {expected} bytes"
    return None


def _resolve_addresses(allow) -> list[tuple[str, str]]:
    out = []
    for aet, address in allow:
        try:
            out.append((aet, address if address == "*" else socket.gethostbyname(address)))
        except OSError:
            raise InputError(f"--allow {aet}@{address}: cannot resolve the address {address!r}") from None
    return out


class Node:
    """A medseg3d DICOM node on a spool folder.

    Args:
        spool: the spool folder (see :mod:`medseg3d.serve.spool`).
        segmenter: a callable ``segmenter(channels, out_dir, say)`` with a ``modalities`` attribute: given
            ``{modality: series folder}`` it writes its outputs into ``out_dir`` (DICOM ones as ``*.dcm``);
            ``say`` takes progress lines. :class:`~medseg3d.serve.segment.PredictSegmenter` in production.
        ae_title: our AE title.
        send_to: where results go (None: they stay in the spool, status ``done``).
        allow: ``(calling AE title, address or "*")`` pairs accepted; empty: any caller.
        quiet: seconds without a new instance after which a study is complete.
        retry: ``(first, longest)`` delay in seconds between tries of a send that failed; doubles each time.
        timeout: network timeout in seconds (connecting, each response).
        poll: seconds the worker waits between looks when idle.
        tls_server: a server :func:`~medseg3d.dicom.net.tls_context`: listen over TLS (None: unencrypted).
        tls_client: a client one: send results over TLS (None: unencrypted).

    Raises:
        InputError: another node holds the spool, or an ``allow`` address cannot be resolved.
    """

    def __init__(
        self,
        spool: Spool | str | os.PathLike,
        segmenter,
        *,
        ae_title: str = DEFAULT_AE_TITLE,
        send_to: Peer | None = None,
        allow=(),
        quiet: float = 10.0,
        retry=(5.0, 300.0),
        timeout: float = 30.0,
        poll: float = 0.5,
        tls_server=None,
        tls_client=None,
    ):
        self.spool = spool if isinstance(spool, Spool) else Spool(spool)
        self.segmenter = segmenter
        self.ae_title, self.send_to, self.quiet, self.timeout = ae_title, send_to, quiet, timeout
        self.retry, self.poll = retry, poll
        self.tls_server, self.tls_client = tls_server, tls_client
        self.allow = _resolve_addresses(allow)
        self._lock_file = self._take_spool()
        self._server = None
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._received: dict[int, Counter] = {}  # per association: (study, what) -> count
        self._resume()

    # --------------------------------------------------------------------------------------- lifetime
    def _take_spool(self):
        fh = open(self.spool.root / "node.lock", "a+")  # noqa: SIM115 (held open while the node runs)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise InputError(
                f"{self.spool.root}: another medseg3d serve is using this spool; stop it or give "
                "another --spool"
            ) from None
        return fh

    def _resume(self) -> None:
        """A study left ``processing`` by a node that was killed is queued again (its round's partial
        outputs are removed when it is processed)."""
        for uid in self.spool.studies():
            state = self.spool.state(uid)
            if state["status"] == "processing":
                self.spool.update(uid, state.get("round", 0), status="waiting")
                log.info("study %s: was being segmented when the node stopped; queued again", uid)

    def start(self, port: int = 11112, bind: str = "0.0.0.0", worker: bool = True) -> int:
        """Start listening (and, with ``worker``, the worker thread).

        Args:
            port: the TCP port (0: a free one).
            bind: the address to listen on.
            worker: also start the worker thread that segments complete studies.

        Returns:
            The port listened on.

        Raises:
            InputError: the port cannot be opened.
        """
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification

        ae = AE(ae_title=self.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        # an unknown calling AE title is rejected at association; the pair is checked per request
        if self.allow:
            ae.require_calling_aet = sorted({aet for aet, _ in self.allow})
        handlers = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_RELEASED, self._on_end),
            (evt.EVT_ABORTED, self._on_end),
        ]
        try:
            self._server = ae.start_server(
                (bind, port), block=False, evt_handlers=handlers, ssl_context=self.tls_server
            )
        except OSError as exc:
            raise InputError(
                f"cannot listen on {bind}:{port} ({exc.strerror}); is another node using the port?"
            ) from None
        addresses = {address for _, address in self.allow}
        if self.allow and "*" not in addresses:
            self._server.verify_request = lambda request, client: self._address_allowed(client[0], addresses)
        port = self._server.server_address[1]
        log.info(
            "listening as %s on %s:%d%s; spool %s; results to %s%s; %s",
            self.ae_title,
            bind,
            port,
            " (TLS)" if self.tls_server else " (unencrypted)",
            self.spool.root,
            self.send_to or "nowhere (kept in the spool)",
            (" (TLS)" if self.tls_client else " (unencrypted)") if self.send_to else "",
            "callers " + ", ".join(f"{a}@{h}" for a, h in self.allow)
            if self.allow
            else "any caller accepted",
        )
        if worker:
            self._worker = threading.Thread(target=self.work_forever, name="medseg3d-worker", daemon=True)
            self._worker.start()
        return port

    def stop(self, wait: float = 30.0) -> None:
        """Stop listening and the worker (waiting up to ``wait`` seconds for the study in hand)."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._worker is not None:
            self._worker.join(wait)
            self._worker = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def work_forever(self) -> None:
        """The worker loop: :meth:`work_once` until :meth:`stop` (a failure is logged, never the end of
        it)."""
        while not self._stop.is_set():
            try:
                busy = self.work_once()
            except Exception:  # the node outlives any one study's trouble
                log.exception("worker: unexpected error; continuing")
                busy = False
            if not busy:
                self._stop.wait(self.poll)

    # ------------------------------------------------------------------------------------- receiving
    def _address_allowed(self, address: str, addresses: set) -> bool:
        if address in addresses:
            return True
        log.warning("connection from %s refused: not in --allow", address)
        return False

    def _caller(self, assoc) -> str:
        return f"{str(assoc.requestor.ae_title).strip()}@{assoc.requestor.address}"

    def _allowed(self, assoc) -> bool:
        if not self.allow:
            return True
        aet, address = str(assoc.requestor.ae_title).strip(), assoc.requestor.address
        return any(aet == a and h in ("*", address) for a, h in self.allow)

    def _on_echo(self, event) -> int:
        if not self._allowed(event.assoc):
            log.warning("C-ECHO from %s refused: not in --allow", self._caller(event.assoc))
            return _NOT_AUTHORISED
        return _SUCCESS

    def _on_store(self, event) -> int:
        counts = self._received.setdefault(id(event.assoc), Counter())
        if not self._allowed(event.assoc):
            log.warning("C-STORE from %s refused: not in --allow", self._caller(event.assoc))
            return _NOT_AUTHORISED
        raw = event.request.DataSet.getvalue() if event.request.DataSet is not None else b""
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            problem = instance_problem(ds)
        except Exception as exc:  # noqa: BLE001 (pydicom raises many kinds of error on bytes it cannot parse)
            ds, problem = None, f"cannot be decoded ({type(exc).__name__}: {exc})"
        study = str(ds.get("StudyInstanceUID", "unknown")) if ds is not None else "unknown"
        if problem:
            return self._keep_aside(event, raw, study, problem, counts)
        try:
            _, new = self.spool.store(
                study,
                str(ds.SeriesInstanceUID),
                str(ds.SOPInstanceUID),
                lambda tmp: self._write_instance(tmp, event.file_meta, raw),
            )
        except OSError as exc:
            log.error("study %s: cannot store an instance (%s); the sender is told to retry", study, exc)
            return _OUT_OF_RESOURCES
        counts[(study, "new" if new else "already held")] += 1
        if new:
            reason = unusable_reason(ds)
            reopened = self.spool.reopen(study) if reason is None else None
            if reopened is not None:
                log.info(
                    "study %s: a new image after it was %s: will be segmented again (round %d)",
                    study,
                    reopened["reopened_from"],
                    reopened["round"],
                )
        return _SUCCESS

    def _keep_aside(self, event, raw: bytes, study: str, problem: str, counts: Counter) -> int:
        try:
            path = self.spool.keep_malformed(raw, f"from {self._caller(event.assoc)}: {problem}")
        except OSError as exc:
            log.error(
                "study %s: a malformed instance (%s) could not be kept either (%s)", study, problem, exc
            )
            return _CANNOT_UNDERSTAND
        counts[(study, "kept aside")] += 1
        log.warning(
            "study %s: instance from %s kept aside as %s: %s",
            study,
            self._caller(event.assoc),
            path.name,
            problem,
        )
        return _CANNOT_UNDERSTAND

    @staticmethod
    def _write_instance(tmp: str, file_meta, raw: bytes) -> None:
        """A DICOM Part-10 file of the dataset's bytes exactly as received (no decoding and re-encoding)."""
        from pydicom.filewriter import write_file_meta_info

        with open(tmp, "wb") as fh:
            fh.write(b"\x00" * 128 + b"DICM")
            write_file_meta_info(fh, file_meta, enforce_standard=True)
            fh.write(raw)

    def _on_end(self, event) -> None:
        counts = self._received.pop(id(event.assoc), None)
        if not counts:
            return
        for study in sorted({s for s, _ in counts}):
            parts = ", ".join(
                f"{counts[(study, k)]} {k}"
                for k in ("new", "already held", "kept aside")
                if counts[(study, k)]
            )
            log.info("study %s: association with %s ended: %s", study, self._caller(event.assoc), parts)

    # ----------------------------------------------------------------------------------------- worker
    def work_once(self, now: float | None = None) -> bool:
        """One pass of the worker: mark complete studies, send what is due, segment the oldest queued study.

        Returns:
            True when something was done (the loop then looks again at once).
        """
        now = time.time() if now is None else now
        states = {uid: self.spool.state(uid) for uid in self.spool.studies()}
        for uid, state in states.items():
            if state["status"] == "received" and now - self.spool.last_received(uid) >= self.quiet:
                n, series = self.spool.count_instances(uid)
                if self.spool.update(uid, state.get("round", 0), status="waiting", complete=now):
                    state["status"] = "waiting"
                    log.info(
                        "study %s: complete (%d instances in %d series, nothing new for %.0f s); queued",
                        uid,
                        n,
                        series,
                        self.quiet,
                    )
        busy = self._send_due(states, now)
        waiting = sorted(
            (self.spool.last_received(uid), uid) for uid, s in states.items() if s["status"] == "waiting"
        )
        if waiting:
            uid = waiting[0][1]
            self._process(uid, states[uid].get("round", 0))
            busy = True
        return busy

    def _process(self, uid: str, round_: int) -> None:
        t0 = time.time()
        if not self.spool.update(uid, round_, status="processing", started=t0, reason=None):
            return
        log.info("study %s: processing (round %d)", uid, round_)
        try:
            self._segment(uid, round_, t0)
        except Exception as exc:  # reading headers, resolving: whatever fails, the study is failed, not stuck
            log.exception("study %s: processing failed", uid)
            self._fail(uid, round_, f"processing failed: {type(exc).__name__}: {exc}")

    def _segment(self, uid: str, round_: int, t0: float) -> None:
        kept, notes = usable_series(self.spool.series_dirs(uid))
        for note in notes:
            log.info("study %s: %s", uid, note)
        if not kept:
            return self._fail(uid, round_, f"no usable MR series ({len(notes)} left out)")
        try:
            case, lines = resolve_case_channels(kept, self.segmenter.modalities)
        except MedsegError as exc:
            return self._fail(uid, round_, f"cannot tell the sequences apart, not segmented: {exc}")
        for line in lines:
            log.info("study %s: %s", uid, line)
        out = self.spool.out_dir(uid, round_)
        for stale in out.iterdir():  # a round cut short by a kill: start it clean
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        try:
            self.segmenter(dict(case.channels), out, lambda line: log.info("study %s: %s", uid, line))
        except MedsegError as exc:
            return self._fail(uid, round_, f"segmentation refused: {exc}")
        except Exception as exc:  # a bug or a corrupt series must not take the node down
            log.exception("study %s: segmentation failed", uid)
            return self._fail(uid, round_, f"segmentation failed: {type(exc).__name__}: {exc}")
        outputs = sorted(p.name for p in out.glob("*.dcm"))
        if not outputs:
            return self._fail(
                uid, round_, "segmented, but no DICOM object was written (see the warnings above)"
            )
        seconds = round(time.time() - t0, 1)
        if self.spool.update(
            uid, round_, status="done", outputs=outputs, sent=[], attempts=0, next_try=0.0, seconds=seconds
        ):
            log.info("study %s: segmented in %.1f s: %s", uid, seconds, ", ".join(outputs))

    def _fail(self, uid: str, round_: int, reason: str) -> None:
        if self.spool.update(uid, round_, status="failed", reason=reason):
            log.error("study %s: %s", uid, reason)

    def _send_due(self, states: dict, now: float) -> bool:
        if self.send_to is None:
            return False
        busy = False
        for uid, state in states.items():
            if state["status"] != "done" or state.get("next_try", 0.0) > now:
                continue
            busy = True
            self._send(uid, state, now)
        return busy

    def _send(self, uid: str, state: dict, now: float) -> None:
        round_ = state.get("round", 0)
        out = self.spool.study_dir(uid) / "out" / str(round_)
        sent = list(state.get("sent", []))
        todo = [out / name for name in state["outputs"] if name not in sent]

        def record(path: Path) -> None:
            sent.append(path.name)
            self.spool.update(uid, round_, sent=list(sent))

        try:
            result = send_files(
                todo,
                self.send_to,
                calling_aet=self.ae_title,
                timeout=self.timeout,
                on_stored=record,
                tls=self.tls_client,
            )
            problem = "; ".join(f"{p.name}: {why}" for p, why in {**result.refused, **result.skipped}.items())
        except Exception as exc:  # noqa: BLE001 (SendError above all; anything else is retried the same way)
            problem = str(exc)
        if not problem:
            self.spool.update(uid, round_, status="sent", send_error=None, sent_at=time.time())
            log.info("study %s: sent %d object(s) to %s", uid, len(todo), self.send_to)
            return
        attempts = state.get("attempts", 0) + 1
        delay = min(self.retry[0] * 2 ** (attempts - 1), self.retry[1])
        self.spool.update(uid, round_, attempts=attempts, next_try=now + delay, send_error=problem)
        log.warning(
            "study %s: sending to %s failed (try %d): %s; next try in %.0f s",
            uid,
            self.send_to,
            attempts,
            problem,
            delay,
        )
