"""Logger and Metrics, created once and configured only by the POWERTOOLS_* variables of the template.

The X-Ray SDK (Powertools' Tracer) is not here but in `tracing`, imported only by the functions that trace their
requests: the fetch and the HTTP API. The queue consumers (fan-out, activity log) run under Lambda's active
tracing without the SDK (docs/decisions.md, "No X-Ray SDK in the queue consumers").
"""

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
