"""The chat page's Content-Security-Policy lets it show previews wherever the files are served from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE = "import json; from django.conf import settings; print(json.dumps(settings.SECURE_CSP['img-src']))"


def image_sources(**overrides: str) -> list[str]:
    """The page's img-src, from the settings loaded in a fresh interpreter with these variables."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("S3_")}
    env.update(DJANGO_SETTINGS_MODULE="chatproject.settings", **overrides)
    result = subprocess.run(  # noqa: S603 - fixed interpreter and arguments
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def test_local_files_need_no_other_image_source() -> None:
    assert image_sources() == ["'self'", "data:"]


def test_files_in_a_bucket_may_be_shown_from_its_endpoint() -> None:
    sources = image_sources(S3_BUCKET="chat-files", S3_ENDPOINT_URL="https://minio.example.net:9000/")
    assert sources == ["'self'", "data:", "https://minio.example.net:9000"]


def test_files_in_amazon_s3_may_be_shown_from_its_hosts() -> None:
    assert image_sources(S3_BUCKET="chat-files")[-1] == "https://*.amazonaws.com"
