"""Ops pages across customers: the audit log and the job console."""
