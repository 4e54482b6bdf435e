"""A TCP proxy in front of MariaDB that drops connections on cue: a real network fault.

Armed with a bytes pattern, it drops the next connection whose client sends a packet holding it,
either before the server sees that packet (``after_reply=False``) or after the server has
answered it, without passing the answer on (``after_reply=True``: the server did the work, the
client never hears so). The client sees "Lost connection" (2013), as after a network cut.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Trap:
    pattern: bytes
    after_reply: bool
    times: int


class DroppingProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; ``arm`` sets the next drops."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.trap: Trap | None = None
        #: How many connections were dropped so far.
        self.dropped = 0
        self.closed = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, pattern: bytes, *, after_reply: bool, times: int = 1) -> None:
        with self.lock:
            self.trap = Trap(pattern, after_reply, times)

    def _take_trap(self, data: bytes) -> Trap | None:
        with self.lock:
            trap = self.trap
            if trap is None or trap.pattern not in data:
                return None
            trap.times -= 1
            if trap.times == 0:
                self.trap = None
            self.dropped += 1
            return trap

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            dropping = threading.Event()  # set: the next answer is swallowed, then both close
            threading.Thread(
                target=self._client_to_server, args=(client, server, dropping), daemon=True
            ).start()
            threading.Thread(
                target=self._server_to_client, args=(server, client, dropping), daemon=True
            ).start()

    def _client_to_server(
        self, client: socket.socket, server: socket.socket, dropping: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                trap = self._take_trap(data)
                if trap is not None and not trap.after_reply:
                    _close(client, server)
                    return
                if trap is not None:
                    dropping.set()
                server.sendall(data)
        _close(client, server)

    def _server_to_client(
        self, server: socket.socket, client: socket.socket, dropping: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                if dropping.is_set():
                    break
                client.sendall(data)
        _close(client, server)

    def close(self) -> None:
        self.closed = True
        _close(self.listener, *self.sockets)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


@contextlib.contextmanager
def dropping_proxy(target: tuple[str, int]) -> Iterator[DroppingProxy]:
    proxy = DroppingProxy(target)
    try:
        yield proxy
    finally:
        proxy.close()
