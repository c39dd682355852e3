"""docs/api.md from the API's own OpenAPI document (`make docs`), after docs/api.intro.md.

    python infra/docs/api_markdown.py                  # ApiFunction's /openapi.json, in process
    python infra/docs/api_markdown.py --url http://127.0.0.1:3000/openapi.json   # a running API's
    python infra/docs/api_markdown.py --check          # exit 1 when docs/api.md is not current

In process, the document is what ApiFunction answers to `GET /openapi.json` (no database is
touched); tests/unit/test_api_docs.py checks the committed file against it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import urllib.request
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
INTRO = ROOT / "docs" / "api.intro.md"
OUTPUT = ROOT / "docs" / "api.md"
METHOD_ORDER = ("get", "post", "put", "patch", "delete")


def document_in_process() -> dict[str, Any]:
    """ApiFunction's answer to GET /openapi.json, as API Gateway's proxy event reaches it."""
    os.environ.setdefault("DATABASE_URL", "postgresql://docs@127.0.0.1/unused")  # settings want one; never used
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "docs")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    spec = importlib.util.spec_from_file_location("_docs_api_app", ROOT / "functions" / "api" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    event = {
        "resource": "/openapi.json",
        "path": "/openapi.json",
        "httpMethod": "GET",
        "headers": {"Host": "localhost"},
        "multiValueHeaders": {"Host": ["localhost"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "body": None,
        "isBase64Encoded": False,
        "requestContext": {"stage": "$default", "path": "/openapi.json", "requestId": "docs", "httpMethod": "GET"},
    }

    class Context:
        function_name = "ApiFunction"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ApiFunction"
        aws_request_id = "docs"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Powertools: "no application metrics to publish"
        reply = module.lambda_handler(event, Context())
    document: dict[str, Any] = json.loads(reply["body"])
    return document


def document_from(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as reply:  # noqa: S310 - a URL the developer gave
        document: dict[str, Any] = json.load(reply)
    return document


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_of(schema: dict[str, Any]) -> str:
    """A JSON schema in a few words: `string (date-time)`, `array of Reminder`, `Event or null`."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema or "oneOf" in schema:
        return " or ".join(type_of(s) for s in schema.get("anyOf") or schema["oneOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {type_of(schema.get('items') or {})}"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    return str(kind)


def constraints(schema: dict[str, Any]) -> str:
    parts = []
    for option in [schema, *(schema.get("anyOf") or [])]:
        for key, word in (
            ("minLength", "at least {} characters"),
            ("maxLength", "at most {} characters"),
            ("minimum", "≥ {}"),
            ("maximum", "≤ {}"),
            ("minItems", "at least {} items"),
            ("maxItems", "at most {} items"),
        ):
            if key in option:
                value = option[key]
                parts.append(word.format(int(value) if isinstance(value, float) and value.is_integer() else value))
    if "default" in schema:
        parts.append(f"default `{json.dumps(schema['default'])}`")
    return "; ".join(parts)


def description_of(schema: dict[str, Any]) -> str:
    found = schema.get("description") or next(
        (o["description"] for o in schema.get("anyOf") or [] if "description" in o), ""
    )
    return str(found)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|").replace("<", "&lt;")


def _body_schema(content: dict[str, Any]) -> str:
    return "; ".join(f"`{media}`: {type_of(spec.get('schema') or {})}" for media, spec in content.items())


def operation_markdown(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", "", operation.get("summary", "")]
    if operation.get("description"):
        lines += ["", operation["description"]]
    needs_token = bool(operation.get("security"))
    lines += ["", "Authentication: " + ("bearer token (`Authorization: Bearer <token>`)." if needs_token else "none.")]
    parameters = operation.get("parameters") or []
    if parameters:
        lines += ["", "| parameter | in | type | required | notes |", "|---|---|---|---|---|"]
        for p in parameters:
            schema = p.get("schema") or {}
            notes = "; ".join(
                x for x in (p.get("description") or schema.get("description", ""), constraints(schema)) if x
            )
            required = "yes" if p.get("required") else "no"
            lines.append(f"| `{p['name']}` | {p['in']} | {type_of(schema)} | {required} | {_cell(notes)} |")
    body = operation.get("requestBody")
    if body:
        lines += [
            "",
            f"Request body ({'required' if body.get('required') else 'optional'}): {_body_schema(body['content'])}",
        ]
    lines += ["", "| status | meaning | body |", "|---|---|---|"]
    for status, response in sorted((operation.get("responses") or {}).items()):
        content = _body_schema(response.get("content") or {}) or "none"
        lines.append(f"| {status} | {_cell(response.get('description', ''))} | {content} |")
    return [*lines, ""]


def schema_markdown(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [" ".join(schema["description"].replace("``", "`").split()), ""]
    properties = schema.get("properties") or {}
    if not properties:
        return [*lines, f"Type: {type_of(schema)}.", ""]
    required = set(schema.get("required") or [])
    lines += ["| field | type | required | notes |", "|---|---|---|---|"]
    for field, spec in properties.items():
        notes = "; ".join(x for x in (description_of(spec), constraints(spec)) if x)
        lines.append(f"| `{field}` | {type_of(spec)} | {'yes' if field in required else 'no'} | {_cell(notes)} |")
    if schema.get("additionalProperties") is False:
        lines += ["", "Other fields are refused (422)."]
    return [*lines, ""]


def render(document: dict[str, Any], intro: str) -> str:
    info = document.get("info") or {}
    lines = [intro.rstrip(), "", "## Reference", ""]
    lines += [
        f"Generated by `make docs` from the API's OpenAPI document ({info.get('title')}, version "
        f"{info.get('version')}); do not edit below this line by hand. The running API serves the "
        "same document at `/openapi.json` and Swagger UI at `/swagger`.",
        "",
        "## Routes",
        "",
    ]
    for path in sorted(document.get("paths") or {}):
        methods = document["paths"][path]
        for method in sorted(methods, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else 99):
            lines += operation_markdown(path, method, methods[method])
    lines += ["## Schemas", ""]
    for name, schema in sorted(((document.get("components") or {}).get("schemas") or {}).items()):
        lines += schema_markdown(name, schema)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running API's /openapi.json instead of ApiFunction in process")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md differs from what would be written")
    args = parser.parse_args(argv)
    document = document_from(args.url) if args.url else document_in_process()
    text = render(document, INTRO.read_text(encoding="utf-8"))
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print("docs/api.md is not current: run `make docs` and commit it", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
