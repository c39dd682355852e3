"""docs/api.md is what `make docs` writes from ApiFunction's OpenAPI document today, and the
README links it (no link to a file outside the repository)."""

from __future__ import annotations

import re

from tests.support.lambdas import ROOT, load_module

generator = load_module(ROOT / "infra" / "docs" / "api_markdown.py")


def test_docs_api_md_is_current() -> None:
    # Given the document ApiFunction serves at /openapi.json, when it is rendered after the intro,
    # then it is the committed file, byte for byte (else: run `make docs` and commit)
    expected = generator.render(generator.document_in_process(), generator.INTRO.read_text(encoding="utf-8"))
    assert (ROOT / "docs" / "api.md").read_text(encoding="utf-8") == expected


def test_every_route_of_the_document_has_its_section() -> None:
    document = generator.document_in_process()
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for path, methods in document["paths"].items():
        for method in methods:
            assert f"### `{method.upper()} {path}`" in text, (method, path)


def test_the_readme_links_the_docs_in_the_repository_and_nothing_outside_it() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/api.md)" in readme
    for target in re.findall(r"\]\(([^)#]+)", readme):
        if not target.startswith(("http://", "https://", "mailto:")):
            assert not target.startswith(".."), target
            assert (ROOT / target).exists(), target
