"""ConnectionLease: which push run may write to a connection's ledger, with its fencing token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from ..database import Base, UTCDateTime


class ConnectionLease(Base):
    """One row per connection: the run holding it, until when, and a token that only ever grows.

    A run takes the lease by raising the token (every older holder is fenced off by that), keeps
    it by moving ``expires_at`` on, and gives it up by clearing ``expires_at`` (the token stays).
    See :mod:`portal.sync.fencing`.
    """

    __tablename__ = "connection_lease"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"), primary_key=True)
    #: The fencing token: raised by one at every take-over, never lowered.
    token: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The SyncRun holding the lease (None once given up).
    run_id: Mapped[int | None]
    #: Until when the holder may write without renewing; None when nobody holds it.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
