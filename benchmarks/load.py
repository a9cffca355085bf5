"""Under load: requests per second Datasette serves for `today` with several concurrent clients
on loopback, next to its own /-/versions.json in the same run.

The server is the real thing: `datasette serve` started with `collector.demo.datasette_command()`
on a free 127.0.0.1 port. The clients are threads with keep-alive connections, each sending
requests back to back; a run stops at `max_requests` or `max_seconds`, whichever comes first.
Client and server share this machine's cores, so the figures are a floor for the server alone.
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from benchmarks.viewer import ROWS
from collector.demo import datasette_command

HOST = "127.0.0.1"


@dataclass
class LoadResult:
    path: str
    clients: int
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    @property
    def p95(self) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """`datasette serve` on a free loopback port, as the project runs it."""

    def __init__(self, database: Path, log: Path, environ: dict[str, str] | None = None):
        self.port = free_port()
        self.log = open(log, "wb")
        env = {**os.environ, "TIMEZONE": "Europe/Moscow", **(environ or {})}
        env.pop("DATASETTE_PASSWORD_HASH", None)  # an open viewer: no sign-in in the way
        self.process = subprocess.Popen(datasette_command(database, self.port, HOST), env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"datasette exited with {self.process.returncode}; see {self.log.name}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
                conn.request("GET", "/-/versions.json")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("datasette did not answer within a minute")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def __enter__(self):
        self.wait_ready()
        return self

    def __exit__(self, *exc):
        self.stop()


def hammer(port: int, path: str, clients: int, max_requests: int, max_seconds: float) -> LoadResult:
    """`clients` threads sending GET `path` back to back until the budget is spent."""
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        nonlocal issued, errors
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        while True:
            with lock:
                if issued >= max_requests or time.monotonic() >= deadline:
                    break
                issued += 1
            began = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=60)
            elapsed = time.perf_counter() - began
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors += 1
        conn.close()

    threads = [threading.Thread(target=client, name=f"load-{n}") for n in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(path, clients, len(latencies), errors, time.perf_counter() - began, latencies)


def measure(database: Path, out: Path, clients: int = 8, max_requests: int = 3000,
            max_seconds: float = 20.0) -> list[LoadResult]:
    """/-/versions.json; today as the dashboard asks for it (ROWS), as served: between two writes
    from the answers kept in memory (collector/answer_cache.py); and with that cache off, so that
    every request runs the query: the rows kept after the last pass, and computed when asked
    (period=day: the same rows, as right after a pass wrote and before it kept them)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = urlencode(ROWS)
    today, computed = f"/mp/today.json?{rows}", f"/mp/today.json?period=day&{rows}"
    results = []
    for paths, environ, log in ((["/-/versions.json", today], {}, "datasette.log"),
                                ([today, computed], {"ANSWER_CACHE_MB": "0"}, "datasette-no-cache.log")):
        with Server(database, out / log, environ) as server:
            for path in paths:  # warm up: plans, page cache, Python's first-call costs
                hammer(server.port, path, 2, 4, 30)
            results += [hammer(server.port, path, clients, max_requests, max_seconds) for path in paths]
    return results
