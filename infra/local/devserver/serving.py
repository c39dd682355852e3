"""The HTTP plumbing of the API Gateway and Invoke API ports: bounded requests, JSON errors, any method.

http.server gives each connection a thread and waits on a socket as long as the client likes; a
request that declares more body than it sends, or trickles its headers in a byte at a time,
would hold that thread forever. Here a whole request (line, headers, body) must arrive within
``request_timeout`` seconds of its first byte, an idle keep-alive connection is closed after
``IDLE_TIMEOUT``, and at most ``MAX_CONNECTIONS`` are served at once. On the hot path, headers
are read without the email package and each response goes out in one write. Hand-written: the
standard library server has only a per-read socket timeout, and no maintained server library
gives these bounds without replacing the handlers' http.server interface.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devserver import console

IDLE_TIMEOUT = 60.0
MAX_CONNECTIONS = 256
# API Gateway REST's payload limit.
MAX_BODY = 10 * 1024 * 1024


class _Deadlines:
    """One watchdog per server: it shuts the read side of a connection whose request is overdue,
    which wakes the handler's blocked read; the handler then answers 408 and closes."""

    def __init__(self) -> None:
        self._due: dict[BoundedHandler, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="request-deadlines", daemon=True).start()

    def set(self, handler: BoundedHandler, when: float) -> None:
        with self._lock:
            self._due[handler] = when

    def clear(self, handler: BoundedHandler) -> None:
        with self._lock:
            self._due.pop(handler, None)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            now = time.monotonic()
            with self._lock:
                overdue = [h for h, when in self._due.items() if when <= now]
                for handler in overdue:
                    del self._due[handler]
            for handler in overdue:
                handler.cut_off = True
                with contextlib.suppress(OSError):  # the client may have gone already
                    handler.connection.shutdown(socket.SHUT_RD)

    def stop(self) -> None:
        self._stop.set()


