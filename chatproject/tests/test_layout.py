"""The house's layout holds: dependencies point one way and each concern stays in its room.

- `core` ← `accounts` ← `rooms` ← `messaging`, with `realtime` beside them:
  a module imports only from the layers below it (any import, including
  ones for type checking and ones inside functions).
- `jobs` (the background job queue) sits beside `core`: it imports only
  `core`, and the apps import it to define and enqueue their tasks.
- No app imports `realtime`; apps reach live sockets through `core.publish`.
- `chatproject/` is configuration only; the terminal client imports nothing of the server.
- Every read or write of the event table happens in `rooms/events/`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Which of the project's packages each one may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "jobs": {"core"},
    "accounts": {"core", "jobs"},
    "rooms": {"core", "jobs", "accounts"},
    # Files (uploads, storage, serving) sit below messaging, which attaches them to messages.
    "files": {"core", "jobs", "accounts", "rooms"},
    "messaging": {"core", "jobs", "accounts", "rooms", "files"},
    "notifications": {"core", "jobs", "accounts", "rooms", "messaging"},
    "realtime": {"core", "jobs", "accounts", "rooms", "files", "messaging"},
    "web": {"core", "jobs", "accounts", "rooms", "files", "messaging"},
    "client": set(),
    "chatproject": {"core", "jobs", "accounts", "rooms", "files", "messaging", "notifications", "realtime", "web"},
}
PROJECT_PACKAGES = set(ALLOWED)


def product_modules(package: str) -> Iterator[Path]:
    """Yield the package's modules that ship: not its tests, not its migrations."""
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if "tests" in parts or "migrations" in parts:
            continue
        yield path


def imported_packages(path: Path) -> set[str]:
    """Return the project packages a module imports, wherever in the module the import is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in PROJECT_PACKAGES)
    return found


def test_the_layout_knows_every_package_of_the_project() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert packages == PROJECT_PACKAGES, "add the new package to ALLOWED with the layers it may import"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_only_to_lower_layers(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported - ALLOWED[package] - {package})
        for path in product_modules(package)
        if (imported := imported_packages(path)) - ALLOWED[package] - {package}
    }
    assert wrong == {}, f"{package} may import only {sorted(ALLOWED[package]) or 'nothing of the project'}"


def test_the_import_check_sees_imports_inside_functions_and_type_checking_blocks(tmp_path: Path) -> None:
    module = tmp_path / "sample.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from messaging.models import Message\n"
        "def f():\n    import realtime.delivery\n"
    )
    assert imported_packages(module) == {"messaging", "realtime"}


def test_chatproject_holds_configuration_only() -> None:
    modules = {path.name for path in (ROOT / "chatproject").glob("*.py")}
    assert modules <= {"__init__.py", "settings.py", "urls.py", "asgi.py", "wsgi.py"}


def test_only_the_event_record_reads_or_writes_the_event_tables() -> None:
    outside = []
    for package in sorted(PROJECT_PACKAGES):
        for path in product_modules(package):
            if path.is_relative_to(ROOT / "rooms" / "events"):
                continue
            text = path.read_text()
            if "Event.objects" in text or "EventLogState.objects" in text:
                outside.append(str(path.relative_to(ROOT)))
    assert outside == []


def test_every_package_with_tests_is_collected_and_measured() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    with_tests = {path.parent.parent.name for path in ROOT.glob("*/tests/__init__.py")}
    assert with_tests - set(config["tool"]["pytest"]["ini_options"]["testpaths"]) == set()
    assert with_tests - set(config["tool"]["coverage"]["run"]["source"]) == set()
