"""A TCP relay to the test database that can go silent: what a connection looks like after a NAT
or a proxy forgot it while the Lambda environment was frozen (no FIN, no RST; bytes vanish)."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Iterator

from sqlalchemy import URL

from reminders.db import normalize_url


class SilenceableRelay:
    """Relays 127.0.0.1:<port> to the database; :meth:`silence` makes every connection open so
    far swallow its bytes from then on, while new connections are relayed as usual."""

    def __init__(self, database_url: str) -> None:
        self.target = normalize_url(database_url)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> URL:
        """The database's URL, through the relay."""
        return self.target.difference_update_query(["unix_sock"]).set(host="127.0.0.1", port=self.port)

    def silence(self) -> None:
        for _, _, silent in self._pairs:
            silent.set()

    def close(self) -> None:
        self._stopped.set()
        self._listener.close()
        for client, upstream, _ in self._pairs:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()

    def _upstream(self) -> socket.socket:
        unix_sock = self.target.query.get("unix_sock")
        if isinstance(unix_sock, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(unix_sock)
            return sock
        return socket.create_connection((self.target.host or "127.0.0.1", self.target.port or 5432))

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = self._upstream()
            silent = threading.Event()
            self._pairs.append((client, upstream, silent))
            threading.Thread(target=self._pump, args=(client, upstream, silent), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket, silent: threading.Event) -> None:
        peers = {client: upstream, upstream: client}
        while not self._stopped.is_set():
            try:
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if not silent.is_set():
                        peers[sock].sendall(data)
            except (OSError, ValueError):
                return


@contextlib.contextmanager
def silenceable_relay(database_url: str) -> Iterator[SilenceableRelay]:
    relay = SilenceableRelay(database_url)
    try:
        yield relay
    finally:
        relay.close()


@contextlib.contextmanager
def resetting_server(read_first: int = 8) -> Iterator[int]:
    """A port whose server accepts, reads ``read_first`` bytes (pg8000's SSL request) and resets the
    connection: what a PostgreSQL that is shutting down does to a client mid-handshake."""
    listener = socket.create_server(("127.0.0.1", 0))
    stopped = threading.Event()

    def serve() -> None:
        while not stopped.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                with contextlib.suppress(OSError):
                    connection.recv(read_first)
                # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stopped.set()
        listener.close()
