"""`python -m benchmarks` (`make bench`): every benchmark, then the table of figures.

    python -m benchmarks                 # the reference seller, a year of history (~20 min)
    python -m benchmarks --quick         # a twentieth of the seller, a month of history (~1 min)
    python -m benchmarks --only viewer,load --reuse
    python -m benchmarks --only export   # a year's export streamed whole, against the views' ?_stream=on
    python -m benchmarks --only ingest --baseline-rev 02de239   # today's triggers against 02de239's

Generated databases go to benchmarks/out/ (git-ignored); the table is also written there as
results.md and results.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.run import SECTIONS, Options, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a twentieth of the reference seller, 30 days of history, short runs")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})")
    parser.add_argument("--scale", type=float, help="size of the seller against the reference (default 1)")
    parser.add_argument("--year-days", type=int, help="days of history for the viewer's long database (default 365)")
    parser.add_argument("--growth-days", type=int, help="simulated days for the growth figure (default 30)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the viewer's databases when they were generated today (in Moscow) with the "
                             "same settings")
    parser.add_argument("--export-rows", type=int, metavar="N",
                        help="stream only the first N rows of the year's export (default: all of them)")
    parser.add_argument("--baseline-rev", metavar="REV",
                        help="ingest also with the triggers of REV's schema.sql (on today's tables), e.g. "
                             "the commit before a change to the triggers")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out",
                        help="where databases and results go (default benchmarks/out)")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}; known: {', '.join(SECTIONS)}")
    options = Options.quick() if args.quick else Options()
    if args.scale is not None:
        options.scale = args.scale
    if args.year_days is not None:
        options.year_days = args.year_days
    if args.growth_days is not None:
        options.growth_days = args.growth_days
    options.reuse = args.reuse
    if args.export_rows is not None:
        options.export_rows = args.export_rows
    options.baseline_rev = args.baseline_rev
    options.out = args.out
    report = run(options, sections, log=lambda text: print(text, file=sys.stderr, flush=True))
    print(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
