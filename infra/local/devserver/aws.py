"""The AWS endpoint: moto in server mode, plus LocalStack's inspection routes.

moto keeps only one body part of a sent email, so a thin WSGI wrapper records each SES send
(v1 SendEmail/SendRawEmail, v2 outbound-emails) in LocalStack's `/_aws/ses` shape.

It runs in a process of its own (``python -m devserver.aws``, started by the runtime): moto's
import (~0.4 s) overlaps the workers' at start, and serving SES to a notifier run never holds
the runtime's interpreter lock while API requests pass through it.
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import email.utils
import io
import json
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import parse_qs

from devserver import console
from devserver.ses_feedback import Destination, FeedbackPublisher

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class SesMailbox:
    """Sent mail in LocalStack's JSON shape, read back by `GET /_aws/ses`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []

    def record(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.messages.append(message)
        to = ", ".join(message["Destination"].get("ToAddresses") or [])
        console.line("email", f"{message['Source']} -> {to}: {_subject(message)!r} ({message['Id']})")

    def clear(self, message_id: str | None) -> None:
        with self._lock:
            self.messages = [m for m in self.messages if message_id is not None and m["Id"] != message_id]

    def listing(self, message_id: str | None, email: str | None) -> dict[str, Any]:
        with self._lock:
            found = [
                m
                for m in self.messages
                if (message_id is None or m["Id"] == message_id) and (email is None or m["Source"] == email)
            ]
        return {"messages": found}


def _subject(message: dict[str, Any]) -> str | None:
    if "RawData" in message:
        return email.message_from_string(message["RawData"], policy=email.policy.default).get("Subject")
    return message.get("Subject")


def _header_addresses(raw: str) -> list[str]:
    parsed = email.message_from_string(raw, policy=email.policy.default)
    return [address for _, address in email.utils.getaddresses(parsed.get_all("To") or [])]


def _v1_message(form: dict[str, list[str]], message_id: str) -> dict[str, Any]:
    def one(key: str) -> str | None:
        return form.get(key, [None])[0]

    def many(prefix: str) -> list[str]:
        keys = sorted((k for k in form if k.startswith(prefix)), key=lambda k: int(k.rsplit(".", 1)[1]))
        return [form[k][0] for k in keys]

    message: dict[str, Any] = {
        "Id": message_id,
        "Region": "us-east-1",
        "Source": one("Source"),
        "Destination": {
            "ToAddresses": many("Destination.ToAddresses.member."),
            "CcAddresses": many("Destination.CcAddresses.member."),
            "BccAddresses": many("Destination.BccAddresses.member."),
        },
        "Timestamp": datetime.now(UTC).isoformat(),
    }
    if one("Action") == "SendRawEmail":
        # The wire carries it base64-encoded; LocalStack keeps (and serves) the MIME text itself.
        message["RawData"] = base64.b64decode(one("RawMessage.Data") or "").decode("utf-8", "replace")
        message["Destination"]["ToAddresses"] = many("Destinations.member.") or _header_addresses(message["RawData"])
    else:
        message["Subject"] = one("Message.Subject.Data")
        message["Body"] = {"text_part": one("Message.Body.Text.Data"), "html_part": one("Message.Body.Html.Data")}
    return message


def _v2_message(body: dict[str, Any], message_id: str) -> dict[str, Any]:
    simple = (body.get("Content") or {}).get("Simple") or {}
    parts = simple.get("Body") or {}
    return {
        "Id": message_id,
        "Region": "us-east-1",
        "Source": body.get("FromEmailAddress"),
        "Destination": body.get("Destination") or {},
        "Subject": (simple.get("Subject") or {}).get("Data"),
        "Body": {
            "text_part": (parts.get("Text") or {}).get("Data"),
            "html_part": (parts.get("Html") or {}).get("Data"),
        },
        "Timestamp": datetime.now(UTC).isoformat(),
    }


class LocalStackRoutes:
    """WSGI middleware: `/_aws/ses`, `/_localstack/health`, and SES send capture around moto."""

    def __init__(
        self,
        moto_app: Callable[[Environ, StartResponse], Iterable[bytes]],
        mailbox: SesMailbox,
        feedback: FeedbackPublisher | None = None,
    ) -> None:
        self.moto_app = moto_app
        self.mailbox = mailbox
        self.feedback = feedback

    def _json(self, start_response: StartResponse, status: str, payload: Any) -> list[bytes]:
        data = json.dumps(payload).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/_aws/ses" and method in ("GET", "DELETE"):
            query = parse_qs(environ.get("QUERY_STRING", ""))
            if method == "DELETE":
                self.mailbox.clear(query.get("id", [None])[0])
                start_response("204 No Content", [])
                return [b""]
            listing = self.mailbox.listing(query.get("id", [None])[0], query.get("email", [None])[0])
            return self._json(start_response, "200 OK", listing)
        if path.startswith("/_localstack/health"):
            services = {name: "running" for name in ("ses", "sesv2", "secretsmanager", "events", "lambda", "sqs")}
            return self._json(start_response, "200 OK", {"services": services, "edition": "moto", "version": "local"})
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = status
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        chunks = list(self.moto_app(environ, capture))
        if str(captured.get("status", "")).startswith("200") and method == "POST" and raw:
            self._maybe_record(path, raw, b"".join(chunks))
        return chunks

    def _maybe_record(self, path: str, raw: bytes, response: bytes) -> None:
        try:
            if path.startswith("/v2/email/outbound-emails"):
                message_id = json.loads(response).get("MessageId")
                self.mailbox.record(_v2_message(json.loads(raw), message_id))
                return
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
            if form.get("Action", [""])[0] in ("SendEmail", "SendRawEmail"):
                found = re.search(rb"<MessageId>([^<]+)</MessageId>", response)
                if found:
                    message = _v1_message(form, found.group(1).decode())
                    self.mailbox.record(message)
                    if self.feedback is not None:
                        # The mailbox simulator's bounces, complaints and deliveries, as SES publishes them.
                        self.feedback.sent(message, form.get("ConfigurationSetName", [None])[0], _subject(message))
        except (ValueError, UnicodeDecodeError, AttributeError):
            pass  # not an SES send we can read; moto has answered the client already


def moto_wsgi_app(mailbox: SesMailbox, feedback: FeedbackPublisher | None = None) -> LocalStackRoutes:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return LocalStackRoutes(DomainDispatcherApplication(create_backend_app), mailbox, feedback)


def verify_sender(endpoint: str, sender: str) -> None:
    import boto3

    client = boto3.client(
        "ses",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106 - the emulator's dummy credentials
    )
    client.verify_email_identity(EmailAddress=sender)


READY = "aws endpoint ready"


class AwsProcess:
    """The runtime's handle on ``python -m devserver.aws``: its console lines pass through as they are."""

    def __init__(
        self,
        host: str,
        port: int,
        senders: list[str],
        feedback: list[Destination] | None = None,
        lambda_endpoint: str | None = None,
    ) -> None:
        command = [sys.executable, "-m", "devserver.aws", "--host", host, "--port", str(port)]
        if feedback and lambda_endpoint:
            command += ["--feedback", json.dumps([d.as_json() for d in feedback]), "--lambda-endpoint", lambda_endpoint]
        self.endpoint = f"http://{host}:{port}"
        self._ready = threading.Event()
        self.error: str | None = None
        self.process = subprocess.Popen(
            [*command, *(f"--sender={sender}" for sender in senders)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the runtime, which stops it after the workers
        )
        assert self.process.stdout is not None
        threading.Thread(target=self._pump, args=(self.process.stdout,), daemon=True).start()

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in stream:
            text = raw.decode("utf-8", "replace").rstrip()
            if text.endswith(READY):
                self._ready.set()
            elif text.startswith("devserver: error: "):
                self.error = text.removeprefix("devserver: error: ")
            else:
                console.raw(text)
        self._ready.set()

    def wait_ready(self) -> str | None:
        """None once it serves; otherwise why it could not start."""
        self._ready.wait()
        if self.process.poll() is not None:
            return self.error or f"the AWS endpoint exited ({self.process.returncode})"
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devserver.aws", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--sender", action="append", default=[], help="an SES identity to verify at start")
    parser.add_argument("--feedback", help="JSON list of SES event destinations (configuration set -> functions)")
    parser.add_argument("--lambda-endpoint", help="the Lambda Invoke API that feedback events are delivered to")
    parser.add_argument("--feedback-delay", type=float, default=1.5, help="seconds between a send and its feedback")
    args = parser.parse_args(argv)
    publisher = None
    if args.feedback and args.lambda_endpoint:
        destinations = [Destination.from_json(d) for d in json.loads(args.feedback)]
        publisher = FeedbackPublisher(destinations, args.lambda_endpoint, args.feedback_delay)
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    class QuietMotoHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass  # the console shows emails, not every AWS call

    try:
        server = make_server(
            args.host,
            args.port,
            moto_wsgi_app(SesMailbox(), publisher),
            threaded=True,
            request_handler=QuietMotoHandler,
        )
    except (OSError, SystemExit) as exc:
        console.error(exc.strerror or str(exc) if isinstance(exc, OSError) else "Address already in use")
        return 1
    signal.signal(signal.SIGTERM, lambda signum, frame: threading.Thread(target=server.shutdown).start())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runtime decides when this endpoint stops
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for sender in args.sender:
            verify_sender(f"http://{args.host}:{args.port}", sender)
    except Exception as exc:
        console.error(f"verifying the sender identities failed: {type(exc).__name__}: {exc}")
        return 1
    console.line("aws", READY)
    signal.pause()
    return 0


class MailWatcher:
    """With an external endpoint (LocalStack), print each new email by polling its `/_aws/ses`."""

    def __init__(self, endpoint: str, interval: float = 2.0) -> None:
        self._url = endpoint.rstrip("/") + "/_aws/ses"
        self._interval = interval
        self._seen: set[str] = set()
        self._stop = threading.Event()

    def run(self) -> None:
        import urllib.request

        first = True
        while not self._stop.wait(0 if first else self._interval):
            try:
                with urllib.request.urlopen(self._url, timeout=5) as reply:  # noqa: S310 - local endpoint
                    messages = json.load(reply).get("messages", [])
            except (OSError, ValueError):
                continue
            for message in messages:
                if message.get("Id") not in self._seen:
                    self._seen.add(message.get("Id"))
                    if not first:
                        to = ", ".join((message.get("Destination") or {}).get("ToAddresses") or [])
                        console.line("email", f"{message.get('Source')} -> {to}: {_subject(message)!r}")
            first = False

    def stop(self) -> None:
        self._stop.set()


if __name__ == "__main__":
    sys.exit(main())
