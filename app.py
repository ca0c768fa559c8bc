"""Entry point for ``flask --app app`` and WSGI servers (``waitress-serve --call app:create_app``)."""

from portal import create_app

__all__ = ["create_app"]
