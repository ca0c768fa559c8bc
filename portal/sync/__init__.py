"""The sync engine: pushes billing records into ledgers exactly once, through ExternalRecord."""
