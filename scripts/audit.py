#!/usr/bin/env python3
"""Audit the pinned requirements against the package index (`make audit`).

- pip-audit: no pinned release (requirements.txt, requirements-dev.txt) has a
  known vulnerability, other than the advisories accepted with a written
  reason in pip-audit-exceptions.txt.
- Django is the newest patch release of its series.

Both ask the package index over the network, so the test suite and CI leave
them out (the offline pin checks stay in chatproject/tests/security/
test_dependencies.py): run this before a release and after changing a pin.
Exit status: 0 clean, 1 something to act on, 2 the index could not be asked.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from packaging.version import Version

PROJECT_DIR = Path(__file__).resolve().parents[1]
REQUIREMENTS = [PROJECT_DIR / "requirements.txt", PROJECT_DIR / "requirements-dev.txt"]
EXCEPTIONS = PROJECT_DIR / "pip-audit-exceptions.txt"
DJANGO_RELEASES = "https://pypi.org/pypi/django/json"


def accepted_advisories() -> list[str]:
    """Return the advisory ids in the exceptions file (each line: `ID  # reason`)."""
    ids = []
    for line in EXCEPTIONS.read_text().splitlines():
        advisory = line.split("#", 1)[0].strip()
        if advisory:
            ids.append(advisory)
    return ids


def pip_audit() -> int:
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        *(argument for path in REQUIREMENTS for argument in ("-r", str(path))),
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--format",
        "json",
        *(f"--ignore-vuln={advisory}" for advisory in accepted_advisories()),
    ]
    result = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True, check=False)  # noqa: S603
    try:
        dependencies = json.loads(result.stdout)["dependencies"]
    except (ValueError, KeyError):
        print(f"pip-audit gave no report (exit {result.returncode}):\n{result.stderr.strip()}", file=sys.stderr)
        return 2
    audited = [dependency for dependency in dependencies if "skip_reason" not in dependency]
    vulnerable = {
        f"{dependency['name']}=={dependency['version']}": [vuln["id"] for vuln in dependency["vulns"]]
        for dependency in audited
        if dependency["vulns"]
    }
    for pin, advisories in vulnerable.items():
        print(f"{pin}: {', '.join(advisories)}")
    if vulnerable:
        print(f"Upgrade, or accept an advisory with a written reason in {EXCEPTIONS.name}.")
        return 1
    if len(audited) < len(dependencies):
        reasons = sorted({dependency["skip_reason"] for dependency in dependencies if "skip_reason" in dependency})
        print(
            f"pip-audit could not audit {len(dependencies) - len(audited)} of {len(dependencies)} pins:",
            file=sys.stderr,
        )
        print("\n".join(f"  {reason}" for reason in reasons[:5]), file=sys.stderr)
        return 2
    print(f"pip-audit: no known vulnerability in {len(audited)} pins")
    return 0


def django_is_newest_patch() -> int:
    pin = re.search(r"^Django==(\S+)", (PROJECT_DIR / "requirements.txt").read_text(), re.MULTILINE)
    if pin is None:
        print("requirements.txt pins no Django release", file=sys.stderr)
        return 1
    pinned = Version(pin[1])
    try:
        with urllib.request.urlopen(DJANGO_RELEASES, timeout=15) as response:
            releases = json.load(response)["releases"]
    except OSError as error:
        print(f"Django's releases could not be read ({error})", file=sys.stderr)
        return 2
    newest = max(
        Version(number)
        for number, files in releases.items()
        if files and not Version(number).is_prerelease and Version(number).release[:2] == pinned.release[:2]
    )
    if pinned < newest:
        print(f"Django {newest} is out: pin it in requirements.txt (pinned: {pinned})")
        return 1
    print(f"Django {pinned} is the newest patch release of its series")
    return 0


def main() -> int:
    results = [pip_audit(), django_is_newest_patch()]
    return max(results)


if __name__ == "__main__":
    sys.exit(main())
