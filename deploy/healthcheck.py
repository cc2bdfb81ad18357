"""Container health probe: exit 0 when /healthz answers 200, else 1.

With DEBUG off Django refuses requests whose Host header is not in
ALLOWED_HOSTS, so the probe names the first allowed host instead of
127.0.0.1.
"""

from __future__ import annotations

import os
import sys
import urllib.request

URL = os.environ.get("HEALTHCHECK_URL", "http://127.0.0.1:8000/healthz")
TIMEOUT = float(os.environ.get("HEALTHCHECK_TIMEOUT", "4"))


def probe_host() -> str:
    """Return a Host header value that ALLOWED_HOSTS accepts."""
    first = os.environ.get("ALLOWED_HOSTS", "").split(",")[0].strip()
    if not first or first == "*":
        return "localhost"
    # ".example.com" allows example.com and every subdomain.
    return first.lstrip(".")


def main() -> int:
    request = urllib.request.Request(URL, headers={"Host": probe_host()})  # noqa: S310 - fixed local http URL
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return 0 if response.status == 200 else 1
    except OSError as error:
        print(f"healthcheck: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
