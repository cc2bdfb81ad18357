"""realtime/daphne.py adapts private state of Daphne, Twisted and autobahn: it must say so loudly when that changes."""

from __future__ import annotations

import logging
import re
from importlib import metadata
from typing import Any

import pytest

from realtime import daphne
from realtime.tests.realtime_support import PROJECT_DIR


def test_daphne_twisted_and_autobahn_are_the_versions_the_adaptations_were_written_for() -> None:
    installed = {name: metadata.version(name) for name in daphne.WRITTEN_FOR}

    assert installed == daphne.WRITTEN_FOR, (
        "Daphne, Twisted or autobahn changed: re-read realtime/daphne.py against the new versions "
        "(every private attribute it uses), run the real-server tests, then update WRITTEN_FOR."
    )


def test_the_versions_written_for_are_pinned_in_the_requirements() -> None:
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (PROJECT_DIR / "requirements.txt").read_text(), re.M))
    pinned = {name.lower(): version for name, version in pins.items()}

    assert {name: pinned.get(name) for name in daphne.WRITTEN_FOR} == daphne.WRITTEN_FOR


def test_every_private_attribute_the_adaptations_use_is_there_with_its_shape() -> None:
    assert daphne.private_state_problems() == []


def test_a_missing_private_attribute_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    from twisted.internet import abstract

    monkeypatch.delattr(abstract.FileDescriptor, "dataBuffer")

    assert daphne.private_state_problems() == ["a Twisted connection's dataBuffer is no <class 'bytes'>"]


def test_a_changed_method_signature_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    from daphne.ws_protocol import WebSocketProtocol

    def send_close_frame(self: Any, code: int, reason: bytes | None = None) -> None: ...

    monkeypatch.setattr(WebSocketProtocol, "sendCloseFrame", send_close_frame)

    [problem] = daphne.private_state_problems()
    assert problem.startswith("WebSocketProtocol.sendCloseFrame takes")


def test_install_refuses_to_start_when_the_private_state_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    from daphne.server import Server

    monkeypatch.setattr(daphne, "_installed", False)
    monkeypatch.delattr(Server, "create_application")

    with pytest.raises(RuntimeError, match=r"written for daphne 4\.2\.3.*create_application is gone"):
        daphne.install()


def test_install_warns_on_other_versions_that_pass_every_check(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(daphne, "_installed", False)
    monkeypatch.setattr(daphne, "WRITTEN_FOR", {**daphne.WRITTEN_FOR, "twisted": "0.1"})
    for name in ("_allow_protocol_close_codes", "_fail_with_close_frames", "_close_sockets_on_shutdown"):
        monkeypatch.setattr(daphne, name, lambda: None)  # the real ones are installed already
    monkeypatch.setattr(daphne, "_wait_for_slow_sockets", lambda: None)
    monkeypatch.setattr(daphne, "_expose_protocol", lambda: None)

    with caplog.at_level(logging.WARNING, logger="realtime.daphne"):
        daphne.install()

    assert "was written for" in caplog.text and "every check of the private state it uses passed" in caplog.text


PRIVATE_NAMES = re.compile(
    r"\b(_tempDataLen|dataBuffer|_perMessageCompress|send_queue|payloadHybi|handle_reply|create_application"
    r"|sendCloseFrame|serverClose|failByDrop|addSystemEventTrigger)\b"
)


def test_no_other_module_touches_daphne_twisted_or_autobahn_private_state() -> None:
    touching = sorted(
        str(path.relative_to(PROJECT_DIR))
        for path in PROJECT_DIR.rglob("*.py")
        if not {".venv", "tests", "bench", "node_modules"} & set(path.relative_to(PROJECT_DIR).parts)
        and PRIVATE_NAMES.search(path.read_text(errors="replace"))
    )

    assert touching == ["realtime/daphne.py"]
