"""The Lambda layer installs what the package declares: pyproject's runtime dependencies and
layers/common/requirements.txt name the same requirements (boto3 comes with the runtime)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def _names(lines: list[str]) -> dict[str, str]:
    parsed = [Requirement(line) for line in lines]
    return {r.name.lower(): str(r.specifier) for r in parsed}


def test_layer_requirements_match_pyproject() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    layer = [
        line.strip()
        for line in (ROOT / "layers/common/requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    expected = {k: v for k, v in _names(declared).items() if k != "boto3"}
    assert _names(layer) == expected
