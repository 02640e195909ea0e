"""HTTP alert service latency on loopback: cold start, then ``POST /events`` for 1 and 4 concurrent clients.

Starts ``attribution serve`` in a fresh process (new Dagster instance home and output root under
``--workdir``, the bundled sample archive, a bearer token, no daemon: the full runs the requests submit
stay queued, so only the service is measured) and records:

- cold start, p50 and max over ``--starts`` fresh processes: from process launch to the first
  ``GET /health`` answered 200 (code location loaded, catalog crawled, the three-instrument sample
  event's fast inversion compiled), with the start-up steps;
- a first pass over the four sample events (each new problem shape compiles once; reported, not counted);
- 1 client: ``--rounds`` passes over the sample events, one request at a time;
- 4 clients: 4 threads, each making ``--rounds`` passes over the events (starting at a different one).

Latency is end to end as the client sees it (request sent to answer read: fast inversion, partition
registration, observation, run submission). Inversions are serialised in the service, so with 4 clients a
request's latency includes the wait for the others' inversions.

    .venv/bin/python benchmarks/bench_service.py [--starts 3] [--rounds 3] [--workdir DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from report import write_results

from attribution_assets.events import read_alerts
from attribution_assets.paths import REPO_ROOT, SAMPLE_ALERTS, SAMPLE_ARCHIVE
from attribution_assets.times import iso_z

TOKEN = "bench-token"
START_TIMEOUT_S = 600.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(workdir: Path, port: int) -> tuple[subprocess.Popen, float, dict]:
    """Launch the service; returns (process, seconds from launch to /health 200, the health body)."""
    home = workdir / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "ATTRIBUTION_SERVICE_TOKEN": TOKEN}
    command = [
        sys.executable, "-m", "attribution_assets.cli", "serve", "--port", str(port),
        "--archive", str(SAMPLE_ARCHIVE), "--output", str(workdir / "output"), "--offline",
    ]
    log = open(workdir / "serve.log", "wb")  # noqa: SIM115 (kept open for the process's life)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    base = f"http://127.0.0.1:{port}"
    while time.perf_counter() - started < START_TIMEOUT_S:
        if process.poll() is not None:
            raise SystemExit(f"the service exited with {process.returncode}; see {workdir / 'serve.log'}")
        try:
            response = httpx.get(f"{base}/health", timeout=5)
            if response.status_code == 200:
                return process, time.perf_counter() - started, response.json()
            if response.json()["status"] == "failed":
                raise SystemExit(f"start-up failed: {response.json()['detail']}")
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"not ready after {START_TIMEOUT_S:.0f} s")


def post(client: httpx.Client, body: dict) -> tuple[float, dict]:
    """One ``POST /events``: (seconds end to end, answer)."""
    started = time.perf_counter()
    response = client.post("/events", json=body)
    seconds = time.perf_counter() - started
    if response.status_code != 202:
        raise SystemExit(f"POST {body['event_id']}: {response.status_code} {response.text[:300]}")
    return seconds, response.json()


def stats(latencies: list[float]) -> dict[str, float]:
    values = np.asarray(latencies)
    return {
        "n": int(values.size),
        "p50_s": round(float(np.percentile(values, 50)), 2),
        "p95_s": round(float(np.percentile(values, 95)), 2),
        "max_s": round(float(values.max()), 2),
    }


def run_clients(
    base: str, bodies: list[dict], clients: int, rounds: int
) -> tuple[list[tuple[str, float, float]], float]:
    """``clients`` threads, each ``rounds`` passes over ``bodies`` (rotated per client); returns every
    (event id, latency, the service's own time for the fast answer) and the wall time of the whole
    load, s."""
    results: list[tuple[str, float, float]] = []
    lock = threading.Lock()

    def client_loop(index: int) -> None:
        order = bodies[index % len(bodies):] + bodies[: index % len(bodies)]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=600) as client:
            for _ in range(rounds):
                for body in order:
                    seconds, answer = post(client, body)
                    with lock:
                        results.append((body["event_id"], seconds, answer["seconds"]))

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="passes over the 4 sample events per client")
    parser.add_argument("--starts", type=int, default=3,
                        help="cold starts measured (each a fresh process and instance); the last is loaded")
    parser.add_argument("--workdir", default="/tmp/attribution_bench/service")
    parser.add_argument("--out")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    events = read_alerts(SAMPLE_ALERTS)
    bodies = [
        {"event_time": iso_z(e.time), "latitude": e.latitude, "longitude": e.longitude, "gas": e.gas,
         "event_id": e.event_id}
        for e in events
    ]
    colds = []
    for attempt in range(args.starts - 1):  # earlier starts: the cold start only
        process, seconds, _ = start_service(workdir / f"start-{attempt}", free_port())
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
        colds.append(seconds)
    port = free_port()
    process, cold_s, health = start_service(workdir / "loaded", port)
    colds.append(cold_s)
    base = f"http://127.0.0.1:{port}"
    try:
        first, instruments = {}, {}
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=600) as client:
            for body in bodies:
                seconds, answer = post(client, body)
                first[body["event_id"]] = round(seconds, 2)
                instruments[body["event_id"]] = ",".join(answer["instruments"])
        single, one_s = run_clients(base, bodies, 1, args.rounds)
        multi, four_s = run_clients(base, bodies, 4, args.rounds)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    three = [name for name, used in instruments.items() if len(used.split(",")) == 3]
    results = {
        "cold_start_s": stats(colds),
        "start_steps_s": health["steps_s"],
        "first_request_s": first,
        "instruments": instruments,
        "one_client": stats([s for _, s, _ in single]) | {"requests_per_s": round(len(single) / one_s, 2)},
        "four_clients": stats([s for _, s, _ in multi]) | {"requests_per_s": round(len(multi) / four_s, 2)},
        "one_client_three_instruments": stats([s for name, s, _ in single if name in three]),
        "four_clients_three_instruments": stats([s for name, s, _ in multi if name in three]),
        # the fast answer alone (pipeline and inversion, with the wait for the inversion lock)
        "one_client_three_instruments_fast_answer": stats([f for name, _, f in single if name in three]),
        "cpus": os.cpu_count(),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }
    cold = results["cold_start_s"]
    print(f"\ncold start (launch to /health ready), {cold['n']} starts: p50 {cold['p50_s']} s, max "
          f"{cold['max_s']} s; steps of the last {health['steps_s']}")
    print(f"first request per event (compiles its shape): {first}\n")
    print("| load | requests | p50 s | p95 s | max s | requests/s |")
    print("|---|---|---|---|---|---|")
    for label, key in [("1 client, all events", "one_client"), ("4 clients, all events", "four_clients"),
                       (f"1 client, {'+'.join(three)} (3 instruments)", "one_client_three_instruments"),
                       (f"4 clients, {'+'.join(three)} (3 instruments)", "four_clients_three_instruments")]:
        row = results[key]
        rate = row.get("requests_per_s", "")
        print(f"| {label} | {row['n']} | {row['p50_s']} | {row['p95_s']} | {row['max_s']} | {rate} |")
    fast = results["one_client_three_instruments_fast_answer"]
    print(f"\n1 client, 3 instruments, the fast answer inside the service: p50 {fast['p50_s']} s, "
          f"p95 {fast['p95_s']} s\n")
    write_results(results, args.out)


if __name__ == "__main__":
    main()
