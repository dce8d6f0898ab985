"""DICOM networking helpers: peers named ``AET@HOST:PORT``, C-ECHO, and C-STORE of files (pynetdicom).

The node (:mod:`medseg3d.serve`) receives with these and sends its results back; ``medseg3d send`` uses
:func:`send_files` to push a folder to any node. DICOM traffic is unencrypted unless a TLS context
(:func:`tls_context`) is given; otherwise run it on a trusted network or behind a TLS tunnel (docs/pacs.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, MedsegError

DEFAULT_AE_TITLE = "MEDSEG3D"
_AET = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # Part 5's AE VR: up to 16 characters, no backslash
# at most 128 presentation contexts in one association (Part 8); each distinct SOP class / transfer syntax
# pair of the files takes one
_MAX_CONTEXTS = 128


class SendError(MedsegError):
    """The destination could not be reached or refused the association (worth retrying later)."""


@dataclass(frozen=True)
class Peer:
    """A DICOM node: its AE title, host and port."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def _check_aet(aet: str, text: str, example: str) -> str:
    if not _AET.match(aet) or not aet.strip():
        raise InputError(
            f"{text!r}: the AE title must be 1 to 16 printable characters without a backslash, e.g. {example}"
        )
    return aet


def parse_peer(text: str) -> Peer:
    """``"PACS@10.0.0.5:104"`` -> :class:`Peer`.

    Raises:
        InputError: not of the form AET@HOST:PORT, or a port outside 1-65535.
    """
    example = "ORTHANC@127.0.0.1:4242"
    aet, at, address = text.rpartition("@")
    host, colon, port = address.rpartition(":")
    if not at or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{text!r}: expected AET@HOST:PORT, e.g. {example}")
    return Peer(_check_aet(aet, text, example), host.strip("[]"), int(port))


def parse_allowed(text: str) -> tuple[str, str]:
    """``"ORTHANC@10.0.0.5"`` -> ``("ORTHANC", "10.0.0.5")``: a calling AE title and the address it must
    call from (``*`` for any address).

    Raises:
        InputError: not of the form AET@ADDRESS.
    """
    aet, at, address = text.rpartition("@")
    if not at or not address:
        raise InputError(f"{text!r}: expected AET@ADDRESS, e.g. ORTHANC@127.0.0.1 (ADDRESS * for any)")
    return _check_aet(aet, text, "ORTHANC@127.0.0.1"), address


def tls_context(side: str, cert=None, key=None, ca=None):
    """An ``ssl.SSLContext`` for DICOM over TLS (pynetdicom wraps its sockets with it).

    Args:
        side: ``"server"`` (listening: ``cert`` and ``key`` required; with ``ca``, callers must present a
            certificate signed by it) or ``"client"`` (connecting: the peer's certificate is verified against
            ``ca``, else the system's CAs, and its host name checked; ``cert``/``key`` present ours).
        cert, key, ca: PEM files.

    Raises:
        InputError: a file is missing or not a usable certificate or key.
    """
    import ssl

    try:
        if side == "server":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            if ca:
                ctx.load_verify_locations(ca)
                ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx = ssl.create_default_context(cafile=ca)
            if cert:
                ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        files = ", ".join(str(f) for f in (cert, key, ca) if f)
        raise InputError(f"TLS: cannot use {files} ({exc}); give PEM certificate, key and CA files") from None
    return ctx


@dataclass
class SendResult:
    """What :func:`send_files` did: files stored, refused by the peer (with their status), and skipped
    here."""

    stored: list[Path] = field(default_factory=list)
    refused: dict[Path, str] = field(default_factory=dict)
    skipped: dict[Path, str] = field(default_factory=dict)


