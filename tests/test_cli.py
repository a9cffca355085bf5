"""`mp-collector` as a person or the timer runs it: a real process, real exit codes."""

import os
import sqlite3
from contextlib import closing
import subprocess
import sys
from pathlib import Path

import pytest

from collector.pipeline import run_lock
from collector.sandbox import Fault, Sandbox, SandboxConfig
from tests.conftest import SMALL_SELLER, collector_environ

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
def live_sandbox():
    """A sandbox on the real clock, as a separate collector process sees it."""
    sb = Sandbox(SandboxConfig(seed=2, rate_limit_factor=0.001, **SMALL_SELLER)).start()
    yield sb
    sb.stop()


def mp(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WB_", "OZON_"))}
    return subprocess.run([sys.executable, "-m", "collector", "--log-format", "text", *args],
                          env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_run_exits_0_when_everything_is_saved(live_sandbox, tmp_path):
    done = mp("run", env=collector_environ(live_sandbox, tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "pass 1 ok: 9 of 9 datasets saved" in done.stderr


def test_run_exits_2_when_a_dataset_fails_and_names_it(live_sandbox, tmp_path):
    live_sandbox.faults.add(Fault("deprecated", endpoint="/api/analytics/v1/stocks-report/wb-warehouses",
                                  times=None))
    done = mp("run", env=collector_environ(live_sandbox, tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    assert ("wb-1 (Песочница WB 1) stocks: POST /api/analytics/v1/stocks-report/wb-warehouses: "
            "HTTP 404 Not Found: the method is removed or deprecated") in done.stderr
    assert "8 of 9 datasets saved" in done.stderr


def test_run_exits_1_without_accounts(tmp_path):
    done = mp("run", env={"DATABASE_PATH": str(tmp_path / "mp.db")}, cwd=tmp_path)
    assert done.returncode == 1
    assert "no marketplace account is configured" in done.stderr


def test_run_exits_1_on_a_half_configured_store(tmp_path):
    done = mp("run", env={"OZON_CLIENT_ID_1": "123"}, cwd=tmp_path)
    assert (done.returncode, done.stderr.strip()) == (
        1, "Error: configuration: OZON_CLIENT_ID_1 is set but OZON_API_KEY_1 is missing: set both or neither")


def test_run_exits_1_when_the_database_cannot_be_written(live_sandbox, tmp_path):
    (tmp_path / "not-a-dir").write_text("")
    env = collector_environ(live_sandbox, tmp_path, DATABASE_PATH=str(tmp_path / "not-a-dir" / "mp.db"))
    done = mp("run", env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert "Error: cannot open the database" in done.stderr or "Error:" in done.stderr


def test_a_second_run_while_one_is_running_exits_at_once(live_sandbox, tmp_path):
    env = collector_environ(live_sandbox, tmp_path)
    with run_lock(Path(env["DATABASE_PATH"])):
        done = mp("run", env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert "another collector pass is running" in done.stderr
    assert not live_sandbox.request_log


def test_env_file_is_read_and_the_environment_wins(live_sandbox, tmp_path):
    env = collector_environ(live_sandbox, tmp_path)
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()) + "WB_API_TOKEN=wrong\n")
    done = mp("run", env={"WB_API_TOKEN": env["WB_API_TOKEN"]}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_secrets_appear_in_no_output_even_when_the_marketplace_refuses_them(live_sandbox, tmp_path):
    live_sandbox.faults.add(Fault("bad_key", times=None))
    env = collector_environ(live_sandbox, tmp_path)
    done = mp("--log-format", "json", "run", env=env, cwd=tmp_path)
    checked = mp("check", env=env, cwd=tmp_path)
    assert done.returncode == 2 and checked.returncode == 2
    secrets = [env["WB_API_TOKEN"], env["OZON_API_KEY_1"], env["OZON_API_KEY_2"]]
    for output in (done.stdout, done.stderr, checked.stdout, checked.stderr):
        assert not [s for s in secrets if s in output]


def test_check_reaches_each_api_and_writes_nothing(live_sandbox, tmp_path):
    done = mp("check", env=collector_environ(live_sandbox, tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok    wb-1 (Песочница WB 1): statistics API reachable, token accepted" in done.stdout
    assert "ok    ozon-2 (Песочница Ozon 2): Ozon API reachable, key accepted" in done.stdout
    assert not (tmp_path / "mp.db").exists()


def test_aliases_load_regroups_the_pages_kept_ready_at_once(live_sandbox, tmp_path):
    """«Заканчивается» (restock_now) and «Сегодня» (today_now) name the new groups as soon as
    the aliases are loaded, not after the next pass."""
    env = collector_environ(live_sandbox, tmp_path)
    assert mp("run", env=env, cwd=tmp_path).returncode == 0
    with closing(sqlite3.connect(tmp_path / "mp.db")) as database:
        article, = database.execute(
            "SELECT p.article FROM products p JOIN accounts a USING (account) WHERE a.marketplace = 'ozon' "
            "AND p.article IN (SELECT alias FROM restock_now WHERE marketplace = 'ozon') "
            "ORDER BY p.article LIMIT 1").fetchall()[0]
        before, = database.execute("SELECT max(computed_at) FROM restock_now_basis").fetchall()[0]
    aliases = tmp_path / "aliases.csv"
    aliases.write_text(f"marketplace,key,alias\nozon,{article},Новая группа\n", encoding="utf-8")
    done = mp("aliases", "load", str(aliases), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with closing(sqlite3.connect(tmp_path / "mp.db")) as database:
        assert database.execute("SELECT min(computed_at) >= ? FROM restock_now_basis", (before,)).fetchall() == [(1,)]
        ozon = "SELECT DISTINCT alias FROM restock_now WHERE marketplace = 'ozon' AND alias IN (?, 'Новая группа')"
        assert database.execute(ozon, (article,)).fetchall() == [("Новая группа",)]
        # the group comes first in «Сегодня», as the aliases file lists it
        assert database.execute("SELECT alias FROM today_now WHERE days = 1 ORDER BY position LIMIT 1").fetchall() == [
            ("Новая группа",)]


def test_aliases_load_waits_for_the_pass_in_progress_then_loads(tmp_path):
    """A pass holds SQLite's write lock from its start to its commit (Storage.one_transaction),
    longer than SQLite's busy timeout: a command that writes waits for it, and says so."""
    env = {"DATABASE_PATH": str(tmp_path / "mp.db")}
    assert mp("init-db", env=env, cwd=tmp_path).returncode == 0
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WB_", "OZON_"))}
    with run_lock(tmp_path / "mp.db"):
        loading = subprocess.Popen([sys.executable, "-m", "collector", "--log-format", "text", "aliases", "load",
                                    str(PROJECT / "data" / "aliases.example.csv")], env={**clean, **env},
                                   cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                loading.wait(timeout=4)  # (it starts in ~1 s, then waits)
        except BaseException:
            loading.kill()
            raise
    out, err = loading.communicate(timeout=60)
    assert loading.returncode == 0, err
    assert "a collector pass is writing" in err and "waiting for it to end" in err
    assert out.strip() == f"28 keys in 5 aliases loaded from {PROJECT / 'data' / 'aliases.example.csv'}"


def test_init_db_and_aliases_load(tmp_path):
    env = {"DATABASE_PATH": str(tmp_path / "mp.db")}
    assert mp("init-db", env=env, cwd=tmp_path).returncode == 0
    done = mp("aliases", "load", str(PROJECT / "data" / "aliases.example.csv"), env=env, cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (
        0, f"28 keys in 5 aliases loaded from {PROJECT / 'data' / 'aliases.example.csv'}")
    bad = tmp_path / "bad.csv"
    bad.write_text("marketplace,key,alias\nwb,KR-1,A\nwb,KR-1,B\n", encoding="utf-8")
    done = mp("aliases", "load", str(bad), env=env, cwd=tmp_path)
    assert (done.returncode, done.stderr.strip()) == (
        1, f"Error: {bad}: line 3: wb key 'KR-1' is already aliased to 'A' on line 2")


def test_a_pass_starts_without_loading_the_viewer():
    """The timer starts a process every few minutes: the collector's commands load nothing of
    Datasette (1.3-1.9 s of imports here), which only `serve` and `demo` need."""
    code = ("import sys, collector.cli, collector.pipeline, collector.runner; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('datasette', 'apprise')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr
