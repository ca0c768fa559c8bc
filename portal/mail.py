"""Outgoing e-mail: SMTP when LEDGERLINK_SMTP_HOST is set, else a development outbox in instance/.

The outbox is a JSON-lines file (one message a line) shown to support on /outbox, so a demo
or a test can see what would have been sent without any mail server.
"""

from __future__ import annotations

import json
import re
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, render_template

from .database import utcnow
from .models import Role
from .security import require_role

bp = Blueprint("outbox", __name__)

#: Seconds an SMTP conversation may take before the send counts as failed.
SMTP_TIMEOUT = 15


class MailError(RuntimeError):
    """A message could not be handed to the mail server; the message says why."""


def outbox_path() -> Path:
    """Return the development outbox file."""
    return Path(current_app.instance_path) / "outbox.jsonl"


def send(to: str, subject: str, body: str) -> str:
    """Send a plain-text message; return how it went out ("smtp" or "outbox").

    :raise MailError: when the SMTP server refuses or cannot be reached.
    """
    config = current_app.config
    message = EmailMessage()
    message["From"] = config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="ledgerlink")
    message.set_content(body)
    if not config.get("SMTP_HOST"):
        _write_outbox(message)
        return "outbox"
    try:
        with smtplib.SMTP(config["SMTP_HOST"], int(config["SMTP_PORT"]), timeout=SMTP_TIMEOUT) as smtp:
            if config.get("SMTP_STARTTLS"):
                smtp.starttls()
            if config.get("SMTP_USERNAME"):
                smtp.login(config["SMTP_USERNAME"], config.get("SMTP_PASSWORD") or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"the mail server at {config['SMTP_HOST']} did not take the message: {exc}") from exc
    return "smtp"


def _write_outbox(message: EmailMessage) -> None:
    path = outbox_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "at": utcnow().isoformat(),
        "from": message["From"],
        "to": message["To"],
        "subject": message["Subject"],
        "body": message.get_content(),
    }
    # One write of one line with O_APPEND: concurrent writers never interleave a message.
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_outbox(limit: int = 50) -> list[dict[str, Any]]:
    """Return the newest messages of the outbox, newest first."""
    path = outbox_path()
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in reversed(lines[-limit:]) if line.strip()]


#: A link token in a message: 256 random bits that open an approver's consent.
_LINK_TOKEN = re.compile(r"(/authorize/)([A-Za-z0-9_-]{6})[A-Za-z0-9_-]{14,}")


def hide_link_tokens(text: str) -> str:
    """Return ``text`` with authorization-link tokens shortened to their first characters."""
    return _LINK_TOKEN.sub(r"\1\2…", text)


# -- support: what development would have sent ------------------------------------------------
@bp.get("/outbox")
@require_role(Role.support)
def show_outbox():
    # The recipient's copy is the one that opens a link: staff see which link went where, not the token.
    messages = [{**m, "body": hide_link_tokens(m.get("body", ""))} for m in read_outbox()]
    return render_template("mail/outbox.html", messages=messages, smtp_host=current_app.config.get("SMTP_HOST") or None)
