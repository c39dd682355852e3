"""A local OIDC issuer: an RSA key pair kept on disk, its JWKS, and tokens for any email.

It stands in for Cognito on a laptop, so the same token authorizer runs locally and on AWS.
Hand-written because it is a few lines over joserfc; no maintained package serves a JWKS
and mints tokens without running a whole identity server.

    python -m devserver.issuer token --email ana@example.com    # what `make token` runs

A token names its issuer (``iss``), the runtime's API address. `make token` takes it from, in
order: --issuer-url, LOCAL_ISSUER_URL, DEVSERVER_HOST/DEVSERVER_API_PORT, the address the last
`make run` on this data folder recorded, then http://127.0.0.1:3000.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from joserfc.jwk import RSAKey

DEFAULT_STATE_DIR = Path(".local/issuer")
DEFAULT_ISSUER_URL = "http://127.0.0.1:3000/_local/issuer"
DEFAULT_AUDIENCE = "event-reminders"
# The runtime writes its issuer URL here at start, for `make token` run from another shell.
RECORDED_URL = "issuer-url"


def issuer_url_for(host: str, api_port: int | str) -> str:
    return f"http://{host}:{api_port}/_local/issuer"


def function_env(issuer_url: str, audience: str = DEFAULT_AUDIENCE) -> dict[str, str]:
    """What the token authorizer needs to trust the issuer at ``issuer_url``."""
    issuer_url = issuer_url.rstrip("/")
    return {
        "JWT_ISSUER": issuer_url,
        "JWT_AUDIENCE": audience,
        "JWKS_URL": f"{issuer_url}/.well-known/jwks.json",
        # The template's SSM parameter of more audiences (the Cognito dashboard client's) is AWS's.
        "JWT_EXTRA_AUDIENCES_PARAMETER": "",
    }


def default_state_dir() -> Path:
    data_dir = os.environ.get("DEVSERVER_DATA_DIR")
    return Path(data_dir) / "issuer" if data_dir else DEFAULT_STATE_DIR


def default_issuer_url(state_dir: Path) -> str:
    if os.environ.get("LOCAL_ISSUER_URL"):
        return os.environ["LOCAL_ISSUER_URL"]
    host, port = os.environ.get("DEVSERVER_HOST"), os.environ.get("DEVSERVER_API_PORT")
    if host or port:
        return issuer_url_for(host or "127.0.0.1", port or 3000)
    try:
        return (state_dir / RECORDED_URL).read_text().strip() or DEFAULT_ISSUER_URL
    except OSError:
        return DEFAULT_ISSUER_URL


class LocalIssuer:
    def __init__(self, state_dir: Path, issuer_url: str, audience: str = DEFAULT_AUDIENCE) -> None:
        self.state_dir = Path(state_dir)
        self.issuer_url = issuer_url.rstrip("/")
        self.audience = audience
        self._key = self._load_or_create_key()

    def _load_or_create_key(self) -> RSAKey:
        from joserfc.jwk import RSAKey  # ~0.1 s: the runtime loads it after its workers have started

        path = self.state_dir / "signing-key.json"
        if path.exists():
            return RSAKey.import_key(json.loads(path.read_text()))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"})
        # Written to a temporary name and renamed: a concurrent `make token` never reads half a key.
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(key.as_dict(private=True)))
        tmp.chmod(0o600)
        if path.exists():  # another process won the race; use its key
            tmp.unlink()
            return RSAKey.import_key(json.loads(path.read_text()))
        tmp.rename(path)
        return key

    @property
    def kid(self) -> str:
        return self._key.thumbprint()

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer_url}/.well-known/jwks.json"

    def jwks(self) -> dict[str, Any]:
        public = self._key.as_dict(private=False)
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer_url,
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
            "authorization_endpoint": f"{self.issuer_url}/authorize",
            "token_endpoint": f"{self.issuer_url}/token",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email"],
        }

    def mint(self, email: str, ttl_seconds: int = 3600, **extra_claims: Any) -> str:
        """An ID token for ``email``, shaped like Cognito's (sub, email, aud, token_use)."""
        from joserfc import jwt

        now = int(time.time())
        claims = {
            "iss": self.issuer_url,
            "aud": self.audience,
            "sub": email.lower(),
            "email": email,
            "email_verified": True,
            "token_use": "id",
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            **extra_claims,
        }
        return jwt.encode({"alg": "RS256", "kid": self.kid, "typ": "JWT"}, claims, self._key)

    def function_env(self) -> dict[str, str]:
        """What the token authorizer needs to trust this issuer."""
        return function_env(self.issuer_url, self.audience)

    def record_url(self) -> None:
        """Leave this issuer's URL for `make token` (see the module's docstring)."""
        (self.state_dir / RECORDED_URL).write_text(self.issuer_url + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devserver.issuer", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="print a bearer token for a user")
    token.add_argument("--email", required=True)
    token.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid (default 3600)")
    token.add_argument("--state-dir", type=Path, default=Path(os.environ.get("LOCAL_ISSUER_DIR", default_state_dir())))
    token.add_argument("--issuer-url", default=None, help="the runtime's issuer (see below)")
    parser.epilog = __doc__.split("\n\n", 2)[2]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    args = parser.parse_args(argv)
    if "@" not in args.email:
        print(f"error: {args.email!r} is not an email address", file=sys.stderr)
        return 2
    issuer_url = args.issuer_url or default_issuer_url(args.state_dir)
    print(LocalIssuer(args.state_dir, issuer_url).mint(args.email, ttl_seconds=args.ttl))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
