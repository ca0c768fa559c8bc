"""The ledger-truth corpus (bench/ledger_truth.py) at the proof scale: nothing pushed differs, nothing is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.proof.conftest import ROOT, scaled, write_result

#: Columns that must stay at zero for every provider.
MUST_BE_ZERO = ("pushed, different totals", "lost", "twice in the ledger", "duplicated customers")


@pytest.mark.slow
def test_a_generated_corpus_lands_in_every_ledger_as_the_saas_invoiced_it_or_is_held(tmp_path, redis_url):
    invoices, notes = scaled(24, 200), scaled(6, 30)
    out = tmp_path / "truth.json"
    env = {**os.environ, "REDIS_URL": redis_url}
    env.pop("DATABASE_URL", None)  # the bench makes its own database
    sizes = ["--invoices", str(invoices), "--credit-notes", str(notes)]
    done = subprocess.run(
        [sys.executable, "bench/ledger_truth.py", *sizes, "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    write_result("ledger-truth.json", results)
    assert set(results) == {"exact-online", "quickbooks", "bexio"}
    for provider, result in results.items():
        counts = result["counts"]
        assert counts["documents"] >= invoices + notes - len(results), provider
        assert all(counts.get(column, 0) == 0 for column in MUST_BE_ZERO), (provider, counts)
        assert counts.get("refused by the ledger", 0) == 0, (provider, result["held"])
        # Every document is accounted for: in the ledger with the SaaS's totals, held before writing
        # with its reason, or skipped where the ledger has no API (bexio's credit notes).
        pushed, held, skipped = (
            counts.get(c, 0) for c in ("pushed, equal totals", "held before writing", "skipped (no API)")
        )
        assert pushed + held + skipped == counts["documents"], (provider, counts)
        assert pushed >= (counts["documents"] - skipped) * 0.4, (provider, counts)
        assert sum(result["held"].values()) == held, provider
    assert "Summary: pushed, different totals 0, lost 0" in done.stdout
