"""Measure the server's memory while a 20 MiB file goes up and comes back down.

    .venv/bin/python bench/file_transfer.py --out bench/results/files.json
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chat .venv/bin/python bench/file_transfer.py

It starts the real server as bench/loadtest.py does (Daphne serving
`chatproject.asgi` in production mode, on its own database, uploads in a
temporary MEDIA_ROOT), signs one user into one room, warms the upload and
download paths with a small file, then:

1. uploads `--size-mib` MiB of random bytes (so no image decoding: the
   bytes are what is measured) as multipart, streamed from disk in 64 KiB
   writes with a Content-Length, to `POST /api/v1/rooms/{id}/uploads/`;
2. downloads it from `GET /api/v1/files/{id}/`, reading 64 KiB at a time,
   and checks its SHA-256;
3. repeats both `--rounds` times.

Memory is read from /proc/<daphne pid>/status: VmRSS (resident now) and
VmHWM (the highest resident size since the process started). The figure
that matters is the growth of VmHWM from just after the warm-up to the end:
how far above its resting size the server had to go to carry the file.
JSON goes to `--out`. Linux only (it reads /proc).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))
sys.path.insert(1, str(PROJECT_DIR / "bench"))

from loadtest import HOST, OurServer, machine  # noqa: E402

CHUNK = 64 * 1024
BOUNDARY = "benchboundary" + secrets.token_hex(8)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def upload(port: int, token: str, room: int, path: Path, name: str) -> tuple[int, dict[str, Any], float]:
    """Send the file as multipart, streamed from disk; return the status, the answer and the seconds taken."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    size = path.stat().st_size
    started = time.perf_counter()
    connection = http.client.HTTPConnection(HOST, port, timeout=300)
    connection.putrequest("POST", f"/api/v1/rooms/{room}/uploads/")
    connection.putheader("Authorization", f"Bearer {token}")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    connection.putheader("Content-Length", str(len(head) + size + len(tail)))
    connection.endheaders()
    connection.send(head)
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            connection.send(chunk)
    connection.send(tail)
    response = connection.getresponse()
    body = json.loads(response.read() or b"{}")
    connection.close()
    return response.status, body, time.perf_counter() - started


def download(port: int, token: str, url: str) -> tuple[int, str, int, float]:
    """Fetch a file 64 KiB at a time; return the status, its SHA-256, its size and the seconds taken."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection(HOST, port, timeout=300)
    connection.request("GET", url, headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    digest = hashlib.sha256()
    size = 0
    while chunk := response.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    connection.close()
    return response.status, digest.hexdigest(), size, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db-name", default="chatbench_files")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-files-"))
    server = OurServer(args, secrets.token_hex(4), workdir)
    server.env.update(MEDIA_ROOT=str(workdir / "media"), UPLOAD_MAX_BYTES=str((args.size_mib + 5) * 2**20))
    big = workdir / "big.bin"
    with big.open("wb") as out:
        for _ in range(args.size_mib * 16):
            out.write(os.urandom(CHUNK))
    expected = hashlib.sha256(big.read_bytes()).hexdigest()
    small = workdir / "small.bin"
    small.write_bytes(os.urandom(100 * 1024))
    server.prepare_database()
    seeded = server.seed(1, [[0]])
    token, room = seeded.tokens[0], seeded.rooms[0]
    server.start()
    rounds: list[dict[str, Any]] = []
    try:
        # Warm every code path once, so what follows measures the file and not first imports.
        for _ in range(2):
            status, answer, _ = upload(server.port, token, room, small, "small.bin")
            assert status == 201, answer
            download(server.port, token, answer["url"])
        resting = memory_kib(server.pid)
        print(f"resting: {resting}")
        for number in range(args.rounds):
            status, answer, up_seconds = upload(server.port, token, room, big, "big.bin")
            assert status == 201, answer
            after_upload = memory_kib(server.pid)
            status, digest, size, down_seconds = download(server.port, token, answer["url"])
            assert status == 200 and digest == expected and size == big.stat().st_size, (status, size)
            after_download = memory_kib(server.pid)
            row = {
                "round": number + 1,
                "upload_seconds": round(up_seconds, 3),
                "download_seconds": round(down_seconds, 3),
                "after_upload_kib": after_upload,
                "after_download_kib": after_download,
            }
            rounds.append(row)
            print(json.dumps(row))
    finally:
        server.stop()
    peak_growth_mib = (rounds[-1]["after_download_kib"]["VmHWM"] - resting["VmHWM"]) / 1024
    rss_growth_mib = (rounds[-1]["after_download_kib"]["VmRSS"] - resting["VmRSS"]) / 1024
    result = {
        "size_mib": args.size_mib,
        "database": server.database,
        "machine": machine(),
        "resting_kib": resting,
        "rounds": rounds,
        "peak_growth_mib": round(peak_growth_mib, 1),
        "rss_growth_mib": round(rss_growth_mib, 1),
    }
    print(f"peak (VmHWM) growth: {peak_growth_mib:.1f} MiB; resident growth at the end: {rss_growth_mib:.1f} MiB")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
