"""Logger, Tracer and Metrics, created once per process and imported where needed.

Service names come from POWERTOOLS_SERVICE_NAME (set per function in template.yaml).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

NAMESPACE = "EventReminders"

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace=NAMESPACE)
