"""The suite is hermetic: a test that connects past loopback fails (conftest.py), so none asks an outside service.

Each check connects a socket that is already closed: with the guard or
without it, nothing leaves the machine.
"""

from __future__ import annotations

import socket

import pytest


def closed(family: socket.AddressFamily) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.close()
    return sock


@pytest.mark.parametrize(
    ("family", "address"),
    [
        (socket.AF_INET, ("192.0.2.1", 443)),
        (socket.AF_INET, ("10.0.0.1", 443)),
        (socket.AF_INET6, ("2001:db8::1", 443, 0, 0)),
    ],
)
def test_a_connection_past_loopback_fails_the_test(family: socket.AddressFamily, address: tuple) -> None:
    with pytest.raises(RuntimeError, match="loopback"):
        closed(family).connect(address)
    with pytest.raises(RuntimeError, match="loopback"):
        closed(family).connect_ex(address)


@pytest.mark.parametrize(
    ("family", "address"),
    [(socket.AF_INET, ("127.0.0.1", 9)), (socket.AF_INET6, ("::1", 9, 0, 0)), (socket.AF_INET, ("localhost", 9))],
)
def test_loopback_connections_go_through(family: socket.AddressFamily, address: tuple) -> None:
    # The closed socket refuses by itself: the guard let the call through.
    with pytest.raises(OSError):
        closed(family).connect(address)
