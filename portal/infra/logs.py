"""JSON log lines (``LOG_FORMAT=json``): one object per record, with job and connection ids."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

#: Extra attributes copied from a record when present (job loggers and services set them).
CONTEXT_FIELDS = ("sync_run_id", "rq_job_id", "job_id", "connection_id", "organization_id", "provider")


class JsonFormatter(logging.Formatter):
    """Format a log record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(log_format: str) -> None:
    """Switch the root logger's handlers to JSON lines when ``log_format`` is "json"."""
    if (log_format or "").lower() != "json":
        return
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
