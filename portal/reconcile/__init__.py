"""Reconciliation: what the SaaS holds for a connection and period against what the ledger holds."""
