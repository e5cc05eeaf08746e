"""A throwaway MariaDB server that speaks TLS, for the tests of sluice's TLS modes.

The shared test server offers no TLS (Debian's package configures no certificate), so these
tests start their own: `mariadb-install-db` into a temporary directory (half a second), then
`mariadbd` on a free port with a certificate signed by a CA made here, for the name
`localhost`. Root connects over TCP without a password, as on the shared server.
"""

from __future__ import annotations

import datetime
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

MARIADBD = "/usr/sbin/mariadbd"


@dataclass(frozen=True)
class TlsServer:
    host: str
    port: int
    ca: Path  # the CA that signed the server's certificate
    other_ca: Path  # a CA that signed nothing the server holds


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, *, ca: bool, names=()) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def make_certificates(where: Path) -> dict[str, Path]:
    """A CA, a server certificate it signed for the name localhost (not for 127.0.0.1, so
    that the same server, reached by its address, holds a name other than the one asked
    for), and an unrelated CA."""
    ca_key, other_key, server_key = _key(), _key(), _key()
    ca = _cert("sluice test CA", ca_key, "sluice test CA", ca_key, ca=True)
    other = _cert("another CA", other_key, "another CA", other_key, ca=True)
    names = [x509.DNSName("localhost")]
    server = _cert("localhost", server_key, "sluice test CA", ca_key, ca=False, names=names)
    files = {
        "ca": (where / "ca.pem", _pem(ca)),
        "other_ca": (where / "other-ca.pem", _pem(other)),
        "cert": (where / "server.pem", _pem(server)),
        "key": (where / "server-key.pem", _pem(server_key)),
    }
    for path, data in files.values():
        path.write_bytes(data)
        path.chmod(0o644)
    return {k: path for k, (path, _) in files.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing() -> str | None:
    """Why no such server can start here, or None."""
    if not shutil.which("mariadb-install-db") or not os.access(MARIADBD, os.X_OK):
        return "mariadb-install-db and mariadbd (Debian's mariadb-server) are not installed"
    return None


def start() -> tuple[TlsServer, subprocess.Popen, Path]:
    """Install a data directory in a new temporary directory and start a TLS server on it.
    (Not under pytest's temporary directories: as root, the server runs as mysql, which
    cannot enter them.)"""
    where = Path(tempfile.mkdtemp(prefix="sluice-tls-"))
    files = make_certificates(where)
    data = where / "data"
    as_root = os.geteuid() == 0
    user = ["--user=mysql"] if as_root else []
    if as_root:  # mariadbd will not run as root: the data directory is mysql's
        where.chmod(0o755)
    subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *user,
        ],
        check=True,
        capture_output=True,
    )
    if as_root:
        mysql = pwd.getpwnam("mysql")
        for path in [data, *data.rglob("*")]:
            os.chown(path, mysql.pw_uid, mysql.pw_gid)
    port = _free_port()
    log = (where / "mariadbd.log").open("wb")
    proc = subprocess.Popen(
        [
            MARIADBD,
            "--no-defaults",
            *user,
            f"--datadir={data}",
            f"--socket={data / 'mariadbd.sock'}",
            f"--pid-file={data / 'mariadbd.pid'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
            f"--ssl-ca={files['ca']}",
            f"--ssl-cert={files['cert']}",
            f"--ssl-key={files['key']}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=1).close()
            break
        except pymysql.err.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(
                    "the TLS test server did not start: "
                    + (where / "mariadbd.log").read_text(errors="replace")[-2000:]
                ) from None
            time.sleep(0.1)
    return TlsServer("127.0.0.1", port, files["ca"], files["other_ca"]), proc, where


def stop(proc: subprocess.Popen, where: Path) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    shutil.rmtree(where, ignore_errors=True)
