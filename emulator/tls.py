"""TLS for the emulator: a certificate authority made at start-up, and HTTPS on its servers.

Real workspaces are always HTTPS, so the emulator is too (``Config.tls``, on by default). One
certificate authority is made per process, with the first emulator that serves TLS, and kept in a
temporary directory that is removed at exit. Every emulator of the process and its presigned-link
"storage" server present a certificate that authority signed for the names they are reached by
(``127.0.0.1``, ``localhost``, ``::1`` and the configured host). A client trusts it through the
connection documents' ``ca_bundle`` (the path of the authority's PEM certificate), exactly as it
would trust the authority of a TLS-inspecting proxy in front of a real workspace.

The authority also issues the certificates a client must refuse (expired, for another name) and
tests can make a second, unrelated authority, so every TLS failure can be shown to be a classified
error before any secret is sent.

Keys are ECDSA P-256: made in about a millisecond, and accepted by every TLS client in use.
``cryptography`` is a dependency of the ``[emulator]`` extra only; it is imported when TLS is
first needed.
"""
from __future__ import annotations

import atexit
import datetime as _dt
import ipaddress
import os
import shutil
import socket
import ssl
import tempfile
import threading
from typing import Iterable, Optional, Tuple

HANDSHAKE_TIMEOUT = 10.0          # seconds a client has to complete the TLS handshake
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")

_LOCK = threading.Lock()
_AUTHORITY: Optional["Authority"] = None


def _crypto():
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:  # pragma: no cover - the [emulator] extra is not installed
        raise RuntimeError("The emulator serves HTTPS and needs the 'cryptography' package: "
                           "pip install 'databricks-connector[emulator]' (or set tls=false for plain http)") from None
    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _san(names: Iterable[str]):
    x509 = _crypto()[0]
    entries, seen = [], set()
    for name in names:
        name = name.strip("[]")
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


class Authority:
    """A certificate authority whose files live in a private temporary directory."""

    def __init__(self, name: str = "Databricks Emulator Local CA", directory: Optional[str] = None):
        x509, hashes, serialization, ec, _, NameOID = _crypto()
        self.name = name
        self.directory = directory or tempfile.mkdtemp(prefix="databricks-emulator-tls-")
        self._own_directory = directory is None
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "databricks-connector emulator")])
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(self._key.public_key())
        self._cert = (x509.CertificateBuilder()
                      .subject_name(subject).issuer_name(subject)
                      .public_key(self._key.public_key())
                      .serial_number(x509.random_serial_number())
                      .not_valid_before(now - _dt.timedelta(hours=1))
                      .not_valid_after(now + _dt.timedelta(days=365))
                      .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                      .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                   content_commitment=False, key_encipherment=False,
                                                   data_encipherment=False, key_agreement=False,
                                                   encipher_only=False, decipher_only=False), critical=True)
                      .add_extension(ski, critical=False)
                      .sign(self._key, hashes.SHA256()))
        self.pem = self._cert.public_bytes(serialization.Encoding.PEM)
        self.path = os.path.join(self.directory, "ca.pem")
        _write(self.path, self.pem)
        self._issued = 0
        self._contexts: dict = {}
        self._lock = threading.Lock()

    def issue(self, names: Iterable[str] = LOOPBACK_NAMES, *, not_before: Optional[_dt.datetime] = None,
              not_after: Optional[_dt.datetime] = None) -> Tuple[str, str]:
        """A server certificate for ``names``; returns (certificate chain path, key path)."""
        x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID = _crypto()
        names = list(names)
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "emulator")]))
                .issuer_name(self._cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(not_before or now - _dt.timedelta(hours=1))
                .not_valid_after(not_after or now + _dt.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=True,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(_san(names), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                               critical=False)
                .sign(self._key, hashes.SHA256()))
        with self._lock:
            self._issued += 1
            n = self._issued
        cert_path = os.path.join(self.directory, f"server-{n}.pem")
        key_path = os.path.join(self.directory, f"server-{n}.key")
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM) + self.pem)
        _write(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return cert_path, key_path

    def server_context(self, names: Iterable[str] = LOOPBACK_NAMES, **validity) -> ssl.SSLContext:
        """A server-side SSLContext presenting a certificate for ``names`` (cached per name set
        when no validity is given)."""
        names = tuple(dict.fromkeys(names))
        if not validity:
            with self._lock:
                ctx = self._contexts.get(names)
            if ctx is not None:
                return ctx
        cert, key = self.issue(names, **validity)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        if not validity:
            with self._lock:
                ctx = self._contexts.setdefault(names, ctx)
        return ctx

    def close(self) -> None:
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def authority() -> Authority:
    """The process's certificate authority, made on first use and removed at exit."""
    global _AUTHORITY
    with _LOCK:
        if _AUTHORITY is None:
            _AUTHORITY = Authority()
            atexit.register(_AUTHORITY.close)
        return _AUTHORITY


def names_for(host: str) -> Tuple[str, ...]:
    """The names a server bound to ``host`` is reached by."""
    extra = () if host in ("", "0.0.0.0", "::") else (host,)
    if host in ("", "0.0.0.0", "::"):
        extra = (socket.gethostname(),)
    return tuple(dict.fromkeys(LOOPBACK_NAMES + extra))


def serve(server, context: Optional[ssl.SSLContext]) -> str:
    """Make a ``socketserver`` server speak TLS with ``context`` (None: plain http); returns the
    URL scheme. The handshake runs in each connection's own handler thread, so a client that stalls
    or fails it never holds up the accept loop; a failed handshake closes that connection quietly."""
    if context is None:
        return "http"
    plain_finish = server.finish_request

    def finish_request(request, client_address):
        timeout = request.gettimeout()
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            conn = context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return                                  # the client refused our certificate, or went away
        conn.settimeout(timeout)
        try:
            plain_finish(conn, client_address)
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    server.finish_request = finish_request
    return "https"
