"""The figures the reliability tests measure: collected per section while the tests run, printed
at the end of the session and written to build/reliability/figures-<quick|full>.json (each
section stamped with when it was measured), which is where docs/RELIABILITY.md takes its
numbers from."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.reliability.helpers import FULL, PROJECT

FIGURES: dict[str, dict] = {}
FIGURES_DIR = PROJECT / "build" / "reliability"


@pytest.fixture(scope="session")
def figures() -> dict[str, dict]:
    """Sections of figures, e.g. figures["faults"]["passes"]; tests add to them."""
    return FIGURES


def pytest_sessionfinish(session):
    # Under pytest-xdist each worker measures the modules it ran (whole modules: --dist loadfile)
    # and hands its sections to the controller, which reports them all.
    worker = getattr(session.config, "workerinput", {}).get("workerid")
    if worker and FIGURES:
        FIGURES_DIR.mkdir(parents=True, exist_ok=True)
        (FIGURES_DIR / f".{worker}.json").write_text(json.dumps(FIGURES, ensure_ascii=False), encoding="utf-8")


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller: no worker's leftovers
        for stale in FIGURES_DIR.glob(".gw*.json"):
            stale.unlink()


def _collect_worker_figures() -> None:
    for part in sorted(FIGURES_DIR.glob(".gw*.json")):
        FIGURES.update(json.loads(part.read_text(encoding="utf-8")))
        part.unlink()


def pytest_terminal_summary(terminalreporter):
    if FIGURES_DIR.exists():
        _collect_worker_figures()
    if not FIGURES:
        return
    variant = "full" if FULL else "quick"
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    target = FIGURES_DIR / f"figures-{variant}.json"
    # Sections measured by this session replace theirs; others (from an earlier, partial run) stay.
    kept = json.loads(target.read_text(encoding="utf-8")) if target.exists() else {}
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    kept.update({section: {**values, "measured_at": now} for section, values in FIGURES.items()})
    target.write_text(json.dumps(kept, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    terminalreporter.section(f"reliability figures ({variant}; {target.relative_to(PROJECT)})")
    for section, values in sorted(FIGURES.items()):
        shown = ", ".join(f"{key}={_short(value)}" for key, value in sorted(values.items()))
        terminalreporter.write_line(f"{section}: {shown}")


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 200 else text[:197] + "..."


def pytest_collection_modifyitems(items):
    # The reliability tests own their time limits (every subprocess and load run is bounded);
    # the suite-wide 120 s limit of pyproject.toml stays for the quick variant only.
    if FULL:
        for item in items:
            if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
                item.add_marker(pytest.mark.timeout(1800))
