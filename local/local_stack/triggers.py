"""The functions' SQS and schedule events, as Lambda's event source mappings and EventBridge would run them.

Read from a stack's functions as moto evaluated them (`Resources.functions`); what stays by hand is what no
library gives a function run in-process: Lambda's defaults for an SQS trigger and the event a schedule delivers.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_stack.lambda_runtime import handler_location
from local_stack.resources import DEFAULT_ACCOUNT_ID, REGION, Resources
from local_stack.template import QUEUE, TemplateLike, as_template, code_dir


def _true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _events(resources: Resources, *types: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(function logical id, event name, the event's evaluated properties and Type) for each event of `types`."""
    for lid, props in resources.functions.items():
        for name, event in (props.get("Events") or {}).items():
            if event.get("Type") in types:
                yield lid, name, dict(event.get("Properties") or {}) | {"Type": event["Type"]}


@dataclass(frozen=True)
class EventSource:
    """One `Type: SQS` event of a function: what Lambda's event source mapping would be."""

    function_logical_id: str
    event_name: str
    queue_logical_id: str | None  # None when the queue is not a resource of the stack
    queue_arn: str
    handler: str
    handler_file: Path
    handler_function: str
    batch_size: int
    maximum_batching_window_in_seconds: int
    function_response_types: tuple[str, ...]
    function_timeout: int
    enabled: bool = True

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types


def sqs_event_sources(template: TemplateLike, resources: Resources) -> list[EventSource]:
    """Every SQS trigger of the stack's functions, with Lambda's defaults (BatchSize 10, no batching window)."""
    tpl = as_template(template)
    queues = {queue.arn: lid for lid, queue in resources.of_type(QUEUE).items()}
    sources = []
    for lid, name, props in _events(resources, "SQS"):
        function = resources.functions[lid]
        handler_file, handler_function = handler_location(code_dir(tpl, function, lid), str(function["Handler"]))
        sources.append(
            EventSource(
                function_logical_id=lid,
                event_name=name,
                queue_logical_id=queues.get(str(props["Queue"])),
                queue_arn=str(props["Queue"]),
                handler=str(function["Handler"]),
                handler_file=handler_file,
                handler_function=handler_function,
                batch_size=int(props.get("BatchSize", 10)),
                maximum_batching_window_in_seconds=int(props.get("MaximumBatchingWindowInSeconds", 0)),
                function_response_types=tuple(props.get("FunctionResponseTypes", [])),
                function_timeout=int(function.get("Timeout", 3)),
                enabled=_true(props.get("Enabled", True)),
            )
        )
    return sources


@dataclass(frozen=True)
class ScheduleTarget:
    """A function's `Schedule` (EventBridge rule) or `ScheduleV2` (EventBridge Scheduler) event."""

    function_logical_id: str
    event_name: str
    event_type: str  # "Schedule" or "ScheduleV2"
    expression: str
    enabled: bool
    input: Any = None  # the parsed Input, if the template gives one

    def event(self, *, account: str = DEFAULT_ACCOUNT_ID, region: str = REGION) -> Any:
        """What the function receives when the schedule fires: its Input, else an empty JSON object (ScheduleV2)
        or the "Scheduled Event" envelope (a Schedule rule)."""
        if self.input is not None:
            return self.input
        if self.event_type == "ScheduleV2":
            return {}
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": [f"arn:aws:events:{region}:{account}:rule/{self.function_logical_id}{self.event_name}"],
            "detail": {},
        }


def schedule_targets(resources: Resources) -> list[ScheduleTarget]:
    """Every function of the stack with a Schedule or ScheduleV2 event, its expression and Input evaluated."""
    targets = []
    for lid, name, props in _events(resources, "Schedule", "ScheduleV2"):
        raw_input = props.get("Input")
        targets.append(
            ScheduleTarget(
                function_logical_id=lid,
                event_name=name,
                event_type=props["Type"],
                expression=str(props.get("ScheduleExpression" if props["Type"] == "ScheduleV2" else "Schedule")),
                enabled=_true(props.get("Enabled", True)) and str(props.get("State", "ENABLED")).upper() == "ENABLED",
                input=json.loads(raw_input) if isinstance(raw_input, str) else raw_input,
            )
        )
    return targets
