"""What one steady pass writes, table by table: the pages of each table and index that the pass
put in the write-ahead log (each commit appends the pages it changed, so a page can be there
several times) and how many distinct pages that is (what the checkpoint then writes to the file).

    python -m benchmarks --only day                 # first: the day's databases in benchmarks/out/day
    python -m benchmarks.passwrites                 # the pass at 18:10 Moscow, the day's busiest hours
    python -m benchmarks.passwrites --hour 3        # the pass at 03:10 Moscow

The pass runs on a copy of the database the day starts from (`--only day`'s warm.db), after the
day's passes up to it (each hour's pass on the hour and ten past, as `--only day` runs them; not
counted), against the sandbox, with the WAL not checkpointed until it ends and the once-a-day
maintenance held back; then each frame's page is named by `dbstat`.
"""

from __future__ import annotations

import argparse
import struct
import sqlite3
from collections import Counter
from dataclasses import replace
from pathlib import Path

from collector.config import load_settings
from collector.pipeline import run_pass
from collector.sandbox import Sandbox, SandboxClock
from collector.storage import Storage

from benchmarks import passes
from benchmarks.run import Options

WAL_HEADER, FRAME_HEADER = 32, 24


class UncheckpointedStorage(Storage):
    """Storage whose connections leave the WAL whole until the last one closes."""

    @property
    def db(self):
        db = Storage.db.fget(self)
        db.execute("PRAGMA wal_autocheckpoint=0")
        return db


def wal_pages(wal: Path) -> list[int]:
    """The page number of every valid frame of a WAL file, in order."""
    data = wal.read_bytes()
    if len(data) < WAL_HEADER:
        return []
    page_size, salts = struct.unpack(">I", data[8:12])[0], data[16:24]
    pages, offset = [], WAL_HEADER
    while offset + FRAME_HEADER + page_size <= len(data) and data[offset + 8:offset + 16] == salts:
        pages.append(struct.unpack(">I", data[offset:offset + 4])[0])
        offset += FRAME_HEADER + page_size
    return pages


def page_names(database: Path) -> dict[int, str]:
    with sqlite3.connect(database) as conn:
        return dict(conn.execute("SELECT pageno, name FROM dbstat"))


def measure(config, out: Path, hour: int) -> tuple[Counter, Counter, int, int]:
    """(frames by name, distinct pages by name, the page size, the bytes the pass wrote by
    /proc/self/io: the WAL and any temporary file, not the checkpoint after it)."""
    database = out / "passwrites.db"
    passes.fresh_copy(out / "warm.db", database)
    start = passes.DAY_STARTS
    clock = SandboxClock(start)
    with Sandbox(replace(config, rate_limit_factor=0), clock=clock) as sandbox:
        settings = load_settings(env_file=None, environ=passes.collector_environ(sandbox, database, out / "aliases.csv", "0.001"))
        *before, (measured_at, _) = passes.day_pass_times(start, hour + 1)
        for at, _ in before:
            clock.set(at)
            passes.written_by_a_pass(settings, database, clock, f"the pass at {at:%H:%M} UTC")
        clock.set(measured_at)
        storage = UncheckpointedStorage(database)
        try:
            with storage.transaction():  # (the day's maintenance is one pass's in 144: not this one's)
                storage.set_state("maintenance_at", clock.now().isoformat(), clock.now().isoformat())
            frames_before = len(wal_pages(Path(f"{database}-wal")))
            before = passes.written_bytes()
            result = run_pass(settings, storage, "bench", clock=clock.now)
            written = passes.written_bytes() - before
            if result.status != "ok":
                raise RuntimeError(f"the measured pass ended {result.status}")
            frames = wal_pages(Path(f"{database}-wal"))[frames_before:]
            names = page_names(database)
            page_size = storage.db.execute("PRAGMA page_size").fetchone()[0]
        finally:
            storage.close()
    by_frame = Counter(names.get(page, "(free or new pages)") for page in frames)
    by_page = Counter(names.get(page, "(free or new pages)") for page in set(frames))
    return by_frame, by_page, page_size, written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/day"), help="where --only day left warm.db")
    parser.add_argument("--hour", type=int, default=18, help="the Moscow hour of the pass at ten past (0-23)")
    args = parser.parse_args(argv)
    config = Options().config(history_days=passes.SEEDED_DAYS + 4)  # (as `--only day`)
    by_frame, by_page, page_size, written = measure(config, args.out, args.hour)
    mb = lambda pages: f"{pages * page_size / 1e6:8.1f} MB"  # noqa: E731
    print(f"the pass at {args.hour:02d}:10 Moscow: {written / 1e6:.1f} MB written (/proc/self/io), "
          f"{sum(by_frame.values()) * page_size / 1e6:.1f} MB of WAL, {sum(by_page.values()) * page_size / 1e6:.1f} MB "
          f"of distinct pages (the checkpoint)")
    print(f"{'table or index':48} {'WAL':>11} {'pages':>11}  share of the WAL")
    total = sum(by_frame.values())
    for name, count in by_frame.most_common():
        print(f"{name:48} {mb(count)} {mb(by_page[name])}  {count / total:6.1%}")


if __name__ == "__main__":
    main()
