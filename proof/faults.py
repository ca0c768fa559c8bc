"""Run the fault matrix (tests/faults) and print it: ``python proof/faults.py [--full]``.

``--full`` sets ``PROOF_SCALE=full`` (a few hundred invoices per connection, twenty worker
kills). The matrix is also in ``test-results/faults-matrix.json``. The exit status is pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MATRIX = ROOT / "test-results" / "faults-matrix.json"
COLUMNS = ("provider", "fault", "invoices", "in_ledger", "duplicates", "lost", "mismatched", "failed", "waiting")
COLUMNS += ("connection", "fault_events", "verdict")


def table(rows: list[dict]) -> str:
    """Return the matrix as an aligned text table."""
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS), "  ".join("-" * widths[c] for c in COLUMNS)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="a few hundred invoices and 20 kills per case")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments, e.g. -k storm")
    args = parser.parse_args(argv)
    env = {**os.environ, **({"PROOF_SCALE": "full"} if args.full else {})}
    if MATRIX.exists():
        MATRIX.unlink()
    command = [sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:cacheprovider", *args.pytest_args]
    status = subprocess.call(command, cwd=ROOT, env=env)
    if not MATRIX.exists():
        print("no fault matrix was written (the cases did not run)", file=sys.stderr)
        return status or 1
    data = json.loads(MATRIX.read_text())
    print(f"\nFault matrix ({data['scale']} scale, {data['database']}):")
    print(table(data["rows"]))
    print("ALL PASS" if data["passed"] else "SOME CASES FAILED")
    return status


if __name__ == "__main__":
    sys.exit(main())
