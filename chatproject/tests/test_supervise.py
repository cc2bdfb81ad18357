"""scripts/supervise, which `make run` uses to serve the web app and run the job worker as one command."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SUPERVISE = REPO_ROOT / "scripts" / "supervise"
TIMEOUT = 30.0

# A program that says it started, and on SIGTERM writes that it was asked to stop and exits 0.
POLITE = (
    "import pathlib, signal, sys, time\n"
    "folder = pathlib.Path(sys.argv[1]); name = sys.argv[2]\n"
    "def stop(*_):\n"
    "    (folder / (name + '.stopped')).touch(); sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "(folder / (name + '.started')).touch()\n"
    "for _ in range(600): time.sleep(0.1)\n"
)
STUBBORN = (
    "import pathlib, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "pathlib.Path(sys.argv[1], 'stuck.started').touch()\n"
    "for _ in range(600): time.sleep(0.1)\n"
)


def program(name: str, code: str, *arguments: str) -> str:
    script = shlex.join([sys.executable, "-c", code, *arguments])
    return f"{name}={script}"


def supervise(*programs: str, grace: float = 10.0) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, str(SUPERVISE), "--grace", str(grace), *programs],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for(path: Path) -> bool:
    deadline = time.monotonic() + TIMEOUT
    for _ in range(int(TIMEOUT / 0.05) + 1):
        if path.exists() or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return path.exists()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_every_program_gracefully(tmp_path: Path, stop_signal: int) -> None:
    runner = supervise(program("web", POLITE, str(tmp_path), "web"), program("worker", POLITE, str(tmp_path), "worker"))
    assert wait_for(tmp_path / "web.started") and wait_for(tmp_path / "worker.started")

    runner.send_signal(stop_signal)
    runner.wait(timeout=TIMEOUT)

    assert runner.returncode == 0
    assert (tmp_path / "web.stopped").exists() and (tmp_path / "worker.stopped").exists()


def test_when_one_program_exits_the_others_stop_and_its_status_is_returned(tmp_path: Path) -> None:
    # The failing program waits until the other has started (and set its SIGTERM handler).
    fail_after_web = (
        "import pathlib, sys, time\n"
        "for _ in range(600):\n"
        "    if pathlib.Path(sys.argv[1], 'web.started').exists(): break\n"
        "    time.sleep(0.05)\n"
        "sys.exit(3)\n"
    )
    runner = supervise(program("web", POLITE, str(tmp_path), "web"), program("worker", fail_after_web, str(tmp_path)))

    runner.wait(timeout=TIMEOUT)

    assert runner.returncode == 3
    assert (tmp_path / "web.stopped").exists()
    assert runner.stdout is not None and b"worker exited with status 3" in runner.stdout.read()


def test_a_program_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    runner = supervise(
        program("web", POLITE, str(tmp_path), "web"), program("stuck", STUBBORN, str(tmp_path)), grace=1.0
    )
    assert wait_for(tmp_path / "web.started") and wait_for(tmp_path / "stuck.started")

    signalled = time.monotonic()
    runner.send_signal(signal.SIGTERM)
    runner.wait(timeout=TIMEOUT)

    assert time.monotonic() - signalled >= 1.0  # it waited for the grace period, then killed
    assert runner.returncode == 0
    assert (tmp_path / "web.stopped").exists()


def test_programs_do_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux's")
    runner = supervise(program("web", POLITE, str(tmp_path), "web"))
    assert wait_for(tmp_path / "web.started")

    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=TIMEOUT)

    assert wait_for(tmp_path / "web.stopped")


def test_make_run_serves_daphne_and_runs_the_worker_through_the_supervisor() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    supervise_line = re.search(r"^SUPERVISE = (.*)$", makefile, re.MULTILINE)
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]

    assert supervise_line and "scripts/supervise" in supervise_line[1]
    assert "manage.py run_worker" in supervise_line[1]
    assert "$(SUPERVISE)" in recipe and "daphne" in recipe and "$(DAPHNE_ARGS)" in recipe
    assert os.access(SUPERVISE, os.X_OK)
