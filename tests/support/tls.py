"""A self-signed certificate for 127.0.0.1, for an https receiver the services are told to trust."""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LoopbackCertificate:
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def loopback_certificate(folder: Path) -> LoopbackCertificate:
    """A fresh EC key and a certificate valid for a day, for IP 127.0.0.1 (openssl's CLI)."""
    cert_path, key_path = folder / "loopback.crt", folder / "loopback.key"
    subprocess.run(  # noqa: S603 - a fixed command line
        [  # noqa: S607 - openssl from PATH, as the machine has it
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key_path),
            "-out",
            str(cert_path),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return LoopbackCertificate(cert_path, key_path)
