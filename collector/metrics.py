"""Prometheus textfile output, for node_exporter's textfile collector.

Figures come from the database (the latest fetch_log row per account x dataset), so the file
tells the truth whichever process ran the pass. It is replaced atomically: node_exporter never
reads half a file.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from collector.storage import Storage

LATEST = """
SELECT f.account, f.dataset, f.status, f.rows, f.requests, f.retries, f.duration_ms,
       (SELECT max(ok.id) FROM fetch_log ok
         WHERE ok.account = f.account AND ok.dataset = f.dataset AND ok.status = 'ok') AS ok_id
FROM fetch_log f
WHERE f.id IN (SELECT max(id) FROM fetch_log GROUP BY account, dataset)
ORDER BY f.account, f.dataset
"""

HELP = {
    "mp_collector_last_success_timestamp_seconds": ("gauge", "When the account x dataset last saved data (Unix time)."),
    "mp_collector_last_status_ok": ("gauge", "1 if the latest attempt for the account x dataset succeeded, 0 if it failed."),
    "mp_collector_rows": ("gauge", "Records received in the latest attempt."),
    "mp_collector_requests": ("gauge", "HTTP requests sent in the latest attempt, retries included."),
    "mp_collector_retries": ("gauge", "Retries in the latest attempt."),
    "mp_collector_duration_seconds": ("gauge", "Duration of the latest attempt."),
    "mp_collector_last_pass_timestamp_seconds": ("gauge", "When the latest pass finished (Unix time)."),
}


def render(storage: Storage) -> str:
    samples: dict[str, list[str]] = {name: [] for name in HELP}
    for account, dataset, status, rows, requests, retries, duration_ms, ok_id in storage.db.execute(LATEST):
        labels = f'account="{account}",dataset="{dataset}"'
        if ok_id is not None:
            finished = storage.db.execute("SELECT finished_at FROM fetch_log WHERE id = ?", [ok_id]).fetchone()[0]
            samples["mp_collector_last_success_timestamp_seconds"].append(f"{{{labels}}} {_unix(finished)}")
        samples["mp_collector_last_status_ok"].append(f"{{{labels}}} {int(status == 'ok')}")
        samples["mp_collector_rows"].append(f"{{{labels}}} {rows}")
        samples["mp_collector_requests"].append(f"{{{labels}}} {requests}")
        samples["mp_collector_retries"].append(f"{{{labels}}} {retries}")
        samples["mp_collector_duration_seconds"].append(f"{{{labels}}} {duration_ms / 1000:.3f}")
    last = storage.db.execute("SELECT finished_at FROM runs WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1"
                              ).fetchone()
    if last:
        samples["mp_collector_last_pass_timestamp_seconds"].append(f" {_unix(last[0])}")
    lines = []
    for name, (kind, text) in HELP.items():
        if samples[name]:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            lines += [f"{name}{sample}" for sample in samples[name]]
    return "\n".join(lines) + "\n"


def write_textfile(storage: Storage, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(render(storage))
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _unix(iso_time: str) -> int:
    return int(datetime.fromisoformat(iso_time).timestamp())
