"""Dependencies (issue 5, item 9): pinned, Daphne with the 2026 fixes, accepted advisories with a reason.

The checks that ask the package index (pip-audit, Django's newest patch
release) are `make audit` (scripts/audit.py): the suite stays offline.
"""

from __future__ import annotations

import re
from pathlib import Path

from packaging.version import Version

PROJECT_DIR = Path(__file__).resolve().parents[3]
REQUIREMENTS = [PROJECT_DIR / "requirements.txt", PROJECT_DIR / "requirements-dev.txt"]
EXCEPTIONS = PROJECT_DIR / "pip-audit-exceptions.txt"
PIN = re.compile(r"^([A-Za-z0-9_.\[\],-]+?)(\[[^\]]*\])?==([0-9][0-9A-Za-z.+-]*)\s*(#.*)?$")


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in REQUIREMENTS:
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", "-r ")):
                continue
            match = PIN.match(line)
            assert match, f"{path.name}: not pinned with ==: {line!r}"
            found[match.group(1).lower()] = match.group(3)
    return found


def accepted_advisories() -> list[str]:
    ids = []
    for raw in EXCEPTIONS.read_text().splitlines():
        line = raw.split("#", 1)
        advisory = line[0].strip()
        if advisory:
            assert len(line) == 2 and line[1].strip(), f"exception {advisory} needs a written reason"
            ids.append(advisory)
    return ids


def test_every_requirement_is_pinned_exactly() -> None:
    assert {"django", "daphne", "channels", "djangorestframework"} <= set(pins())


def test_daphne_has_the_frame_size_and_header_smuggling_fixes() -> None:
    # CVE-2026-44545 (unbounded WebSocket frames) and CVE-2026-44546 (upgrade header smuggling).
    assert Version(pins()["daphne"]) >= Version("4.2.2")
    import daphne

    assert Version(daphne.__version__) >= Version("4.2.2")


def test_installed_versions_match_the_pins() -> None:
    from importlib.metadata import version

    for name in ("django", "daphne", "djangorestframework-simplejwt", "nh3", "markdown-it-py"):
        assert version(name) == pins()[name], name


def test_every_accepted_advisory_has_a_written_reason() -> None:
    assert all(re.fullmatch(r"[A-Za-z0-9-]+", advisory) for advisory in accepted_advisories())
