"""Logger, Tracer and Metrics, created once and configured only by the POWERTOOLS_* variables of the template."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
