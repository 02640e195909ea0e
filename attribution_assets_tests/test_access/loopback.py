"""A real HTTP(S) server on 127.0.0.1 for network-fault tests: scripted answers per path, every request
recorded.

Each path has a list of answers, used in order (the last one repeats): :func:`ok` (200 and a body),
:func:`status` (an error status with a JSON body), :func:`hang` (no answer until the client gives up),
:func:`truncated` (a ``Content-Length`` larger than the bytes sent, then the connection closes) and
:func:`json_body`. HTTPS uses a self-signed certificate for 127.0.0.1 made with ``cryptography``; point
``requests`` at it with ``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Answer:
    """One scripted answer: ``kind`` is ok, status, hang or truncated."""

    kind: str
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    declared: int | None = None


def ok(body: bytes, content_type: str = "application/octet-stream") -> Answer:
    return Answer("ok", 200, body, {"Content-Type": content_type})


def json_body(obj: Any, status_code: int = 200) -> Answer:
    return Answer("ok", status_code, json.dumps(obj).encode(), {"Content-Type": "application/json"})


def status(code: int, detail: str = "") -> Answer:
    body = json.dumps({"title": f"HTTP {code}", "detail": detail or f"status {code}"}).encode()
    return Answer("ok", code, body, {"Content-Type": "application/json"})


def redirect(location: str) -> Answer:
    return Answer("ok", 302, b"", {"Location": location})


def hang() -> Answer:
    return Answer("hang")


def truncated(body: bytes, declared: int) -> Answer:
    return Answer("truncated", 200, body, {"Content-Type": "application/octet-stream"}, declared)


@dataclass
class Seen:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Loopback:
    """The server: ``script(path, *answers)``, ``url(path)``, ``seen`` (every request), ``close()``."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.answers: dict[str, list[Answer]] = {}
        self.seen: list[Seen] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        loopback = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return None

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                with loopback.lock:
                    loopback.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
                    queue = loopback.answers.get(path)
                    answer = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else status(404)
                if answer.kind == "hang":
                    loopback.stop.wait(30.0)
                    self.close_connection = True
                    return
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                declared = answer.declared if answer.kind == "truncated" else len(answer.body)
                self.send_header("Content-Length", str(declared))
                if answer.kind == "truncated":
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.body)
                    self.wfile.flush()
                if answer.kind == "truncated":
                    self.close_connection = True

            do_GET = do_POST = do_HEAD = do_DELETE = _answer  # noqa: N815 - stdlib names

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def finish_request(self, request: Any, client_address: Any) -> None:
                if tls is not None:
                    try:
                        request = tls.wrap_socket(request, server_side=True)
                    except (ssl.SSLError, OSError):
                        return
                super().finish_request(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.scheme = "https" if tls is not None else "http"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def script(self, path: str, *answers: Answer) -> None:
        with self.lock:
            self.answers[path] = list(answers)

    def requests_to(self, path: str, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if urlsplit(s.path).path == path and method in (None, s.method)]

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def self_signed(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A certificate and key for 127.0.0.1 in ``folder``: the CA bundle path and the server context."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "loopback.pem", folder / "loopback.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return cert_path, context
