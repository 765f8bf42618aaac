"""template.yaml's push path (issue 13): deployed only with EventRelaySourceName, wired bus -> rule -> queue ->
function, debounced, dead-lettered and alarmed like the rest; the poll slower while it is on.

Read as plain data here; tests/integration/test_push_template.py creates the stack on moto with both settings.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.cfn_template import load_template

PUSH_RESOURCES = {
    "PushChangesFunction",
    "PushChangesFunctionRole",
    "PushChangesLogGroup",
    "PushEventBus",
    "ChangeEventsRule",
    "ChangeEventsQueuePolicy",
    "ChangeEventsQueue",
    "ChangeEventsDeadLetterQueue",
    "ChangeEventsDeadLetterAlarm",
    "PushChangesErrorsAlarm",
    "ChangeEventsBacklogAlarm",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _refers_to(value: Any, names: set[str]) -> bool:
    if isinstance(value, list):
        return any(_refers_to(item, names) for item in value)
    if not isinstance(value, dict):
        return False
    for key, argument in value.items():
        if key == "Ref" and argument in names:
            return True
        if (
            key == "Fn::GetAtt"
            and (argument[0] if isinstance(argument, list) else str(argument).split(".")[0]) in names
        ):
            return True
        if _refers_to(argument, names):
            return True
    return False


def test_the_push_path_is_deployed_only_when_a_relay_source_is_named(template: dict[str, Any]) -> None:
    assert template["Conditions"]["PushEnabled"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "EventRelaySourceName"}, ""]}]}
    assert template["Parameters"]["EventRelaySourceName"]["Default"] == ""
    conditional = {lid for lid, res in template["Resources"].items() if res.get("Condition") == "PushEnabled"}
    assert conditional == PUSH_RESOURCES
    # and nothing deployed without the condition refers to a resource that may be absent
    for lid, resource in template["Resources"].items():
        if lid not in PUSH_RESOURCES:
            assert not _refers_to(resource, PUSH_RESOURCES), lid
    for name, output in template["Outputs"].items():
        if _refers_to(output, PUSH_RESOURCES):
            assert output.get("Condition") == "PushEnabled", name


def test_the_relay_source_name_is_checked_as_a_partner_event_source(template: dict[str, Any]) -> None:
    import re

    pattern = re.compile(template["Parameters"]["EventRelaySourceName"]["AllowedPattern"])
    assert pattern.fullmatch("aws.partner/salesforce.com/00D5e000000abcdEAA/0YL5e0000000abcGAA")
    assert pattern.fullmatch("")
    for wrong in ("aws.partner/salesforce.com/00D", "aws.partner/other.com/00D5e000000abcdEAA/0YL5e0000000abcGAA"):
        assert not pattern.fullmatch(wrong)


def test_the_bus_is_the_partner_source_and_the_rule_takes_only_account_and_contact_changes(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    bus = resources["PushEventBus"]["Properties"]
    assert bus == {"Name": {"Ref": "EventRelaySourceName"}, "EventSourceName": {"Ref": "EventRelaySourceName"}}
    rule = resources["ChangeEventsRule"]["Properties"]
    assert rule["EventBusName"] == {"Ref": "PushEventBus"}
    assert rule["EventPattern"] == {
        "source": [{"Ref": "EventRelaySourceName"}],
        "detail-type": ["AccountChangeEvent", "ContactChangeEvent"],
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["ChangeEventsQueue", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["ChangeEventsDeadLetterQueue", "Arn"]}


def test_only_the_rule_may_send_to_the_change_events_queues(template: dict[str, Any]) -> None:
    policy = template["Resources"]["ChangeEventsQueuePolicy"]["Properties"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["ChangeEventsRule", "Arn"]}}}


def test_the_push_function_reads_events_in_debounced_batches_with_bounded_concurrency(
    template: dict[str, Any],
) -> None:
    function = template["Resources"]["PushChangesFunction"]["Properties"]
    event = function["Events"]["ChangeEvents"]["Properties"]
    assert event["Queue"] == {"Fn::GetAtt": ["ChangeEventsQueue", "Arn"]}
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # the debounce, as short as AWS allows for a batch above 10: the window adds to every change's freshness,
    # and a burst fills its batches of 200 within a second (docs/decisions.md)
    assert event["MaximumBatchingWindowInSeconds"] == 1
    assert event["BatchSize"] == 200  # a burst's ids read 200 to a query: a full batch is one query
    assert event["ScalingConfig"]["MaximumConcurrency"] >= 2  # Lambda's minimum; bounds Salesforce readers
    assert "ReservedConcurrentExecutions" not in function  # it would throttle receives into the DLQ
    queue = template["Resources"]["ChangeEventsQueue"]["Properties"]
    assert "FifoQueue" not in queue  # ordering is the store's; a standard queue never blocks behind a failure


def test_the_poll_runs_on_its_slower_schedule_only_while_push_is_on(template: dict[str, Any]) -> None:
    schedule = template["Resources"]["FetchChangesFunction"]["Properties"]["Events"]["Schedule"]["Properties"]
    assert schedule["ScheduleExpression"] == {
        "Fn::If": ["PushEnabled", {"Ref": "PollScheduleWithPush"}, {"Ref": "SyncSchedule"}]
    }
