"""Authorization links: let someone without an account approve access to the ledger."""
