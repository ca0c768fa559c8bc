"""The demo's mounted sandbox keeps its state in instance/, and terminal commands find it."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner
from flask import Flask


def test_the_mounted_sandbox_keeps_its_state_in_instance_and_notes_its_address(tmp_path, app):
    from portal import create_app

    demo = create_app(
        {
            "INSTANCE_PATH": str(tmp_path),
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'demo.sqlite'}",
            "REDIS_URL": "",
            "EMBEDDED_WORKER": False,
            "MOUNT_SANDBOX": True,
            "SANDBOX_URL": "http://127.0.0.1:5071/sandbox",
            "SECRET_KEY": app.config["SECRET_KEY"],
            "TOKEN_KEYS": app.config["TOKEN_KEYS"],
        }
    )
    assert json.loads((tmp_path / "demo-server.json").read_text()) == {"sandbox_url": "http://127.0.0.1:5071/sandbox"}
    response = demo.test_client().post("/sandbox/_control/reset")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert (tmp_path / "sandbox-state.pickle").stat().st_size > 1000


def test_a_terminal_command_talks_to_the_running_demos_sandbox(tmp_path, monkeypatch):
    from portal import config

    monkeypatch.delenv("LEDGERLINK_SANDBOX_URL", raising=False)
    (tmp_path / config.DEMO_SERVER_FILE).write_text(json.dumps({"sandbox_url": "http://127.0.0.1:5071/sandbox"}))
    seen = {}

    @click.command()
    def command():
        terminal = Flask("terminal", instance_path=str(tmp_path))
        config.load(terminal, None)
        seen["url"] = terminal.config["SANDBOX_URL"]

    assert CliRunner().invoke(command).exit_code == 0
    assert seen["url"] == "http://127.0.0.1:5071/sandbox"
    server = Flask("server", instance_path=str(tmp_path))  # built by a WSGI server: no such guess
    config.load(server, None)
    assert server.config["SANDBOX_URL"] == ""
