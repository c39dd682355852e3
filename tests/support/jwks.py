"""A local issuer whose JWKS is served over HTTP, as the authorizer fetches it on AWS, with the
endpoint's state in the test's hands (fetches counted, taken down, extra keys published)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devserver.issuer import LocalIssuer
from reminders import auth


class JwksServer:
    """The issuer's JWKS endpoint: counts the fetches, can be taken down and given a new key."""

    def __init__(self) -> None:
        self.fetches = 0
        self.down = False
        self.keys: list[dict[str, Any]] = []


@contextmanager
def served_issuer(keys_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalIssuer, JwksServer]]:
    """The issuer, its JWKS endpoint's state, and the authorizer's settings pointing at both."""
    state = JwksServer()
    holder: dict[str, LocalIssuer] = {}

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches += 1
            if state.down:
                self.send_error(503)
                return
            body = json.dumps({"keys": holder["issuer"].jwks()["keys"] + state.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    holder["issuer"] = LocalIssuer(keys_dir, f"http://127.0.0.1:{server.server_port}/issuer")
    for key, value in holder["issuer"].function_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("JWKS_URL", f"http://127.0.0.1:{server.server_port}/jwks.json")
    auth.reset_cache()
    try:
        yield holder["issuer"], state
    finally:
        server.shutdown()
        auth.reset_cache()
