"""pytest plugin for `make test-localstack`'s part 1: only the integration tests that talk to AWS
(through the aws_endpoint fixture, which AWS_ENDPOINT_URL points at LocalStack). The others use no
AWS service; `make test` runs them on the same code, and twice is only time and load.

    PYTHONPATH=infra/ci pytest -p pytest_aws_only tests/integration
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep = [item for item in items if "aws_endpoint" in getattr(item, "fixturenames", ())]
    dropped = [item for item in items if "aws_endpoint" not in getattr(item, "fixturenames", ())]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep
