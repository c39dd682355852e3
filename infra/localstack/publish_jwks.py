"""Publish `make run`'s local issuer JWKS in LocalStack's S3, where the deployed authorizer fetches it.

The stack deployed into LocalStack (samconfig.toml's [localstack] environment) trusts the same issuer
as `make run` and `infra/ci/test-sam.sh`: issuer URL http://127.0.0.1:3000/_local/issuer, key in
.local/issuer. So `make token` mints tokens for it too, and they outlive restarts. Its functions run
in containers on the compose network, where `http://localstack:4566/local-issuer/.well-known/jwks.json`
(samconfig's JwksUrl) is LocalStack's S3, path style, which needs no signature for a public object.

    AWS_ENDPOINT_URL=http://127.0.0.1:4566 PYTHONPATH=infra/local .venv/bin/python infra/localstack/publish_jwks.py
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import boto3

from devserver.issuer import DEFAULT_ISSUER_URL, DEFAULT_STATE_DIR, LocalIssuer

BUCKET = "local-issuer"
KEY = ".well-known/jwks.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("LOCAL_ISSUER_DIR", DEFAULT_STATE_DIR)))
    parser.add_argument("--issuer-url", default=os.environ.get("LOCAL_ISSUER_URL", DEFAULT_ISSUER_URL))
    args = parser.parse_args()
    issuer = LocalIssuer(args.state_dir, args.issuer_url)
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    )
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(
        Bucket=BUCKET,
        Key=KEY,
        Body=json.dumps(issuer.jwks()).encode(),
        ContentType="application/json",
        ACL="public-read",
    )
    print(f"published the JWKS of {issuer.issuer_url} (key {args.state_dir}) as s3://{BUCKET}/{KEY}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
