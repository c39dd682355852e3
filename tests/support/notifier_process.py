"""Run NotifierFunction's handler once in this process, as a Lambda invocation would, and print its
JSON result as the last line of stdout. The environment configures it (DATABASE_URL,
AWS_ENDPOINT_URL, LEASE_SECONDS, ...); the function's timeout is the first argument, in seconds.

    python -m tests.support.notifier_process 30
"""

from __future__ import annotations

import json
import sys
import time

from tests.support.lambdas import ROOT, FakeLambdaContext, load_function

SCHEDULED_EVENT = ROOT / "tests" / "events" / "eventbridge_scheduled.json"


class _Context(FakeLambdaContext):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> None:
    handler = load_function("notifier").lambda_handler
    # Lambda's clock starts with the invocation, after the imports of the cold start.
    result = handler(json.loads(SCHEDULED_EVENT.read_text()), _Context(float(sys.argv[1])))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
