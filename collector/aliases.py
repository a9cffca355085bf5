"""SKU aliases from a CSV: `marketplace,key,alias`, where key is an article or a marketplace SKU.

The alias order is the order in which aliases first appear in the file. Excel's habits are
accepted (a BOM, `;` as the separator, Windows-1251), and every mistake names its line.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

HEADER = ["marketplace", "key", "alias"]
MARKETPLACES = {"wb", "ozon"}


class AliasFileError(Exception):
    pass


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_aliases(path: Path) -> list[tuple[str, str, str, int]]:
    """Rows (marketplace, key, alias, position) ready for the sku_aliases table."""
    text = _decode(path)
    sample = text.splitlines()[0] if text else ""
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [cell.strip().lower() for cell in next(reader, [])]
    if header[:3] != HEADER:
        raise AliasFileError(f"{path}: line 1 must be the header 'marketplace,key,alias', found {','.join(header)!r}")
    positions: dict[str, int] = {}
    seen: dict[tuple[str, str], tuple[str, int]] = {}
    rows = []
    for line_no, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        marketplace, key, alias = _cells(path, line_no, cells)
        if (marketplace, key) in seen:
            earlier_alias, earlier_line = seen[(marketplace, key)]
            if earlier_alias != alias:
                raise AliasFileError(f"{path}: line {line_no}: {marketplace} key {key!r} is already "
                                     f"aliased to {earlier_alias!r} on line {earlier_line}")
            continue
        seen[(marketplace, key)] = (alias, line_no)
        positions.setdefault(alias, len(positions) + 1)
        rows.append((marketplace, key, alias, positions[alias]))
    return rows


def _cells(path: Path, line_no: int, cells: list[str]) -> tuple[str, str, str]:
    if len(cells) < 3:
        raise AliasFileError(f"{path}: line {line_no}: expected 3 columns (marketplace,key,alias), found {len(cells)}")
    marketplace, key, alias = (cell.strip() for cell in cells[:3])
    marketplace = marketplace.lower()
    if marketplace not in MARKETPLACES:
        raise AliasFileError(f"{path}: line {line_no}: marketplace must be wb or ozon, found {marketplace!r}")
    if not key or not alias:
        raise AliasFileError(f"{path}: line {line_no}: key and alias must not be empty")
    return marketplace, key, alias


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AliasFileError(f"{path}: cannot read the aliases file: {exc.strerror}") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise AliasFileError(f"{path}: the file is UTF-16; save it as CSV UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = raw[:exc.start].count(b"\n") + 1
    try:
        # Russian Excel saves "CSV" in Windows-1251; it decodes any byte, so check it looks like text.
        text = raw.decode("cp1251")
    except UnicodeDecodeError:
        text = ""
    if text and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return text
    raise AliasFileError(f"{path}: line {bad_line}: not UTF-8 text; save the file as CSV UTF-8")
