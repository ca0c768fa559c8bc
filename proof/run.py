"""`make proof`: run the proof suite and the benchmarks, then write a Markdown report.

What it runs, at the scale ``PROOF_SCALE`` gives (``full`` by default, ``ci`` for the small
sizes the CI uses):

- the fault matrix (tests/faults), the refresh races, bad-input corpus, schemathesis and
  security scan (tests/proof), and the journeys in a real browser (tests/e2e/journeys);
- the benchmarks of bench/, each with the sizes of its scale.

The report (proof/out/REPORT.md) holds the pass/fail counts per part, the fault matrix, the
refresh-race and security figures the tests wrote to test-results/, and each benchmark's
summary lines, so anyone can re-run it and compare. ``--reuse`` skips the pytest run and
reports the results an earlier run (``make test``) left in test-results/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "test-results"
OUT = ROOT / "proof" / "out"
PYTHON = sys.executable

SUITES = {
    "Fault matrix": "tests/faults",
    "Refresh races, bad input, schemathesis, security": "tests/proof",
    "Journeys in a real browser": "tests/e2e/journeys",
}

#: Benchmark command lines per scale: (title, script, arguments).
BENCHES = {
    "ci": [
        ("Sandbox throughput", "bench/sandbox_throughput.py", ["--n", "200", "--warmup", "20"]),
        ("Customer matching", "bench/customer_matching.py", ["--n", "2000"]),
        ("Push pipeline vs raw loop", "bench/push_pipeline.py", ["--n", "40", "--warmup", "5"]),
        (
            "Back-fill: pacing and QuickBooks batching",
            "bench/backfill.py",
            ["--only", "pacing,batch", "--pace-n", "30", "--qbo-n", "150"],
        ),
        ("Ledger truth", "bench/ledger_truth.py", ["--invoices", "60", "--credit-notes", "12"]),
    ],
    "full": [
        ("Sandbox throughput", "bench/sandbox_throughput.py", []),
        ("Customer matching", "bench/customer_matching.py", []),
        ("Push pipeline vs raw loop", "bench/push_pipeline.py", []),
        ("Back-fill", "bench/backfill.py", []),
        ("Ledger truth", "bench/ledger_truth.py", []),
    ],
}


def run_tests(junit: Path, scale: str) -> int:
    """Run the proof suites once with a JUnit report; return pytest's exit code."""
    env = {**os.environ, "PROOF_SCALE": scale}
    command = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *SUITES.values()]
    print("$", " ".join(command), flush=True)
    return subprocess.call(command, cwd=ROOT, env=env)


def suite_counts(junit: Path) -> dict[str, dict[str, int]]:
    """Count passed/failed/errors per suite directory from a JUnit file."""
    counts = {title: {"passed": 0, "failed": 0, "errors": 0, "seconds": 0.0} for title in SUITES}
    if not junit.exists():
        return counts
    for case in ET.parse(junit).getroot().iter("testcase"):
        path = (case.get("file") or case.get("classname", "").replace(".", "/")).replace("\\", "/")
        for title, folder in SUITES.items():
            if path.startswith(folder):
                bucket = counts[title]
                if case.find("failure") is not None:
                    bucket["failed"] += 1
                elif case.find("error") is not None:
                    bucket["errors"] += 1
                else:
                    bucket["passed"] += 1
                bucket["seconds"] += float(case.get("time") or 0)
    return counts


def run_bench(title: str, script: str, args: list[str]) -> dict:
    """Run one benchmark; keep its output and the lines worth quoting."""
    started = time.monotonic()
    done = subprocess.run([PYTHON, script, *args], cwd=ROOT, capture_output=True, text=True)
    output = done.stdout + done.stderr
    (OUT / f"{Path(script).stem}.txt").write_text(output)
    keep = [line for line in output.splitlines() if _quotable(line)]
    return {
        "title": title,
        "command": " ".join(["python", script, *args]),
        "status": done.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "lines": keep[-25:],
    }


def _quotable(line: str) -> bool:
    """Say whether a benchmark output line is a result (a summary, ratio or table row)."""
    lowered = line.lower()
    words = ("summary", "ratio", "throughput", "inv/s", "x fewer", "p95", "mb", "per second", "|", "held by reason")
    return any(word in lowered for word in words)


def _json(name: str) -> dict | list | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _matrix_table(matrix: list[dict]) -> list[str]:
    if not matrix:
        return ["(no fault matrix results: tests/faults did not run)"]
    columns = list(matrix[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in matrix]
    return lines


def write_report(scale: str, counts: dict, benches: list[dict], pytest_status: int | None) -> Path:
    """Write proof/out/REPORT.md and return its path."""
    lines = [
        "# Ledgerlink proof report",
        "",
        f"Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at scale `{scale}` "
        f"(`PROOF_SCALE={scale} make proof`). Database: "
        f"{'PostgreSQL' if os.environ.get('DATABASE_URL', '').startswith('postgresql') else 'SQLite'}; "
        f"Redis: {'REDIS_URL' if os.environ.get('REDIS_URL') else 'a private redis-server'}.",
        "",
        "## Suites",
        "",
        "| Part | Passed | Failed | Errors | Seconds |",
        "|---|---|---|---|---|",
    ]
    for title, c in counts.items():
        lines.append(f"| {title} | {c['passed']} | {c['failed']} | {c['errors']} | {c['seconds']:.0f} |")
    if pytest_status is not None:
        lines += ["", f"pytest exit status: {pytest_status}."]
    matrix = _json("faults-matrix.json")
    rows = matrix.get("rows", matrix) if isinstance(matrix, dict) else matrix
    lines += ["", "## Fault matrix", "", *_matrix_table(rows or [])]
    for title, name in (
        ("Refresh races", "refresh-races.json"),
        ("Push races", "push-races.json"),
        ("Security scan", "security-scan.json"),
    ):
        data = _json(name)
        lines += ["", f"## {title}", "", "```json", json.dumps(data, indent=2) if data else "(not run)", "```"]
    lines += ["", "## Benchmarks", ""]
    for bench in benches:
        verdict = "ok" if bench["status"] == 0 else f"exit {bench['status']}"
        lines += [f"### {bench['title']} ({verdict}, {bench['seconds']} s)", "", f"`{bench['command']}`", "", "```"]
        lines += bench["lines"] or ["(no summary lines; see proof/out/)"]
        lines += ["```", ""]
    report = OUT / "REPORT.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default=os.environ.get("PROOF_SCALE", "full"), choices=sorted(BENCHES))
    parser.add_argument("--reuse", action="store_true", help="report test results already in test-results/")
    parser.add_argument("--no-bench", action="store_true", help="skip the benchmarks")
    options = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    junit = RESULTS / ("junit.xml" if options.reuse else "proof-junit.xml")
    status = None if options.reuse else run_tests(junit, options.scale)
    counts = suite_counts(junit)
    benches = [] if options.no_bench else [run_bench(*spec) for spec in BENCHES[options.scale]]
    report = write_report(options.scale, counts, benches, status)
    print(report.read_text())
    print(f"Report written to {report.relative_to(ROOT)}")
    failed = any(c["failed"] or c["errors"] for c in counts.values()) or any(b["status"] for b in benches)
    return 1 if failed or status else 0


if __name__ == "__main__":
    sys.exit(main())
