"""Real HTTP on loopback for the service tests: the app under uvicorn in a thread, or ``attribution serve``
in a child process, on a free port; a private Dagster instance home."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from attribution_assets.paths import REPO_ROOT
from attribution_assets.service import TOKEN_ENV
from attribution_assets_tests.processes import stop_process_group

START_TIMEOUT_S = 600.0
"""Longest wait for a service to answer /health with 200 (the machine may be shared), s."""


def instance_home(path: Path) -> Path:
    """A Dagster instance home at ``path`` with the repository's dagster.yaml (queued run coordinator)."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "dagster.yaml", path / "dagster.yaml")
    return path


def loopback_socket() -> socket.socket:
    """A socket bound to a free port on 127.0.0.1 (handed to uvicorn, so no other process takes it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (for a child process to bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(
    base: str, timeout_s: float = START_TIMEOUT_S, process: subprocess.Popen | None = None
) -> dict:
    """Poll ``base/health`` until it answers 200; returns its body. Fails when the service reports a
    failed start-up, ``process`` exits, or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the service exited with {process.returncode} before it was ready")
        try:
            response = httpx.get(f"{base}/health", timeout=10)
        except httpx.TransportError as error:
            last = repr(error)
        else:
            body = response.json()
            if response.status_code == 200:
                return body
            assert body["status"] != "failed", body["detail"]
            last = body["detail"]
        time.sleep(0.25)
    raise AssertionError(f"{base} not ready after {timeout_s:.0f} s: {last}")


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread on a free loopback port; yields the base URL once the
    server listens (not necessarily ready); stops it (lifespan shutdown included) at the end."""
    sock = loopback_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=300)
        sock.close()


@contextmanager
def serve_process(args: Sequence[str], home: Path, log: Path, env: dict[str, str] | None = None) -> Iterator[
    tuple[str, subprocess.Popen]
]:
    """``attribution serve ARGS --port <free>`` in a child process with ``DAGSTER_HOME=home`` and no token
    unless ``env`` sets one (stdout and stderr to ``log``); yields (base URL, process); SIGINT (uvicorn's
    graceful stop) at the end."""
    port = free_port()
    command = [sys.executable, "-m", "attribution_assets.cli", "serve", "--port", str(port), *args]
    environment = {**os.environ, "DAGSTER_HOME": str(home)}
    environment.pop(TOKEN_ENV, None)
    environment.update(env or {})
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=environment, cwd=REPO_ROOT,
            start_new_session=True,
        )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        stop_process_group(process, timeout_s=120.0, first_signal=signal.SIGINT)
