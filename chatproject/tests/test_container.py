"""What can be checked of the container image without a Docker engine.

The Dockerfile is parsed into instructions and held to the image's promises
(multi-stage, non-root, health check, dependencies cached before code, nothing
copied that the build context lacks), and the entrypoint and health probe are
run for real.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
ENTRYPOINT = REPO_ROOT / "deploy" / "entrypoint.sh"
HEALTHCHECK = REPO_ROOT / "deploy" / "healthcheck.py"
SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "MIGRATE", "SQLITE_PATH")


# --- A small Dockerfile parser ----------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int

    def flags(self) -> dict[str, str]:
        """Return the leading `--name=value` flags, as on COPY --from=builder or RUN --mount=…."""
        found = {}
        for word in shlex.split(self.arguments):
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            found[name] = value
        return found

    def words(self) -> list[str]:
        """Return the arguments after the flags, in exec (JSON) or shell form alike."""
        text = self.arguments.strip()
        if text.startswith("["):
            return json.loads(text)
        words = shlex.split(text)
        while words and words[0].startswith("--"):
            words.pop(0)
        return words


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [instruction for instruction in self.instructions if instruction.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Split a Dockerfile into stages of instructions, joining `\\` continuations and dropping comments."""
    stages: list[Stage] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comments inside a continued instruction are removed by Docker
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        pending = ""
        instruction = Instruction(keyword.upper(), arguments.strip(), start)
        if instruction.keyword == "FROM":
            match = re.fullmatch(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", instruction.arguments, re.IGNORECASE)
            assert match, f"line {start}: cannot read FROM {instruction.arguments!r}"
            stages.append(Stage(image=match[1], name=match[2]))
        else:
            assert stages, f"line {start}: {instruction.keyword} before any FROM"
            stages[-1].instructions.append(instruction)
    assert not pending, "the Dockerfile ends inside a continued line"
    return stages


def ignored_by_dockerignore(relative: str) -> bool:
    """Return whether .dockerignore keeps this repo-relative path out of the build context."""
    excluded = False
    for raw in DOCKERIGNORE.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = Path(relative).parts
        # A pattern excludes a path when it matches the path or any folder above it.
        candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
        alternatives = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
        if any(fnmatch.fnmatch(candidate, alt) for candidate in candidates for alt in alternatives):
            excluded = not negate
    return excluded


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def context_copies(stage: Stage) -> list[tuple[Instruction, list[str]]]:
    """Return each COPY/ADD from the build context with its source paths."""
    copies = []
    for instruction in stage.instructions:
        if instruction.keyword in {"COPY", "ADD"} and "from" not in instruction.flags():
            copies.append((instruction, instruction.words()[:-1]))
    return copies


def test_parser_reads_continuations_comments_and_stages() -> None:
    parsed = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nFROM a:1 AS one\nRUN echo \\\n  # note\n  hi\nFROM one\nUSER x\n"
    )

    assert [(stage.image, stage.name) for stage in parsed] == [("a:1", "one"), ("one", None)]
    assert parsed[0].instructions[0].arguments == "echo hi"
    assert parsed[1].all("USER")[0].words() == ["x"]


