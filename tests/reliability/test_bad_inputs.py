"""Bad configuration and bad files: each mistake a person can make in `.env`, in DATABASE_PATH or
in the aliases CSV gets a message that names the variable or the line, and writes nothing wrong.

"Nothing wrong": a configuration error exits 1 before anything is fetched or written (no
database file appears, the sandbox sees no request); a database path that cannot work is left
exactly as it was; a bad aliases file changes no alias, neither through `aliases load` (exit 1)
nor through a pass (which keeps the old aliases, says why, and saves the figures: exit 0). A typo
in an optional setting is a warning naming it and the setting probably meant; the pass runs.

The commands run in-process through click's test runner, with `.env` in the working directory,
as a person runs them.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector import logs
from collector.cli import cli
from collector.sandbox import Sandbox, SandboxConfig
from tests.conftest import SMALL_SELLER
from tests.reliability.helpers import FOREIGN, find_leaks

GOOD_ALIASES = ("marketplace,key,alias\n"
                "wb,KR-101,Кронштейны\nozon,KR-101,Кронштейны\nwb,PAK8-101,Пакеты 8\n")
GOOD_ROWS = [("ozon", "KR-101", "Кронштейны", 1), ("wb", "KR-101", "Кронштейны", 1),
             ("wb", "PAK8-101", "Пакеты 8", 2)]


@pytest.fixture(scope="module")
def seller():
    with Sandbox(SandboxConfig(seed=1, rate_limit_factor=0.001, wb_refresh_minutes=1, **SMALL_SELLER)) as sandbox:
        yield sandbox


@pytest.fixture
def person(seller, tmp_path, monkeypatch):
    """A person's working directory, where they keep `.env`, for the sandbox seller."""
    seller.clear_request_log()
    monkeypatch.chdir(tmp_path)
    logger = logging.getLogger(logs.LOGGER_NAME)
    saved = logger.handlers[:], logger.level, logger.propagate
    yield Person(seller, tmp_path)
    logger.handlers[:], logger.level, logger.propagate = saved


@dataclass
class Person:
    sandbox: object
    home: Path

    @property
    def settings(self) -> dict[str, str]:
        return {**self.sandbox.env(), "DATABASE_PATH": str(self.database),
                "ALIASES_FILE": str(self.home / "aliases.csv"), "RATE_LIMIT_FACTOR": "0.001", "HTTP_TIMEOUT": "5"}

    @property
    def database(self) -> Path:
        return self.home / "data" / "mp.db"

    @property
    def secrets(self) -> list[str]:
        return [v for k, v in self.sandbox.env().items() if k.startswith(("WB_API_TOKEN", "OZON_API_KEY"))]

    def write_env(self, text: str | bytes) -> None:
        (self.home / ".env").write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))

    def env_text(self, drop=(), rename=None, extra="", **override) -> str:
        values = {**self.settings, **override}
        lines = [f"{(rename or {}).get(k, k)}={v}" for k, v in values.items() if k not in drop]
        return "\n".join(lines) + "\n" + extra

    def mp(self, *args: str, environ: dict | None = None):
        """The CLI as `mp-collector ARGS` in this directory; the real environment holds nothing of ours."""
        clean = {k: None for k in os.environ if k.startswith(FOREIGN)}
        result = CliRunner().invoke(cli, ["--log-format", "text", *args], env={**clean, **(environ or {})})
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.output
        return result

    def aliases(self) -> list[tuple]:
        conn = sqlite3.connect(self.database)
        try:
            return sorted(conn.execute("SELECT marketplace, key, alias, position FROM sku_aliases"))
        finally:
            conn.close()


# --------------------------------------------------------------------------------------------
# .env

@dataclass(frozen=True)
class EnvMistake:
    name: str
    code: int
    says: tuple[str, ...]
    drop: tuple[str, ...] = ()
    rename: dict = field(default_factory=dict)
    extra: str = ""
    override: dict = field(default_factory=dict)
    encoding: str = "utf-8"
    raw: bool = False  # `extra` is the whole file