def dicom_files(paths) -> tuple[list, dict[Path, str]]:
    """Read the DICOM files among ``paths`` (files, or folders searched recursively, hidden files left out).

    Returns:
        ``(datasets, skipped)``: ``(path, dataset)`` pairs in path order, and ``path -> why`` for files that
        are not DICOM Part-10 files with a SOP class (a note each, never an error).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(
                f
                for f in p.rglob("*")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
        else:
            files.append(p)
    found, skipped = [], {}
    for f in files:
        try:
            ds = pydicom.dcmread(f)
        except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
            skipped[f] = f"not a DICOM file ({type(exc).__name__})"
            continue
        if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds or "TransferSyntaxUID" not in ds.file_meta:
            skipped[f] = "no SOP class, SOP instance or transfer syntax"
            continue
        found.append((f, ds))
    return found, skipped


def _ae(calling_aet: str, timeout: float):
    from pynetdicom import AE

    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    return ae


def _associate(ae, peer: Peer, tls=None):
    try:
        assoc = ae.associate(
            peer.host,
            peer.port,
            ae_title=peer.ae_title,
            tls_args=(tls, peer.host) if tls is not None else None,
        )
    except (
        OSError,
        RuntimeError,
        ValueError,
    ) as exc:  # pynetdicom raises on a bad host name, a closed socket
        raise SendError(
            f"{peer}: cannot associate ({exc}); is the node up and does it know our AE title?"
        ) from None
    if not assoc.is_established:
        why = "rejected" if assoc.is_rejected else "aborted" if assoc.is_aborted else "not reachable"
        raise SendError(
            f"{peer}: association {why}; is the node up and does it accept AE title {ae.ae_title}?"
        )
    return assoc


def send_files(
    paths, peer: Peer, *, calling_aet: str = DEFAULT_AE_TITLE, timeout: float = 30.0, on_stored=None, tls=None
) -> SendResult:
    """C-STORE the DICOM files among ``paths`` to ``peer`` over one association.

    Args:
        paths: files or folders (searched recursively); files that are not DICOM are skipped with a reason.
        peer: the destination.
        calling_aet: our AE title.
        timeout: seconds for connecting and for each response.
        on_stored: called with each file's path as soon as the peer confirms it (the node records it then,
            so that a send cut short is resumed without sending a file twice).
        tls: a client :func:`tls_context` to send over TLS (None: unencrypted).

    Returns:
        :class:`SendResult`: stored, refused (status given by the peer) and skipped files.

    Raises:
        SendError: the peer could not be reached, refused the association or the association broke off.
    """
    from pynetdicom.presentation import build_context

    found, skipped = dicom_files(paths)
    result = SendResult(skipped=skipped)
    if not found:
        return result
    pairs = sorted({(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID) for _, ds in found})
    if len(pairs) > _MAX_CONTEXTS:
        raise InputError(
            f"{len(pairs)} kinds of DICOM object (SOP class, transfer syntax) to send; one association "
            f"takes at most {_MAX_CONTEXTS}: send the folder in parts"
        )
    ae = _ae(calling_aet, timeout)
    ae.requested_contexts = [build_context(sop, syntax) for sop, syntax in pairs]
    assoc = _associate(ae, peer, tls)
    try:
        for path, ds in found:
            try:
                status = assoc.send_c_store(ds)
            except (ValueError, AttributeError) as exc:  # no accepted context for this object
                result.refused[path] = f"not accepted by the peer ({exc})"
                continue
            if not status or "Status" not in status:
                raise SendError(f"{peer}: no answer to C-STORE of {path.name} (association lost)")
            code = int(status.Status)
            if code in (0x0000, 0xB000, 0xB007, 0xB006):  # success, or success with a warning
                result.stored.append(path)
                if on_stored is not None:
                    on_stored(path)
            else:
                result.refused[path] = f"status 0x{code:04X}"
    finally:
        if assoc.is_established:
            assoc.release()
    return result


def echo(peer: Peer, *, calling_aet: str = DEFAULT_AE_TITLE, timeout: float = 10.0, tls=None) -> bool:
    """C-ECHO ``peer``: True when it answered with success.

    Args:
        peer: the node (AE title, host, port).
        calling_aet: our AE title.
        timeout: seconds for connecting and the answer.
        tls: a client :func:`tls_context` (None: plain TCP).

    Raises:
        SendError: the peer could not be reached or refused the association.
    """
    from pynetdicom.sop_class import Verification

    ae = _ae(calling_aet, timeout)
    ae.add_requested_context(Verification)
    assoc = _associate(ae, peer, tls)
    try:
        status = assoc.send_c_echo()
    finally:
        if assoc.is_established:
            assoc.release()
    return bool(status) and int(status.Status) == 0