def test_image_builds_wheels_in_a_builder_stage(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    builder = stages[0]
    assert builder.name == "builder"
    assert any("pip wheel" in run.arguments and "requirements.txt" in run.arguments for run in builder.all("RUN"))


def test_runtime_stage_is_slim_python_313_and_installs_only_the_built_wheels(final: Stage) -> None:
    assert final.image == "python:3.13-slim"
    installs = [run for run in final.all("RUN") if "pip install" in run.arguments]
    assert installs
    assert all("--no-index" in run.arguments and "from=builder" in run.arguments for run in installs)


def test_runtime_stage_runs_as_the_unprivileged_chat_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "the final stage never leaves root"
    user = users[-1].words()[0].split(":")[0]
    assert user == "chat"
    assert user not in {"root", "0"}
    assert any("useradd" in run.arguments and " chat" in run.arguments for run in final.all("RUN"))


def test_runtime_stage_checks_health_through_healthz(final: Stage) -> None:
    (healthcheck,) = final.all("HEALTHCHECK")
    command = healthcheck.arguments.split(" CMD ", 1)[1]
    assert "python" in command
    assert "healthcheck.py" in command
    assert "/healthz" in HEALTHCHECK.read_text()
    assert "urllib" in HEALTHCHECK.read_text()


def test_runtime_stage_exposes_port_8000_and_starts_daphne_through_the_entrypoint(final: Stage) -> None:
    assert [expose.words() for expose in final.all("EXPOSE")] == [["8000"]]
    (entrypoint,) = final.all("ENTRYPOINT")
    assert entrypoint.words() == ["/app/deploy/entrypoint.sh"]
    (cmd,) = final.all("CMD")
    assert cmd.words()[0] == "daphne"
    assert "chatproject.asgi:application" in cmd.words()


def test_requirements_are_installed_before_the_code_is_copied(stages: list[Stage]) -> None:
    for stage in stages:
        copies = context_copies(stage)
        first_code = next((i for i, (_, sources) in enumerate(copies) if sources != ["requirements.txt"]), None)
        requirements = next(i for i, (_, sources) in enumerate(copies) if sources == ["requirements.txt"])
        if first_code is not None:
            # The dependency layers stay cached across code changes.
            assert requirements < first_code
            install = next(run for run in stage.all("RUN") if "requirements.txt" in run.arguments)
            assert copies[requirements][0].line < install.line < copies[first_code][0].line


def test_every_copied_path_exists_and_is_in_the_build_context(stages: list[Stage]) -> None:
    for stage in stages:
        for instruction, sources in context_copies(stage):
            for source in sources:
                assert (REPO_ROOT / source).exists(), f"line {instruction.line}: {source} does not exist"
                assert not ignored_by_dockerignore(source), f"line {instruction.line}: {source} is in .dockerignore"


def test_every_local_app_and_asset_folder_is_copied(final: Stage) -> None:
    copied = {Path(source).parts[0] for _, sources in context_copies(final) for source in sources}
    local_apps = {app.split(".")[0] for app in settings.INSTALLED_APPS if (REPO_ROOT / app.split(".")[0]).is_dir()}
    folders = {Path(folder).name for folder in [*settings.STATICFILES_DIRS, *settings.TEMPLATES[0]["DIRS"]]}

    assert {"manage.py", "chatproject", "deploy", *local_apps, *folders} <= copied


def test_secrets_and_local_state_stay_out_of_the_build_context() -> None:
    for path in [".env", ".dev-secret", "db.sqlite3", "db.sqlite3-wal", ".venv", ".git", "staticfiles"]:
        assert ignored_by_dockerignore(path), path
    assert not ignored_by_dockerignore("chatproject/settings.py")


def test_collectstatic_runs_at_build_with_a_build_only_secret(final: Stage) -> None:
    (collect,) = [run for run in final.all("RUN") if "collectstatic" in run.arguments]
    assert "--noinput" in collect.arguments
    assert re.search(r"\bSECRET_KEY=\S+", collect.arguments)
    assert re.search(r"\bALLOWED_HOSTS=\S+", collect.arguments)
    # The build secret is set for that one command only, never baked into the image's environment.
    for instruction in final.all("ENV") + final.all("ARG"):
        assert "SECRET_KEY" not in instruction.arguments


def test_build_time_settings_pass_the_production_checks(final: Stage) -> None:
    (collect,) = [run for run in final.all("RUN") if "collectstatic" in run.arguments]
    assignments = dict(re.findall(r"\b(DEBUG|SECRET_KEY|ALLOWED_HOSTS)=(\S+)", collect.arguments))
    env = {name: value for name, value in os.environ.items() if name not in SERVICE_VARIABLES}
    env.update(assignments, DJANGO_SETTINGS_MODULE="chatproject.settings")

    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--dry-run", "--verbosity", "0"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr


# --- The entrypoint, run for real -----------------------------------------------------------


def entrypoint_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Return the test environment on the embedded SQLite default, with this venv's python first on PATH."""
    env = {name: value for name, value in os.environ.items() if name not in SERVICE_VARIABLES}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["SQLITE_PATH"] = str(tmp_path / "db.sqlite3")
    # A broken checkout should fail these tests in seconds, not after the production wait.
    env["DB_WAIT_ATTEMPTS"] = "3"
    env["DB_WAIT_SECONDS"] = "1"
    env.update(extra)
    return env


def run_entrypoint(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed script and arguments
        ["sh", str(ENTRYPOINT), *command],  # noqa: S607 - POSIX sh from PATH, as the image runs it
        cwd=REPO_ROOT.parent,  # the script must find manage.py by itself
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def applied_migrations(database: Path) -> set[str]:
    if not database.exists():
        return set()
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "django_migrations" not in tables:
            return set()
        return {row[0] for row in connection.execute("SELECT DISTINCT app FROM django_migrations")}


def test_entrypoint_is_posix_sh_that_stops_on_errors() -> None:
    text = ENTRYPOINT.read_text()

    assert text.startswith("#!/bin/sh\n")
    assert re.search(r"^set -eu$", text, re.MULTILINE)
    assert os.access(ENTRYPOINT, os.X_OK), "the image runs the entrypoint directly, so it must be executable"
    assert re.search(r"^exec \"\$@\"$", text, re.MULTILINE)


def test_entrypoint_migrates_then_execs_the_given_command(tmp_path: Path) -> None:
    env = entrypoint_env(tmp_path, MIGRATE="1")

    result = run_entrypoint(env, "python", "-c", "print('started')")

    assert result.returncode == 0, result.stderr
    assert "Applying" in result.stdout
    assert result.stdout.rstrip().endswith("started")
    assert result.stdout.index("Applying") < result.stdout.index("started")
    assert {"accounts", "rooms", "messaging", "auth"} <= applied_migrations(tmp_path / "db.sqlite3")


def test_entrypoint_replaces_itself_with_the_command(tmp_path: Path) -> None:
    # The server must be PID 1's successor, not a child of sh, so it receives the container's signals.
    process = subprocess.Popen(  # noqa: S603
        ["sh", str(ENTRYPOINT), "python", "-c", "import os; print(os.getpid())"],  # noqa: S607
        env=entrypoint_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 0, stderr
    assert int(stdout.split()[-1]) == process.pid


def test_entrypoint_skips_migrations_unless_asked(tmp_path: Path) -> None:
    result = run_entrypoint(entrypoint_env(tmp_path), "python", "-c", "print('started')")

    assert result.returncode == 0, result.stderr
    assert "Applying" not in result.stdout
    assert applied_migrations(tmp_path / "db.sqlite3") == set()


def test_entrypoint_passes_on_the_command_exit_status(tmp_path: Path) -> None:
    result = run_entrypoint(entrypoint_env(tmp_path), "python", "-c", "raise SystemExit(7)")

    assert result.returncode == 7


def test_entrypoint_waits_for_a_database_that_comes_up_late(tmp_path: Path) -> None:
    # SQLite cannot open a file in a folder that does not exist yet: the database is "down" until it does.
    late = tmp_path / "late"
    env = entrypoint_env(tmp_path, SQLITE_PATH=str(late / "db.sqlite3"), DB_WAIT_SECONDS="1", DB_WAIT_ATTEMPTS="20")
    process = subprocess.Popen(  # noqa: S603
        ["sh", str(ENTRYPOINT), "python", "-c", "print('started')"],  # noqa: S607
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        late.mkdir()
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()

    assert "waiting for the database (attempt 1 of 20)" in first
    assert process.returncode == 0, stderr
    assert "the database is ready" in stderr
    assert stdout.rstrip().endswith("started")


def test_entrypoint_stops_at_once_when_the_system_check_fails(tmp_path: Path) -> None:
    (tmp_path / "broken_settings.py").write_text(
        "from chatproject.settings import *  # noqa: F403\nROOT_URLCONF = 'no_such_urlconf'\n"
    )
    env = entrypoint_env(
        tmp_path, DJANGO_SETTINGS_MODULE="broken_settings", PYTHONPATH=str(tmp_path), MIGRATE="1", DB_WAIT_ATTEMPTS="5"
    )

    result = run_entrypoint(env, "python", "-c", "print('started')")

    assert result.returncode != 0
    assert "no_such_urlconf" in result.stderr
    assert "waiting for the database" not in result.stderr
    assert "started" not in result.stdout
    assert applied_migrations(tmp_path / "db.sqlite3") == set()


def test_entrypoint_gives_up_when_the_database_never_answers(tmp_path: Path) -> None:
    env = entrypoint_env(
        tmp_path,
        DATABASE_URL="postgres://nobody@127.0.0.1:9/nowhere",  # the discard port: nothing listens
        DATABASE_POOL_MIN="1",
        DATABASE_POOL_TIMEOUT="0.5",
        DB_WAIT_ATTEMPTS="2",
        DB_WAIT_SECONDS="0",
        MIGRATE="1",
    )

    result = run_entrypoint(env, "python", "-c", "print('started')")

    assert result.returncode != 0
    assert "started" not in result.stdout
    assert "Applying" not in result.stdout
    assert "waiting for the database (attempt 1 of 2)" in result.stderr
    assert "did not answer after 2 attempts" in result.stderr


# --- The health probe, against a stand-in server --------------------------------------------


@dataclass
class StubServer:
    url: str
    hosts: list[str]
    status: list[int]


@pytest.fixture
def stub_server() -> Iterator[StubServer]:
    hosts: list[str] = []
    status = [200]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hosts.append(self.headers["Host"])
            self.send_response(status[0] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield StubServer(f"http://127.0.0.1:{server.server_address[1]}/healthz", hosts, status)
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(url: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in SERVICE_VARIABLES}
    env.update(HEALTHCHECK_URL=url, HEALTHCHECK_TIMEOUT="5", **extra)
    return subprocess.run(  # noqa: S603 - fixed interpreter and script
        [sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_healthcheck_passes_on_200_and_names_an_allowed_host(stub_server: StubServer) -> None:
    result = run_healthcheck(stub_server.url, ALLOWED_HOSTS=".example.com,other.example.org")

    assert result.returncode == 0, result.stderr
    # With DEBUG off Django answers 400 to a Host header outside ALLOWED_HOSTS.
    assert stub_server.hosts == ["example.com"]


def test_healthcheck_fails_on_an_error_status(stub_server: StubServer) -> None:
    stub_server.status[0] = 503

    assert run_healthcheck(stub_server.url).returncode == 1


def test_healthcheck_fails_when_nothing_listens() -> None:
    assert run_healthcheck("http://127.0.0.1:9/healthz").returncode == 1
