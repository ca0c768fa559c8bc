"""Languages of the public link pages (EN, NL, DE, FR), chosen from the browser's Accept-Language.

Only the pages an approver sees are translated; staff pages stay in English. The catalogs are
committed as .po files and compiled to .mo when the app starts (when missing or older), so a
clean clone works with `make test` or a bare `pytest` alike.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, has_request_context, request
from flask_babel import Babel

LANGUAGES = ("en", "nl", "de", "fr")

log = logging.getLogger(__name__)
babel = Babel()


def select_locale() -> str:
    """Return the best of our languages for the browser, English by default."""
    if not has_request_context():
        return "en"
    return request.accept_languages.best_match(LANGUAGES) or "en"


def compile_catalogs(directory: Path) -> None:
    """Compile every messages.po under ``directory`` whose .mo is missing or older."""
    for po in directory.glob("*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        try:
            with po.open("rb") as fh:
                catalog = read_po(fh, locale=po.parts[-3])
            # Write then rename: several processes starting at once never read half a file.
            fd, tmp = tempfile.mkstemp(dir=po.parent, suffix=".mo.tmp")
            with os.fdopen(fd, "wb") as out:
                write_mo(out, catalog)
            os.replace(tmp, mo)
        except OSError as exc:  # a read-only install: pages fall back to English
            log.warning("could not compile %s: %s", po, exc)


def init_app(app: Flask) -> None:
    """Compile the catalogs if needed and bind Flask-Babel with the Accept-Language selector."""
    directory = Path(app.root_path) / "translations"
    compile_catalogs(directory)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(directory))
    babel.init_app(app, locale_selector=select_locale)
