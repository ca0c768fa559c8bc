"""The fault matrix's file and table: written where the cases ran, printed at the end of the run.

Under pytest-xdist the cases run in a worker process, whose output is not shown: the worker
writes ``test-results/faults-matrix.json`` when its session ends, and the run's terminal
summary (in ``tests/conftest.py``) prints the table from that file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MATRIX_PATH = Path(__file__).resolve().parents[2] / "test-results" / "faults-matrix.json"
COLUMNS = ("provider", "fault", "invoices", "in_ledger", "duplicates", "lost", "mismatched", "failed", "waiting")
COLUMNS += ("connection", "fault_events", "verdict")


def write(rows: list[dict]) -> Path:
    """Write the matrix's rows with the run's scale and database; return the file."""
    MATRIX_PATH.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "scale": os.environ.get("PROOF_SCALE") or "ci",
        "database": "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgresql") else "sqlite",
        "rows": rows,
        "passed": all(r["verdict"] == "PASS" for r in rows),
    }
    MATRIX_PATH.write_text(json.dumps(payload, indent=2) + "\n")
    return MATRIX_PATH


def written_since(started: float) -> list[dict] | None:
    """The rows written to the matrix file since ``started`` (a time.time()), or None."""
    if not MATRIX_PATH.exists() or MATRIX_PATH.stat().st_mtime < started:
        return None
    return json.loads(MATRIX_PATH.read_text())["rows"]


def table(rows: list[dict]) -> list[str]:
    """The matrix as aligned text lines, each row's notes under it."""
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    lines.append("  ".join("-" * widths[c] for c in COLUMNS))
    for row in rows:
        lines.append("  ".join(str(row[c]).ljust(widths[c]) for c in COLUMNS))
        if row["notes"]:
            lines.append(f"    {row['notes']}")
    return lines
