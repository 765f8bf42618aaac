"""The model-based suite: moto fixtures from the integration suite (tables and queues from template.yaml) for the
DynamoDB back end; Hypothesis profiles; `make chaos` prints its summary at the end of the session."""

from __future__ import annotations

import os

# As the template's Globals set them (the layer's Powertools objects are created at first import).
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "account-sync")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "AccountSync")

from tests.integration.conftest import aws, function_env, sam_template, stack_resources

__all__ = ["aws", "function_env", "sam_template", "stack_resources"]
