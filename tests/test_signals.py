"""`demo`, `serve` and `schedule` stop cleanly, whoever sends the signal (issue #11, section 5).

Each command runs as a real process against the sandbox on loopback, on free ports, with a
temporary database. SIGTERM or SIGINT goes to its process alone (never the group, as systemd and
`kill` send it) at a chosen moment; the test then asserts that it exited with 0 within 5 s, left
no process of its tree behind, freed Datasette's port, and left a database that passes
PRAGMA integrity_check with no run still marked running and no dataset half-written. SIGKILL to
`demo` must not leave its Datasette behind either.

The quick set covers every command x signal and every moment once; the rest of the matrix is
marked slow and runs with `make reliability`, not `make test`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from collector.sandbox import Fault, Sandbox, SandboxConfig
from tests.reliability.helpers import clean_environ, free_port, integrity

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

STOP_LIMIT = 5.0  # seconds, the contract
CELLS = 9  # the sandbox's default seller: 3 accounts x 3 datasets


# --------------------------------------------------------------------------------------------
# Processes, as /proc shows them

def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children of any of its threads, recursively)."""
    found, pending = set(), [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = {int(k) for k in (task / "children").read_text().split()}
            except OSError:
                continue
            pending += kids - found
            found |= kids
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def handles_sigterm(pid: int) -> bool:
    """The process has installed its own SIGTERM handler (SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def port_free(port: int) -> bool:
    """Nothing listens on it (SO_REUSEADDR, as uvicorn binds: TIME_WAIT leftovers do not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition, what: str, process: subprocess.Popen, timeout: float = 60, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"exited ({process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(step)


# --------------------------------------------------------------------------------------------
# The database

def query(database: Path, sql: str) -> list[tuple]:
    if not database.exists():
        return []
    try:
        with sqlite3.connect(database, timeout=5) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []


def pass_in_flight(started: "Started", saved: int = 0) -> bool:
    """A pass is running and has written at least `saved` datasets, the others in flight. The
    pass commits them all at its end (Storage.one_transaction): its log says which it wrote
    (the demo's replay of history logs no dataset: `saved` 0, a run marked running)."""
    if not query(started.database, "SELECT 1 FROM runs WHERE status = 'running'"):
        return False
    since_last_pass = re.split(r"\bpass \d+ (?:ok|partial|failed)\b", started.output())[-1]
    return len(re.findall(r"\b(?:stocks|orders|sales): ok, \d+ rows", since_last_pass)) >= saved


def finished_runs(database: Path) -> int:
    return len(query(database, "SELECT id FROM runs WHERE status != 'running'"))


def assert_consistent(database: Path) -> None:
    """Integrity, no run still marked running, no fetch_log row of a run that never was, and at
    most one row per account x dataset in each run (a dataset written once or not at all)."""
    if not database.exists():
        return
    assert integrity(database) == "ok"
    assert query(database, "SELECT id FROM runs WHERE status = 'running'") == []
    assert query(database, "SELECT id FROM fetch_log WHERE run_id NOT IN (SELECT id FROM runs)") == []
    assert query(database, "SELECT run_id, account, dataset FROM fetch_log GROUP BY 1, 2, 3 HAVING count(*) > 1") == []
    for run_id, status in query(database, "SELECT id, status FROM runs"):
        logged = query(database, f"SELECT count(*), sum(status = 'ok') FROM fetch_log WHERE run_id = {run_id} "
                                 "AND dataset IN ('stocks', 'orders', 'sales')")[0]
        if status == "ok":
            assert logged == (CELLS, CELLS), (run_id, logged)


# --------------------------------------------------------------------------------------------
# Starting and stopping a command

@dataclass
class Started:
    process: subprocess.Popen
    log: Path
    database: Path
    port: int | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(args: list[str], work: Path, env: dict[str, str] | None = None, database: Path | None = None,
          port: int | None = None, background: bool = False) -> Started:
    """`background`: with SIGINT ignored, as `mp-collector demo &` in a script starts it (a shell
    that is not interactive does that to its background jobs, and the ignore is inherited)."""
    log = work / f"{args[0]}-{time.monotonic_ns()}.log"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if background else None
    with open(log, "wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "collector", "--env-file", str(work / ".env"), *args],
                                   env=clean_environ(**(env or {})), cwd=work, stdout=output,
                                   stderr=subprocess.STDOUT)
    if background:
        signal.signal(signal.SIGINT, previous)
    return Started(process, log, database or work / "mp.db", port)


def stop(started: Started, signum: int, label: str) -> float:
    """Send `signum` to the process alone; assert the clean stop; return how long it took."""
    process = started.process
    tree = descendants(process.pid)
    sent = time.monotonic()
    os.kill(process.pid, signum)
    try:
        code = process.wait(timeout=STOP_LIMIT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"{label}: still running {STOP_LIMIT} s after {signal.Signals(signum).name}\n"
                    f"{started.output()[-3000:]}")
    took = time.monotonic() - sent
    print(f"\nSTOP {label} {signal.Signals(signum).name}: {took:.2f} s, exit {code}")
    assert code == 0, started.output()[-3000:]
    assert_gone(tree, started)
    assert "Traceback" not in started.output(), started.output()[-3000:]
    return took


def assert_gone(tree: set[int], started: Started, grace: float = 0.0) -> None:
    deadline = time.monotonic() + grace
    while (left := {pid for pid in tree if running(pid)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"left behind: {left}\n{started.output()[-2000:]}"
    if started.port:
        assert port_free(started.port), f"port {started.port} still taken"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / ".env").write_text("")  # the real .env of the checkout must play no part
    return tmp_path


@pytest.fixture
def reap():
    """Kill whatever a failed test left running."""
    processes: list[subprocess.Popen] = []
    yield processes.append
    for process in processes:
        for pid in descendants(process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if process.poll() is None:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------------------------
# demo: sandbox + replay + passes + Datasette as a child

def start_demo(work: Path, history_days: int = 1, every: float = 0.02, background: bool = False) -> Started:
    port = free_port()
    return start(["demo", "--port", str(port), "--every", str(every), "--history-days", str(history_days),
                  "--database", str(work / "demo.db")], work, database=work / "demo.db", port=port,
                 background=background)


def datasette_started(started: Started) -> bool:
    return any(running(pid) for pid in descendants(started.process.pid))


DEMO_MOMENTS = {
    # Replaying history: a pass in the main thread, between its datasets.
    "replaying history": lambda s: pass_in_flight(s),
    # Datasette is a child, importing, not answering yet.
    "before Datasette answers": lambda s: "Dashboard:" in s.output() and datasette_started(s),
    "idle": lambda s: answers(s.port),
    # A scheduled pass (every 1.2 s) in the scheduler's thread, with Datasette serving.
    "mid-pass": lambda s: answers(s.port) and finished_runs(s.database) > 6 and pass_in_flight(s),
}


def demo_stop(work: Path, reap, signum: int, moment: str, background: bool = False) -> None:
    started = start_demo(work, history_days=2 if moment == "replaying history" else 1,
                         every=0.02 if moment == "mid-pass" else 60, background=background)
    reap(started.process)
    wait_for(lambda: DEMO_MOMENTS[moment](started), moment, started.process, step=0.02)
    stop(started, signum, f"demo, {moment},")
    assert_consistent(started.database)


@pytest.mark.parametrize("signum,moment", [(signal.SIGTERM, "before Datasette answers")])
def test_demo_stops_on_a_signal_to_its_process_alone(work, reap, signum, moment):
    demo_stop(work, reap, signum, moment)


def test_demo_started_in_the_background_stops_on_sigint(work, reap):
    """The issue's case: started by a script with `&`, SIGINT ignored on arrival, `kill -INT` was
    not obeyed at all."""
    demo_stop(work, reap, signal.SIGINT, "replaying history", background=True)


@pytest.mark.slow
@pytest.mark.parametrize("signum,moment", [
    (signal.SIGTERM, "replaying history"),
    (signal.SIGINT, "before Datasette answers"),
    (signal.SIGTERM, "idle"),
    (signal.SIGINT, "idle"),
    (signal.SIGTERM, "mid-pass"),
    (signal.SIGINT, "mid-pass"),
])
def test_demo_stops_on_every_signal_at_every_moment(work, reap, signum, moment):
    demo_stop(work, reap, signum, moment)


@pytest.mark.slow
def test_demo_resumes_a_replay_a_stop_cut_short(work, reap):
    """Stopped while replaying history, the next start finishes the replay and runs passes."""
    first = start_demo(work, history_days=2, every=60)
    reap(first.process)
    wait_for(lambda: pass_in_flight(first), "a replayed pass", first.process, step=0.02)
    stop(first, signal.SIGTERM, "demo, replaying history,")
    cut = finished_runs(first.database)
    second = start_demo(work, history_days=2, every=60)
    reap(second.process)
    wait_for(lambda: answers(second.port), "Datasette", second.process)
    stop(second, signal.SIGTERM, "demo, idle after a resumed replay,")
    assert_consistent(second.database)
    replayed = query(second.database, "SELECT count(*) FROM runs WHERE status = 'ok'")[0][0]
    assert replayed >= 12 > cut  # 2 days every 4 hours, and the first pass at the real time
    assert query(second.database, "SELECT value FROM collector_state WHERE key = 'demo_history'") == [("done",)]


@pytest.mark.parametrize("moment", ["before Datasette answers", pytest.param("idle", marks=pytest.mark.slow)])
def test_datasette_stops_by_itself_when_demo_is_killed(work, reap, moment):
    """SIGKILL leaves the demo no chance to clean up: its Datasette notices and stops."""
    started = start_demo(work, every=60)
    reap(started.process)
    wait_for(lambda: DEMO_MOMENTS[moment](started), moment, started.process, step=0.02)
    tree = descendants(started.process.pid)
    assert tree
    started.process.kill()
    started.process.wait()
    killed = time.monotonic()
    assert_gone(tree, started, grace=STOP_LIMIT)
    print(f"\nSTOP demo SIGKILL {moment}: Datasette gone {time.monotonic() - killed:.2f} s after")
    assert integrity(started.database) == "ok"


# --------------------------------------------------------------------------------------------
# serve: Datasette itself (exec), no children

def serve_stop(work: Path, reap, signum: int, moment: str) -> None:
    port = free_port()
    started = start(["serve", "--port", str(port)], work, env={"DATABASE_PATH": str(work / "mp.db")}, port=port)
    reap(started.process)
    ready = {"before Datasette answers": lambda: handles_sigterm(started.process.pid),
             "idle": lambda: answers(port)}[moment]
    wait_for(ready, moment, started.process, step=0.005)
    stop(started, signum, f"serve, {moment},")


@pytest.mark.parametrize("signum,moment", [(signal.SIGINT, "before Datasette answers"), (signal.SIGTERM, "idle")])
def test_serve_stops_on_a_signal_to_its_process_alone(work, reap, signum, moment):
    serve_stop(work, reap, signum, moment)


@pytest.mark.slow
@pytest.mark.parametrize("signum,moment", [(signal.SIGTERM, "before Datasette answers"), (signal.SIGINT, "idle")])
def test_serve_stops_on_every_signal_at_every_moment(work, reap, signum, moment):
    serve_stop(work, reap, signum, moment)


# --------------------------------------------------------------------------------------------
# schedule: passes in-process against a slow sandbox

@pytest.fixture
def slow_sandbox():
    """Every request takes 40 ms: a pass lasts seconds, so a signal can land inside it."""
    sandbox = Sandbox(SandboxConfig(seed=3, rate_limit_factor=0.001, latency_ms=40)).start()
    yield sandbox
    sandbox.stop()


def next_pass(sandbox: Sandbox, work: Path, env: dict[str, str]) -> None:
    """`mp-collector run` after the stop, at full speed: it exits 0, so it saved every dataset."""
    sandbox.config = replace(sandbox.config, latency_ms=0)  # read per request, from here
    done = subprocess.run([sys.executable, "-m", "collector", "--env-file", str(work / ".env"), "run"],
                          env=clean_environ(**env), cwd=work, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def schedule_env(sandbox: Sandbox, work: Path, **extra: str) -> dict[str, str]:
    return {**sandbox.env(), "DATABASE_PATH": str(work / "mp.db"), "ALIASES_FILE": str(work / "aliases.csv"),
            "RATE_LIMIT_FACTOR": "0.001", "HTTP_TIMEOUT": "20", "MAX_RETRY_WAIT": "5", **extra}


SCHEDULE_MOMENTS = {
    "at start": lambda s: handles_sigterm(s.process.pid),
    "mid-pass": lambda s: pass_in_flight(s, saved=2),
    "idle": lambda s: finished_runs(s.database) >= 1,
}


def schedule_stop(work: Path, reap, sandbox: Sandbox, signum: int, moment: str) -> None:
    if moment != "mid-pass":
        sandbox.config = replace(sandbox.config, latency_ms=0)
    env = schedule_env(sandbox, work)
    started = start(["schedule", "--every", "60"], work, env=env)
    reap(started.process)
    wait_for(lambda: SCHEDULE_MOMENTS[moment](started), moment, started.process, step=0.01)
    stop(started, signum, f"schedule, {moment},")
    assert_consistent(started.database)
    if moment == "mid-pass":  # cut: the datasets saved before the signal, and no other
        status, saved = query(started.database, "SELECT status, (SELECT count(*) FROM fetch_log f WHERE f.run_id "
                                                "= r.id AND f.dataset IN ('stocks', 'orders', 'sales')) "
                                                "FROM runs r ORDER BY id DESC LIMIT 1")[0]
        assert status == "failed" and 2 <= saved < CELLS, (status, saved)
        next_pass(sandbox, work, env)
        assert_consistent(started.database)


@pytest.mark.parametrize("signum,moment", [(signal.SIGINT, "mid-pass")])
def test_schedule_stops_on_a_signal_to_its_process_alone(work, reap, slow_sandbox, signum, moment):
    schedule_stop(work, reap, slow_sandbox, signum, moment)


@pytest.mark.slow
@pytest.mark.parametrize("signum,moment", [(signal.SIGTERM, "mid-pass"), (signal.SIGTERM, "idle"),
                                           (signal.SIGINT, "idle"), (signal.SIGTERM, "at start"),
                                           (signal.SIGINT, "at start")])
def test_schedule_stops_on_every_signal_at_every_moment(work, reap, slow_sandbox, signum, moment):
    schedule_stop(work, reap, slow_sandbox, signum, moment)


def test_schedule_stops_in_time_even_with_a_request_stuck(work, reap, slow_sandbox):
    """A request the marketplace holds for 30 s (HTTP_TIMEOUT 20 s) cannot be interrupted: the
    watchdog ends the process within the limit anyway, with nothing half-written: the pass's
    one transaction never committed, so none of it is saved, and the next pass fetches it all."""
    slow_sandbox.config = replace(slow_sandbox.config, latency_ms=0)  # the held request is slow enough
    slow_sandbox.faults.add(Fault("timeout", endpoint="/api/v1/supplier/orders", times=None))
    env = schedule_env(slow_sandbox, work)
    started = start(["schedule", "--every", "60"], work, env=env)
    reap(started.process)
    # wb-1 stocks and the six Ozon datasets written: what is left is wb-1's orders, held.
    wait_for(lambda: pass_in_flight(started, saved=7), "the held request", started.process, step=0.02)
    took = stop(started, signal.SIGTERM, "schedule, request stuck,")
    assert took > 3  # it was the watchdog
    assert "not stopped within" in started.output()
    assert integrity(started.database) == "ok"
    # The watchdog had no time to close the run: the next pass does (Storage.start_run).
    assert query(started.database, "SELECT count(*) FROM fetch_log f JOIN runs r ON r.id = f.run_id "
                                   "WHERE r.status = 'running' AND f.dataset IN ('stocks', 'orders', 'sales')"
                 ) == [(0,)]  # the seven written before were never committed


# --------------------------------------------------------------------------------------------
# The order the handlers go in

class _Installed(Exception):
    pass


@pytest.mark.parametrize("install", ["viewer", "stopping"])
def test_sigint_is_handled_once_sigterm_is(monkeypatch, install):
    """The tests above, and a supervisor, take SIGTERM caught (SigCgt) to mean the process is ready
    for either signal: a SIGINT just after that, with its own handler not yet in, raised
    KeyboardInterrupt in `serve` (a traceback and exit -2, seen once in the suite)."""
    from collector import stopping, viewer

    installed = []

    def record(signum, handler):
        installed.append(signum)
        if signum == signal.SIGTERM:
            raise _Installed  # (nothing further runs: no handler is left behind in pytest)

    monkeypatch.setattr(signal, "signal", record)
    with pytest.raises(_Installed):
        viewer.main([]) if install == "viewer" else stopping.install()
    assert installed == [signal.SIGINT, signal.SIGTERM]