ENV_MISTAKES = [
    EnvMistake("an Ozon Client-Id without its key", 1, ("OZON_CLIENT_ID_2 is set but OZON_API_KEY_2 is missing",),
               drop=("OZON_API_KEY_2",)),
    EnvMistake("an Ozon key without its Client-Id", 1, ("OZON_API_KEY_1 is set but OZON_CLIENT_ID_1 is missing",),
               drop=("OZON_CLIENT_ID_1",)),
    EnvMistake("a misspelt key name", 1,
               ("OZON_CLIENT_ID_2 is set but OZON_API_KEY_2 is missing",
                "OZON_API_KYE_2 is not a setting MP Dashboard knows (did you mean OZON_API_KEY_2?)"),
               rename={"OZON_API_KEY_2": "OZON_API_KYE_2"}),
    EnvMistake("a misspelt optional setting", 0,
               ("TIMEZNOE is not a setting MP Dashboard knows (did you mean TIMEZONE?)",),
               extra="TIMEZNOE=Asia/Vladivostok\n"),
    EnvMistake("a misspelt database path", 0,
               ("DATABSE_PATH is not a setting MP Dashboard knows (did you mean DATABASE_PATH?)",),
               extra="DATABSE_PATH=/srv/mp.db\n"),
    EnvMistake("a numbered token without its underscore", 0,
               ("WB_API_TOKEN2 is not a setting MP Dashboard knows (did you mean WB_API_TOKEN_2?)",),
               extra="WB_API_TOKEN2=x\n"),
    EnvMistake("a time zone that does not exist", 1, ("TIMEZONE='Moscow' is not a known time zone",),
               override={"TIMEZONE": "Moscow"}),
    EnvMistake("a Client-Id that is not a number", 1, ("OZON_CLIENT_ID_1 must be a positive whole number",),
               override={"OZON_CLIENT_ID_1": "shop-1"}),
    EnvMistake("a SKU list with a word in it", 1, ("OZON_SKUS_1: abc is not a SKU",),
               override={"OZON_SKUS_1": "123, abc"}),
    EnvMistake("a number that is not one", 1, ("RATE_LIMIT_FACTOR='fast' is not a number",),
               override={"RATE_LIMIT_FACTOR": "fast"}),
    EnvMistake("a zero timeout", 1, ("HTTP_TIMEOUT must be greater than 0",), override={"HTTP_TIMEOUT": "0"}),
    EnvMistake("a URL without its scheme", 1, ("WB_STATISTICS_URL must start with http:// or https://",),
               override={"WB_STATISTICS_URL": "statistics-api.wildberries.ru"}),
    EnvMistake("the first WB cabinet twice", 1, ("WB_API_TOKEN and WB_API_TOKEN_1 both name the first WB cabinet",),
               extra="WB_API_TOKEN_1=another\n"),
    EnvMistake("an account numbered 0", 1, ("WB_API_TOKEN_0: accounts are numbered from 1",),
               extra="WB_API_TOKEN_0=x\n"),
    EnvMistake("a line without =", 1, (".env: line 1 is not VARIABLE=value",),
               extra="WB_API_TOKEN {WB_API_TOKEN}\n", raw=True),
    EnvMistake("an unclosed quote", 1, (".env: line 2 is not VARIABLE=value",),
               extra='WB_API_TOKEN={WB_API_TOKEN}\nWB_NAME_1="Магазин\n', raw=True),
    EnvMistake("a file saved in Windows-1251", 1, (".env: line 2 is not UTF-8 text; save the file as UTF-8",),
               extra="WB_API_TOKEN={WB_API_TOKEN}\nWB_NAME_1=Магазин\n", raw=True, encoding="cp1251"),
    EnvMistake("no account at all", 1, ("no marketplace account is configured",),
               extra="TIMEZONE=Europe/Moscow\n", raw=True),
]


@pytest.mark.parametrize("mistake", ENV_MISTAKES, ids=[m.name for m in ENV_MISTAKES])
def test_a_mistake_in_env_is_named_and_writes_nothing_wrong(mistake: EnvMistake, person: Person, figures):
    if mistake.raw:
        text = mistake.extra.format(**person.settings)
    else:
        text = person.env_text(mistake.drop, mistake.rename, mistake.extra, **mistake.override)
    person.write_env(text.encode(mistake.encoding))
    result = person.mp("run")
    assert result.exit_code == mistake.code, result.output
    for words in mistake.says:
        assert words in result.output
    assert find_leaks(person.secrets, {"output": result.output}) == []
    if mistake.code == 1:  # stopped before fetching or writing anything
        assert result.output.startswith("Error: ") and "Traceback" not in result.output
        assert not person.database.exists() and not person.sandbox.request_log
    else:  # a warning; the pass saved everything at the configured path
        assert "pass 1 ok: 9 of 9 datasets saved" in result.output
        assert person.database.exists() and not Path("/srv/mp.db").exists()
    tally(figures, "env")


def test_env_as_windows_notepad_saves_it_is_read(person: Person):
    """A BOM and CRLF line ends are no mistake."""
    person.write_env(b"\xef\xbb\xbf" + person.env_text().replace("\n", "\r\n").encode("utf-8"))
    result = person.mp("run")
    assert result.exit_code == 0 and "is not a setting" not in result.output, result.output


# --------------------------------------------------------------------------------------------
# DATABASE_PATH

def _directory(home: Path) -> Path:
    (home / "db-dir").mkdir()
    return home / "db-dir"


def _below_a_file(home: Path) -> Path:
    (home / "data").write_text("a file where the folder should be")
    return home / "data" / "mp.db"


def _not_a_database(home: Path) -> Path:
    (home / "notes.txt").write_text("my notes, not a database\n" * 100)
    return home / "notes.txt"


def _newer_schema(home: Path) -> Path:
    conn = sqlite3.connect(home / "future.db")
    conn.execute("PRAGMA journal_mode=WAL")  # as every collector leaves its database
    conn.execute("CREATE TABLE kept (x)")
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    return home / "future.db"


