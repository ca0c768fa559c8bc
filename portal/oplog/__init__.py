"""The operation log: every provider call of a connection, redacted, kept OPERATION_LOG_DAYS days."""