class BoundedServer(ThreadingHTTPServer):
    daemon_threads = True
    request_timeout = 30.0

    def __init__(self, address: tuple[str, int], handler: type[BoundedHandler], request_timeout: float) -> None:
        super().__init__(address, handler)
        self.request_timeout = request_timeout
        self.deadlines = _Deadlines()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._answering = 0  # requests read and not yet answered
        self._answered = threading.Condition()

    def answering(self, change: int) -> None:
        with self._answered:
            self._answering += change
            if not self._answering:
                self._answered.notify_all()

    def wait_answered(self, timeout: float) -> bool:
        """Wait until every request taken has had its answer written (stopping: after the workers)."""
        with self._answered:
            return self._answered.wait_for(lambda: self._answering == 0, timeout)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            # Too many connections at once: answer without a thread, and close.
            body = json.dumps({"message": "Too many connections"}).encode()
            head = f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
            try:
                request.settimeout(1.0)
                request.sendall(head.encode() + b"\r\nConnection: close\r\n\r\n" + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A fault of ours while serving one connection: one console line, not a traceback on stderr.
        kind, exc, _ = sys.exc_info()
        console.line("http", f"connection from {client_address[0]} dropped: {kind.__name__ if kind else ''}: {exc}")

    def server_close(self) -> None:
        self.deadlines.stop()
        super().server_close()


class BoundedHandler(BaseHTTPRequestHandler):
    """A handler whose every method, known or not, goes to ``handle_any``; errors are JSON."""

    server: BoundedServer
    raw_requestline: bytes
    protocol_version = "HTTP/1.1"
    # A request line we cannot read still gets a status line and headers (http.server's HTTP/0.9
    # default would answer a bare body).
    default_request_version = "HTTP/1.0"
    disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms delayed-ACK stall
    server_version = "devserver"
    timeout = IDLE_TIMEOUT  # any single read or write; the whole request is bounded by the deadline
    cut_off = False

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_one_request(self) -> None:
        self.cut_off = False
        try:
            assert isinstance(self.rfile, io.BufferedReader)
            waiting = self.rfile.peek(1)  # an idle keep-alive connection waits here, up to IDLE_TIMEOUT
        except OSError:
            waiting = b""
        if not waiting:
            self.close_connection = True
            return
        self.server.deadlines.set(self, time.monotonic() + self.server.request_timeout)
        self.server.answering(+1)
        try:
            super().handle_one_request()
        finally:
            self.server.deadlines.clear(self)
            self.server.answering(-1)

    def parse_request(self) -> bool:
        """The request line and headers. http.server's own runs every header block through the
        email package's FeedParser, a third of the runtime's time on a warm request; this reads the
        same HTTP/1.x into the same HTTPMessage, and refuses what RFC 9112 says to refuse."""
        self.command = ""
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) != 3 or not words[2].startswith("HTTP/"):
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request syntax ({self.requestline!r})")
            return False
        command, path, version = words
        major, _, minor = version[5:].partition(".")
        if not (major.isdigit() and minor.isdigit() and len(major) < 10 and len(minor) < 10):
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request version ({version!r})")
            return False
        if (int(major), int(minor)) >= (2, 0):
            self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"Invalid HTTP version ({version})")
            return False
        self.close_connection = (int(major), int(minor)) < (1, 1)
        self.command, self.request_version = command, version
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        headers = http.client.HTTPMessage()
        name = None
        for _ in range(101):
            line = self.rfile.readline(65537)
            if len(line) > 65536:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            text = line.decode("iso-8859-1").rstrip("\r\n")
            if text[:1] in (" ", "\t"):  # obsolete line folding: a continuation of the last header
                if name is None:
                    self.send_error(HTTPStatus.BAD_REQUEST, "Bad header continuation")
                    return False
                headers.replace_header(name, f"{headers[name]} {text.strip()}")
                continue
            name, colon, value = text.partition(":")
            if not colon or not name or name != name.strip():
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad header line ({text[:100]!r})")
                return False
            headers[name] = value.strip()
        else:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
            return False
        self.headers = headers
        connection = headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        if headers.get("Expect", "").lower() == "100-continue" and self.request_version >= "HTTP/1.1":
            return self.handle_expect_100()
        return True

    _date: tuple[int, str] = (0, "")

    def date_time_string(self, timestamp: float | None = None) -> str:
        # One Date header per second, not one formatdate() per response.
        now = int(time.time()) if timestamp is None else int(timestamp)
        cached = BoundedHandler._date
        if cached[0] != now:
            cached = BoundedHandler._date = (now, super().date_time_string(now))
        return cached[1]

    def __getattr__(self, name: str) -> Callable[[], None]:
        # http.server answers a method without a do_<METHOD> with its own 501 HTML page.
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)

    def handle_any(self) -> None:
        raise NotImplementedError

    def request_body(self) -> bytes | HTTPStatus:
        """The body (Content-Length or chunked), or why there is none to use: 408 when the request
        did not all arrive in time, 413 over MAX_BODY, 400 unreadable. Then the connection closes."""
        try:
            body = _read_body(self)
        except OSError:
            body = HTTPStatus.REQUEST_TIMEOUT  # the client hung up or the read timed out
        self.server.deadlines.clear(self)  # what follows (the invocation) has its own timeout
        if self.cut_off:
            body = HTTPStatus.REQUEST_TIMEOUT
        if isinstance(body, HTTPStatus):
            self.close_connection = True
        return body

    def send_json(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        """The whole response in one write: one segment, so the client wakes once, not for headers
        and again for the body (http.server writes them apart)."""
        phrase = self.responses.get(status, ("",))[0]
        lines = [
            f"{self.protocol_version} {status} {phrase}",
            f"Server: {self.version_string()}",
            f"Date: {self.date_time_string()}",
        ]
        names = set()
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                names.add(name.lower())
                lines.append(f"{_header_text(name)}: {_header_text(value)}")
        if "content-type" not in names and data:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(data)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        self.wfile.write(head if self.command == "HEAD" else head + data)

    def error_body(self, code: int, message: str) -> tuple[list[tuple[str, str]], bytes]:
        return [("Content-Type", "application/json")], json.dumps({"message": message}).encode()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, headers too long...) as JSON, not HTML."""
        self.close_connection = True
        if not message:
            try:
                message = HTTPStatus(code).phrase
            except ValueError:
                message = "Error"
        headers, data = self.error_body(code, message)
        with contextlib.suppress(OSError):
            self.send_json(code, headers, data)


def _header_text(text: str) -> str:
    """A header name or value as it may go on the wire: no line breaks (no response splitting)."""
    return text.replace("\r", " ").replace("\n", " ")


def _read_body(handler: BaseHTTPRequestHandler) -> bytes | HTTPStatus:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks: list[bytes] = []
        size = 0
        while True:
            line = handler.rfile.readline(65537)
            if not line.endswith(b"\n"):
                return HTTPStatus.REQUEST_TIMEOUT
            try:
                length = int(line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                return HTTPStatus.BAD_REQUEST  # a malformed chunk: the rest of the stream cannot be read
            if length == 0:
                handler.rfile.readline(65537)
                return b"".join(chunks)
            size += length
            if size > MAX_BODY:
                return HTTPStatus.REQUEST_ENTITY_TOO_LARGE
            chunk = handler.rfile.read(length)
            if len(chunk) < length:
                return HTTPStatus.REQUEST_TIMEOUT
            chunks.append(chunk)
            handler.rfile.readline(65537)
    declared = handler.headers.get("Content-Length") or "0"
    if not declared.strip().isdigit():
        return HTTPStatus.BAD_REQUEST
    length = int(declared)
    if length > MAX_BODY:
        return HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    body = handler.rfile.read(length) if length else b""
    return body if len(body) == length else HTTPStatus.REQUEST_TIMEOUT
