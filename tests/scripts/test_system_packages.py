"""scripts/system-packages: what `make run` / `make test` check and install before anything else.

The script runs with a PATH of shims in a temporary folder, so each case decides what is
installed, who the user is (``id -u``), whether ``sudo -n`` works and what ``apt-get`` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "system-packages"
#: Tools the script itself uses, taken from the real system.
TOOLS = ("bash", "env", "dirname", "mktemp", "rm", "cat", "true")
#: What each Debian package the script may ask for provides.
PROVIDES = {
    "redis-server": ["redis-server"],
    "chromium": ["chromium"],
    "npm": ["npm", "node"],
    "nodejs": ["node"],
    "python3-venv": [],
}


class Machine:
    """A PATH of shims: installed commands, the user's id, sudo and apt-get."""

    def __init__(self, folder: Path, *, uid: int = 1000, sudo: bool = False, apt_works: bool = True) -> None:
        self.bin = folder / "bin"
        self.bin.mkdir()
        self.apt_log = folder / "apt-get.log"
        for tool in TOOLS:
            (self.bin / tool).symlink_to(shutil.which(tool))
        (self.bin / "python3").symlink_to(sys.executable)
        self.script("id", f'[ "$1" = -u ] && echo {uid}')
        if sudo:
            self.script("sudo", '[ "$1" = -n ] && shift; exec "$@"')
        else:
            self.script("sudo", 'echo "sudo: a password is required" >&2; exit 1')
        installs = "\n".join(
            f'    {package}) for b in {" ".join(binaries) or ":"}; do [ "$b" = : ] || '
            f'{{ printf "#!/bin/sh\\n" > "{self.bin}/$b"; /bin/chmod +x "{self.bin}/$b"; }}; done ;;'
            for package, binaries in PROVIDES.items()
        )
        self.script(
            "apt-get",
            f'echo "$@" >> "{self.apt_log}"\n'
            + ("" if apt_works else 'echo "E: Unable to locate package" >&2; exit 100\n')
            + f'[ "$1" = update ] && exit 0\nfor p in "$@"; do\n  case "$p" in\n{installs}\n  esac\ndone',
        )

    def script(self, name: str, body: str) -> None:
        path = self.bin / name
        path.unlink(missing_ok=True)  # never write through a symlink to a real tool
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(0o755)

    def has(self, *commands: str) -> None:
        for command in commands:
            self.script(command, "exit 0")

    def run(self, profile: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(SCRIPT), profile],
            env={"PATH": str(self.bin), "HOME": str(self.bin.parent), **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    @property
    def apt_calls(self) -> list[str]:
        return self.apt_log.read_text().splitlines() if self.apt_log.exists() else []


@pytest.fixture
def machine(tmp_path):
    return lambda **options: Machine(tmp_path, **options)


def test_without_root_or_sudo_it_names_the_packages_and_the_command_in_one_line(machine):
    box = machine(uid=1000, sudo=False)
    box.has("npm", "node")
    done = box.run("test")
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line == (
        "make test needs redis-server chromium: run `sudo apt-get install -y redis-server chromium` "
        "(as root, without sudo), then make test again."
    )
    assert box.apt_calls == []  # nothing installed, nothing half-done


def test_as_root_it_installs_what_is_missing_with_apt_get(machine):
    box = machine(uid=0)
    box.has("npm", "node")
    done = box.run("test")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Installing redis-server chromium (apt-get) for make test\n"
    assert box.apt_calls == ["update -qq", "install -y -qq redis-server chromium"]
    assert (box.bin / "redis-server").exists() and (box.bin / "chromium").exists()
    # Once there, nothing more is done, silently.
    again = box.run("test")
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert len(box.apt_calls) == 2


def test_with_passwordless_sudo_it_installs_through_sudo(machine):
    box = machine(uid=1000, sudo=True)
    box.has("npm", "node", "chromium")
    done = box.run("test")
    assert done.returncode == 0, done.stderr
    assert box.apt_calls == ["update -qq", "install -y -qq redis-server"]


def test_a_failing_apt_get_stops_with_one_line(machine):
    box = machine(uid=0, apt_works=False)
    box.has("npm", "node", "redis-server")
    done = box.run("test")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("apt-get could not install chromium (its output is in ")
    assert line.endswith("run `sudo apt-get install -y chromium` to see why.")


def test_the_demo_needs_neither_redis_nor_a_browser(machine):
    box = machine(uid=1000)
    box.has("npm")
    done = box.run("run")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_the_demo_without_npm(tmp_path):
    box = Machine(tmp_path, uid=1000)
    done = box.run("run")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "make run needs npm: run `sudo apt-get install -y npm` (as root, without sudo), then make run again."
    ]


def test_the_fast_tier_needs_redis_server_but_no_browser(machine):
    box = machine(uid=1000)
    box.has("npm", "node")
    done = box.run("test-fast", REDIS_URL="redis://127.0.0.1:6379/9")  # its workers start their own
    assert done.returncode == 1
    assert done.stderr.startswith("make test-fast needs redis-server: run `sudo apt-get install -y redis-server`")
    box.has("redis-server")
    assert box.run("test-fast").returncode == 0


def test_an_old_python_is_named(tmp_path):
    box = Machine(tmp_path)
    box.has("npm", "node", "redis-server", "chromium")
    box.script("python3", 'case "$*" in *version_info\\ \\<*) exit 1 ;; *) echo 3.9 ;; esac')
    done = box.run("test")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("Ledgerlink needs Python 3.11 or newer, and python3 is 3.9")


def test_an_unknown_target_is_a_usage_error(machine):
    done = machine().run("deploy")
    assert (done.returncode, done.stderr) == (2, "usage: scripts/system-packages run|test-fast|test\n")


@pytest.mark.parametrize("target", ["run", "test", "test-fast"])
def test_make_checks_the_system_packages_before_anything_else(target):
    # A dry run of every step of the target, as on a fresh clone: the check comes first.
    outer = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")  # when the suite itself runs under make
    done = subprocess.run(
        ["make", "--dry-run", "--always-make", "--no-print-directory", target],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k not in outer},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    first = done.stdout.splitlines()[0]
    assert first.endswith(f"scripts/system-packages {target}"), done.stdout