DATABASE_MISTAKES = [
    ("a directory", _directory, "cannot open the database"),
    ("below a regular file", _below_a_file, "cannot open the database"),
    ("a file that is not a database", _not_a_database, "file is not a database"),
    ("a database of a newer version", _newer_schema, "newer than this collector"),
]


@pytest.mark.parametrize("make, says", [m[1:] for m in DATABASE_MISTAKES], ids=[m[0] for m in DATABASE_MISTAKES])
def test_an_unusable_database_path_is_named_and_left_as_it_was(make, says, person: Person, figures):
    path = make(person.home)
    before = _state(path)
    person.write_env(person.env_text(DATABASE_PATH=str(path)))
    for command in (["run"], ["init-db"]):
        result = person.mp(*command)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: ") and says in result.output and str(path) in result.output
        assert "Traceback" not in result.output
    assert _state(path) == before and not person.sandbox.request_log
    tally(figures, "database_path")


def _state(path: Path):
    if path.is_dir():
        return sorted(p.name for p in path.iterdir())
    return path.read_bytes() if path.exists() else None


# --------------------------------------------------------------------------------------------
# The aliases CSV

ALIAS_MISTAKES = [  # (name, bytes, what the message says)
    ("a wrong header", "sku,alias\nKR-101,Кронштейны\n".encode(),
     "line 1 must be the header 'marketplace,key,alias'"),
    ("a misnamed column", "marketplace,article,alias\nwb,KR-101,Кронштейны\n".encode(),
     "line 1 must be the header"),
    ("an empty file", b"", "line 1 must be the header"),
    ("a key given two aliases", "marketplace,key,alias\nwb,KR-1,A\nwb,KR-1,B\n".encode(),
     "line 3: wb key 'KR-1' is already aliased to 'A' on line 2"),
    ("a marketplace that is not one", "marketplace,key,alias\nyandex,KR-1,A\n".encode(),
     "line 2: marketplace must be wb or ozon, found 'yandex'"),
    ("a line with two columns", "marketplace,key,alias\nwb,KR-1\n".encode(), "line 2: expected 3 columns"),
    ("an empty alias", "marketplace,key,alias\nwb,KR-1,\n".encode(), "line 2: key and alias must not be empty"),
    ("UTF-16, as Excel's 'Unicode text'", "marketplace,key,alias\nwb,KR-1,A\n".encode("utf-16"), "the file is UTF-16"),
    ("bytes that are no text", b"marketplace,key,alias\nwb,KR-1,\x00\x01\x02\xff\xfe\x81\n", "line 2: not UTF-8 text"),
]


@pytest.mark.parametrize("content, says", [m[1:] for m in ALIAS_MISTAKES], ids=[m[0] for m in ALIAS_MISTAKES])
def test_a_bad_aliases_file_is_named_and_changes_no_alias(content: bytes, says: str, person: Person, figures):
    person.write_env(person.env_text())
    good, bad = person.home / "good.csv", person.home / "aliases.csv"
    good.write_text(GOOD_ALIASES, encoding="utf-8")
    bad.write_bytes(content)
    assert person.mp("aliases", "load", str(good)).exit_code == 0
    assert person.aliases() == GOOD_ROWS

    loaded = person.mp("aliases", "load", str(bad))
    assert loaded.exit_code == 1, loaded.output
    assert loaded.output.startswith(f"Error: {bad}: ") and says in loaded.output, loaded.output
    assert person.aliases() == GOOD_ROWS

    # A pass (ALIASES_FILE is the bad file) keeps the old aliases, says why, and saves the figures.
    ran = person.mp("run", "--dataset", "stocks")
    assert ran.exit_code == 0, ran.output
    assert f"aliases not reloaded: {bad}: " in ran.output and says in ran.output
    assert person.aliases() == GOOD_ROWS
    tally(figures, "aliases")


ALIAS_HABITS = [  # files that look odd but are right
    ("Excel's semicolons and BOM", b"\xef\xbb\xbf" + GOOD_ALIASES.replace(",", ";").encode("utf-8")),
    ("Windows-1251", GOOD_ALIASES.encode("cp1251")),
    ("CRLF line ends and blank lines", GOOD_ALIASES.replace("\n", "\r\n\r\n").encode("utf-8")),
    ("a repeated identical line", (GOOD_ALIASES + "wb,KR-101,Кронштейны\n").encode("utf-8")),
]


@pytest.mark.parametrize("content", [h[1] for h in ALIAS_HABITS], ids=[h[0] for h in ALIAS_HABITS])
def test_an_aliases_file_in_excel_habits_is_read_right(content: bytes, person: Person):
    person.write_env(person.env_text())
    (person.home / "aliases.csv").write_bytes(content)
    assert person.mp("run", "--dataset", "stocks").exit_code == 0
    assert person.aliases() == GOOD_ROWS


def tally(figures, what: str) -> None:
    figures.setdefault("bad_inputs", {}).setdefault(what, 0)
    figures["bad_inputs"][what] += 1
