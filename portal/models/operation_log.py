"""OperationLog: one provider call of a connection, with its bodies redacted, kept for a few days."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..database import Base, UTCDateTime, utcnow


class OperationLog(Base):
    """What a connection asked its ledger and what came back, secrets and personal data masked."""

    __tablename__ = "operation_log"
    __table_args__ = (Index("ix_operation_log_connection_created", "connection_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"))
    #: When the response arrived (retention is counted from here).
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    provider: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(8))
    #: Host and path of the call, with secret query values masked.
    path: Mapped[str] = mapped_column(String(1000))
    #: HTTP status of the answer; 0 when none came (refused connection, timeout).
    status: Mapped[int]
    duration_ms: Mapped[int]
    #: The request body, redacted and capped; "" when there was none.
    request_body: Mapped[str] = mapped_column(Text, default="")
    request_truncated: Mapped[bool] = mapped_column(default=False)
    #: The response body, redacted and capped.
    response_body: Mapped[str] = mapped_column(Text, default="")
    response_truncated: Mapped[bool] = mapped_column(default=False)
    #: The provider's trace id to quote to its support (QBO intuit_tid), when it sent one.
    request_id: Mapped[str | None] = mapped_column(String(128))
