"""Dependencies (issue 5, item 9): pinned, audited by pip-audit, Daphne with the 2026 fixes, Django's newest patch.

pip-audit asks PyPI's vulnerability data for each pinned release. Where that
service cannot be reached (a machine without it), the audit is skipped with
the reason; REQUIRE_PIP_AUDIT=1 turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from packaging.version import Version

PROJECT_DIR = Path(__file__).resolve().parents[3]
REQUIREMENTS = [PROJECT_DIR / "requirements.txt", PROJECT_DIR / "requirements-dev.txt"]
EXCEPTIONS = PROJECT_DIR / "pip-audit-exceptions.txt"
PIN = re.compile(r"^([A-Za-z0-9_.\[\],-]+?)(\[[^\]]*\])?==([0-9][0-9A-Za-z.+-]*)\s*(#.*)?$")


def _required() -> bool:
    return os.environ.get("REQUIRE_PIP_AUDIT") == "1"


def _skip_or_fail(reason: str) -> None:
    if _required():
        pytest.fail(f"REQUIRE_PIP_AUDIT=1 but {reason}")
    pytest.skip(reason)


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


def test_django_is_the_newest_patch_release_of_its_series() -> None:
    pinned = Version(pins()["django"])
    try:
        with urllib.request.urlopen("https://pypi.org/pypi/django/json", timeout=15) as response:
            releases = json.load(response)["releases"]
    except OSError as error:
        _skip_or_fail(f"PyPI's JSON API is not reachable ({error})")
        return
    series = [
        Version(number)
        for number, files in releases.items()
        if files and not Version(number).is_prerelease and Version(number).release[:2] == pinned.release[:2]
    ]
    assert pinned == max(series), f"Django {max(series)} is out: pin it (requirements.txt)"


def test_pinned_requirements_have_no_known_vulnerability() -> None:
    pip_audit = shutil.which("pip-audit", path=str(Path(sys.executable).parent)) or shutil.which("pip-audit")
    if pip_audit is None:
        _skip_or_fail("pip-audit is not installed (pip install -r requirements-dev.txt)")
        return
    command = [
        pip_audit,
        *(argument for path in REQUIREMENTS for argument in ("-r", str(path))),
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--format",
        "json",
        *(f"--ignore-vuln={advisory}" for advisory in accepted_advisories()),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=PROJECT_DIR)  # noqa: S603
    try:
        report = json.loads(result.stdout)
    except ValueError:
        _skip_or_fail(f"pip-audit gave no report (exit {result.returncode}): {result.stderr.strip()[-500:]}")
        return
    dependencies = report["dependencies"]
    audited = [dependency for dependency in dependencies if "skip_reason" not in dependency]
    if not audited:
        reasons = {dependency.get("skip_reason", "") for dependency in dependencies}
        _skip_or_fail(
            "PyPI's vulnerability service could not be reached from this machine, so nothing was audited "
            f"({next(iter(reasons), 'no dependencies')[:120]})"
        )
        return
    vulnerable = {
        f"{dependency['name']}=={dependency['version']}": [vuln["id"] for vuln in dependency["vulns"]]
        for dependency in audited
        if dependency["vulns"]
    }
    assert not vulnerable, (
        f"known vulnerabilities: {vulnerable}. Upgrade, or add a written exception to {EXCEPTIONS.name}."
    )
