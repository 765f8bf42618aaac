"""template.yaml keeps the promises the code relies on: redelivery, dead letters, least privilege, alarms.

Read as plain data (no network, no AWS): every rule here is one a reviewer would otherwise check by eye.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.cfn_template import TEMPLATE_PATH, load_template

PSEUDO_PARAMETERS = {
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
}
# Services whose actions read or write the data: their statements must name the resource, never "*".
DATA_PLANE_SERVICES = {"dynamodb", "sqs", "secretsmanager", "s3", "sns", "kms"}
# X-Ray has no resource-level permissions: the only actions allowed on Resource "*".
STAR_RESOURCE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}

# What each function may do to the data, and on what (the brief of docs/decisions.md, 2026-11-27).
# A change here is a change of the security model: it must be deliberate and reviewed.
EXPECTED_DATA_PERMISSIONS = {
    "FetchChangesFunction": {
        ("secretsmanager:GetSecretValue", "secret:${SalesforceSecretName}-??????"),
        ("dynamodb:GetItem", "SyncStateTable"),
        ("dynamodb:PutItem", "SyncStateTable"),
        ("dynamodb:UpdateItem", "SyncStateTable"),
        ("sqs:SendMessage", "AccountChangesQueue"),
        ("dynamodb:GetItem", "AccountsTable"),  # drift detection compares the store (issue 12)
        ("dynamodb:Query", "ContactsTable/index/by_account_keys"),
        ("dynamodb:BatchGetItem", "ContactsTable"),
        ("lambda:InvokeFunction", "function:account-sync-${Stage}-fetch-changes"),  # a paused run continues
    },
    "FanOutFunction": {
        ("sqs:ReceiveMessage", "AccountChangesQueue"),
        ("sqs:DeleteMessage", "AccountChangesQueue"),
        ("sqs:GetQueueAttributes", "AccountChangesQueue"),
        ("sqs:ChangeMessageVisibility", "AccountChangesQueue"),  # a throttled message back within seconds
        ("sqs:SendMessage", "AccountChangesQueue"),
        ("sqs:SendMessage", "AccountChangesDeadLetterQueue"),  # a poison message set aside (issue 10, 2.5)
        ("sqs:SendMessage", "ActivityQueue"),
        ("dynamodb:Query", "ContactsTable/index/by_account_keys"),
        ("dynamodb:GetItem", "ContactsTable"),
        ("dynamodb:BatchGetItem", "ContactsTable"),
        ("dynamodb:PutItem", "ContactsTable"),
        ("dynamodb:UpdateItem", "ContactsTable"),
        ("dynamodb:GetItem", "AccountsTable"),
        ("dynamodb:UpdateItem", "AccountsTable"),
        ("dynamodb:GetItem", "SyncStateTable"),
        ("dynamodb:UpdateItem", "SyncStateTable"),
        ("dynamodb:PutItem", "ActivitiesTable"),
        ("dynamodb:BatchWriteItem", "ActivitiesTable"),
    },
    "ActivityLogFunction": {
        ("sqs:ReceiveMessage", "ActivityQueue"),
        ("sqs:DeleteMessage", "ActivityQueue"),
        ("sqs:GetQueueAttributes", "ActivityQueue"),
        ("sqs:ChangeMessageVisibility", "ActivityQueue"),  # a throttled batch back within seconds
        ("dynamodb:PutItem", "ActivitiesTable"),
        ("dynamodb:BatchWriteItem", "ActivitiesTable"),
    },
    # The HTTP API: reads, and local edits queued for the fan-out (it never writes a contact itself).
    "MarketingApiFunction": {
        ("dynamodb:GetItem", "ContactsTable"),
        ("dynamodb:GetItem", "AccountsTable"),
        ("dynamodb:Query", "ActivitiesTable"),
        ("dynamodb:GetItem", "SyncStateTable"),  # Idempotency-Keys (issue 10, section 3)
        ("dynamodb:PutItem", "SyncStateTable"),
        ("sqs:SendMessage", "AccountChangesQueue"),
    },
    # The push path (issue 13): the Salesforce key, the recorded API usage shared with the fetch, its events in,
    # account changes out. It keeps no watermark and takes no lease.
    "PushChangesFunction": {
        ("secretsmanager:GetSecretValue", "secret:${SalesforceSecretName}-??????"),
        ("dynamodb:GetItem", "SyncStateTable"),
        ("dynamodb:UpdateItem", "SyncStateTable"),
        ("sqs:ReceiveMessage", "ChangeEventsQueue"),
        ("sqs:DeleteMessage", "ChangeEventsQueue"),
        ("sqs:GetQueueAttributes", "ChangeEventsQueue"),
        ("sqs:SendMessage", "AccountChangesQueue"),
    },
    # Convert Person: the Salesforce key, the person read and linked (one conditional UpdateItem).
    "ConvertPersonFunction": {
        ("secretsmanager:GetSecretValue", "secret:${SalesforceSecretName}-??????"),
        ("dynamodb:GetItem", "ContactsTable"),
        ("dynamodb:UpdateItem", "ContactsTable"),
    },
}
# Only these functions may ship simple-salesforce (cold start, package size: docs/decisions.md).
SALESFORCE_FUNCTIONS = {"FetchChangesFunction", "ConvertPersonFunction", "PushChangesFunction"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


# --- helpers ---------------------------------------------------------------------------------------


def _resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {lid: res for lid, res in template["Resources"].items() if res["Type"] == resource_type}


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return _resources(template, "AWS::Serverless::Function")


def _function_setting(template: dict[str, Any], function: dict[str, Any], name: str) -> Any:
    """A function's own property, else the one of `Globals` (as SAM merges them for scalars)."""
    return function["Properties"].get(name, template.get("Globals", {}).get("Function", {}).get(name))


def _logical_id(reference: Any) -> str:
    """`!Ref X` or `!GetAtt X.Attr` -> X."""
    if isinstance(reference, dict) and "Ref" in reference:
        return reference["Ref"]
    if isinstance(reference, dict) and "Fn::GetAtt" in reference:
        return reference["Fn::GetAtt"][0]
    raise AssertionError(f"expected a !Ref or !GetAtt, got {reference!r}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _sqs_triggers(template: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(function id, queue id, event source properties) for every SQS trigger, SAM event or plain mapping."""
    triggers = []
    for function_id, function in _functions(template).items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                triggers.append((function_id, _logical_id(event["Properties"]["Queue"]), event["Properties"]))
    queues = _resources(template, "AWS::SQS::Queue")
    for mapping in _resources(template, "AWS::Lambda::EventSourceMapping").values():
        props = mapping["Properties"]
        source = _logical_id(props["EventSourceArn"])
        if source in queues:
            triggers.append((_logical_id(props["FunctionName"]), source, props))
    return triggers


def _dead_letter_queue_of(queue: dict[str, Any]) -> str | None:
    redrive = queue["Properties"].get("RedrivePolicy")
    return _logical_id(redrive["deadLetterTargetArn"]) if redrive else None


def _role_id(function: dict[str, Any]) -> str:
    return _logical_id(function["Properties"]["Role"])


def _statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner id, statement) for every IAM statement the template writes, wherever it is written."""
    for lid, res in template["Resources"].items():
        props = res.get("Properties", {})
        documents = []
        if res["Type"] == "AWS::IAM::Role":
            documents = [policy["PolicyDocument"] for policy in props.get("Policies", [])]
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [props["PolicyDocument"]]
        elif res["Type"] == "AWS::Serverless::Function":
            documents = [policy for policy in _as_list(props.get("Policies", [])) if "Statement" in policy]
        for document in documents:
            for statement in _as_list(document["Statement"]):
                yield lid, statement


def _resource_label(resource: Any) -> str:
    """A readable name for a statement's resource: `ContactsTable`, `ContactsTable/index/by_account`..."""
    if resource == "*":
        return "*"
    if isinstance(resource, dict) and "Fn::GetAtt" in resource and resource["Fn::GetAtt"][1] == "Arn":
        return resource["Fn::GetAtt"][0]
    if isinstance(resource, dict) and "Fn::Sub" in resource and isinstance(resource["Fn::Sub"], str):
        text = re.sub(r"\$\{([A-Za-z0-9]+)\.Arn\}", r"\1", resource["Fn::Sub"])
        return re.sub(r"^arn:\$\{AWS::Partition\}:[a-z0-9-]+:\$\{AWS::Region\}:\$\{AWS::AccountId\}:", "", text)
    return json.dumps(resource, sort_keys=True)


def _referenced_names(value: Any) -> Iterator[str]:
    """Every parameter, resource or pseudo parameter that an intrinsic expression refers to."""
    if isinstance(value, list):
        for item in value:
            yield from _referenced_names(item)
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                yield inner
            elif key == "Fn::GetAtt":
                yield _logical_id(value)
            elif key == "Fn::Sub":
                text, variables = (inner, {}) if isinstance(inner, str) else (inner[0], inner[1])
                for name in re.findall(r"\$\{([^!}][^}]*)\}", text):
                    if name.split(".")[0] not in variables:
                        yield name.split(".")[0]
                yield from _referenced_names(variables)
            else:
                yield from _referenced_names(inner)


def _environment(template: dict[str, Any], function: dict[str, Any]) -> dict[str, Any]:
    merged = dict(template["Globals"]["Function"].get("Environment", {}).get("Variables", {}))
    merged.update(function["Properties"].get("Environment", {}).get("Variables", {}))
    return merged


# --- SQS: redelivery and dead letters --------------------------------------------------------------


def test_every_sqs_trigger_reports_batch_item_failures(template: dict[str, Any]) -> None:
    # given every SQS trigger of a function
    triggers = _sqs_triggers(template)
    assert triggers, "the template has no SQS trigger: the fan-out and the activity log need one each"

    # then one poison message never makes the whole batch retry
    for function_id, queue_id, props in triggers:
        assert props.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], (function_id, queue_id)


def test_every_triggering_queue_dead_letters_after_at_least_five_receives(template: dict[str, Any]) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    for function_id, queue_id, _ in _sqs_triggers(template):
        redrive = queues[queue_id]["Properties"].get("RedrivePolicy")
        assert redrive, f"{queue_id} (consumed by {function_id}) has no dead-letter queue"
        assert _logical_id(redrive["deadLetterTargetArn"]) in queues
        assert int(redrive["maxReceiveCount"]) >= 5, queue_id


def test_the_fan_out_knows_its_queues_dead_letter_queue_and_max_receive_count(template: dict[str, Any]) -> None:
    """The fan-out sets poison messages aside itself, an unknown error at a receive below maxReceiveCount - 1:
    the number it is given must be the queue's, or followers would reach SQS's own redrive (issue 10, 2.5)."""
    queue = _resources(template, "AWS::SQS::Queue")["AccountChangesQueue"]["Properties"]
    environment = _functions(template)["FanOutFunction"]["Properties"]["Environment"]["Variables"]
    assert environment["ACCOUNT_CHANGES_MAX_RECEIVE_COUNT"] == str(queue["RedrivePolicy"]["maxReceiveCount"])
    assert environment["ACCOUNT_CHANGES_DLQ_URL"] == {"Ref": _logical_id(queue["RedrivePolicy"]["deadLetterTargetArn"])}


# How long DynamoDB throttling may last before SQS's own redrive would dead-letter a throttled message (and the
# followers of its FIFO group, received with it): docs/decisions.md, "Throttling is survived, never dead-lettered".
THROTTLE_ENDURED_SECONDS = 3600


def _retry_schedule(template: dict[str, Any]) -> tuple[int, int]:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    return int(variables["RETRY_VISIBILITY_BASE_SECONDS"]), int(variables["RETRY_VISIBILITY_MAX_SECONDS"])


def test_a_throttle_of_an_hour_never_reaches_a_dead_letter_queue(template: dict[str, Any]) -> None:
    """Every receive counts towards maxReceiveCount, a throttled one too. A throttled message comes back after
    base x 2^(n-1) s (at most the cap) from its n-th receive: SQS would move it only after maxReceiveCount failed
    receives, which take at least the sum of those waits (the invocations' own time comes on top)."""
    from account_sync.queue_records import retry_visibility_seconds

    base, cap = _retry_schedule(template)
    assert 0 < base <= cap <= 900, "seconds, not the queues' 540 s: the group waits, and the table recovers"
    queues = _resources(template, "AWS::SQS::Queue")
    for function_id, queue_id, _ in _sqs_triggers(template):
        if function_id == "PushChangesFunction":
            continue  # its messages are nudges: one dead-lettered loses nothing, the poll reads the record anyway
        max_receives = int(queues[queue_id]["Properties"]["RedrivePolicy"]["maxReceiveCount"])
        endured = sum(retry_visibility_seconds(n, base, cap) for n in range(1, max_receives + 1))
        assert endured >= THROTTLE_ENDURED_SECONDS, f"{queue_id} ({function_id}): {endured} s"
        # and at the cap a group is received at most 60 / cap times a minute
        assert 60 / cap <= 1


def test_an_unknown_error_is_set_aside_long_before_sqs_would_redrive_its_followers(template: dict[str, Any]) -> None:
    queue = _resources(template, "AWS::SQS::Queue")["AccountChangesQueue"]["Properties"]
    environment = _functions(template)["FanOutFunction"]["Properties"]["Environment"]["Variables"]
    assert 1 <= int(environment["UNKNOWN_ERROR_RECEIVES"]) < int(queue["RedrivePolicy"]["maxReceiveCount"]) - 1


def test_the_fan_out_trigger_caps_its_concurrency(template: dict[str, Any]) -> None:
    """ScalingConfig.MaximumConcurrency bounds the invocations (without throttling receives, unlike reserved
    concurrency); with the write threads of each, it bounds the contact writes in flight."""
    (props,) = [p for f, _, p in _sqs_triggers(template) if f == "FanOutFunction"]
    assert props["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "FanOutMaximumConcurrency"}
    parameters = template["Parameters"]
    assert 2 <= int(parameters["FanOutMaximumConcurrency"]["Default"]) <= 1000  # Lambda's bounds
    environment = _functions(template)["FanOutFunction"]["Properties"]["Environment"]["Variables"]
    assert environment["FANOUT_WRITE_CONCURRENCY"] == {"Ref": "FanOutWriteConcurrency"}


def test_visibility_timeout_is_at_least_six_times_the_consumer_timeout(template: dict[str, Any]) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    functions = _functions(template)
    for function_id, queue_id, _ in _sqs_triggers(template):
        timeout = int(_function_setting(template, functions[function_id], "Timeout"))
        visibility = int(queues[queue_id]["Properties"]["VisibilityTimeout"])
        assert visibility >= 6 * timeout, f"{queue_id}: {visibility}s < 6 x {function_id} timeout {timeout}s"


def test_every_queue_sets_its_maximum_message_size_and_its_dead_letters_fit(template: dict[str, Any]) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    for queue_id, queue in queues.items():
        assert "MaximumMessageSize" in queue["Properties"], f"{queue_id}: set MaximumMessageSize explicitly"
    for queue_id, queue in queues.items():
        dead_letter_id = _dead_letter_queue_of(queue)
        if dead_letter_id:
            source, dead_letter = queue["Properties"], queues[dead_letter_id]["Properties"]
            assert int(dead_letter["MaximumMessageSize"]) >= int(source["MaximumMessageSize"]), queue_id
            # a dead letter keeps its first enqueue time: the DLQ must keep it at least as long
            assert int(dead_letter["MessageRetentionPeriod"]) >= int(source["MessageRetentionPeriod"]), queue_id


def test_a_fifo_queue_dead_letters_into_a_fifo_queue(template: dict[str, Any]) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    fifo_sources = [lid for lid, q in queues.items() if q["Properties"].get("FifoQueue") and _dead_letter_queue_of(q)]
    assert fifo_sources, "the account-changes queue is FIFO (docs/decisions.md)"
    for queue_id, queue in queues.items():
        dead_letter_id = _dead_letter_queue_of(queue)
        if dead_letter_id:
            source_fifo = bool(queue["Properties"].get("FifoQueue"))
            assert bool(queues[dead_letter_id]["Properties"].get("FifoQueue")) == source_fifo, queue_id


# --- runtime -----------------------------------------------------------------------------------------


def test_functions_and_layer_run_python_3_13_on_arm64(template: dict[str, Any]) -> None:
    for function_id, function in _functions(template).items():
        assert _function_setting(template, function, "Runtime") == "python3.13", function_id
        assert _function_setting(template, function, "Architectures") == ["arm64"], function_id
        assert _function_setting(template, function, "Handler") == "app.lambda_handler", function_id
    for layer_id, layer in _resources(template, "AWS::Serverless::LayerVersion").items():
        assert "python3.13" in layer["Properties"]["CompatibleRuntimes"], layer_id
        assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"], layer_id
        assert layer["Metadata"]["BuildMethod"] == "python3.13", layer_id
        assert layer["Metadata"]["BuildArchitecture"] == "arm64", layer_id


# --- IAM ---------------------------------------------------------------------------------------------


def test_no_statement_allows_every_action(template: dict[str, Any]) -> None:
    statements = list(_statements(template))
    assert statements
    for owner, statement in statements:
        assert "NotAction" not in statement and "NotResource" not in statement, owner
        for action in _as_list(statement["Action"]):
            assert action != "*" and not action.endswith(":*"), f"{owner}: {action}"


def test_data_plane_actions_name_their_resource(template: dict[str, Any]) -> None:
    for owner, statement in _statements(template):
        services = {action.split(":")[0] for action in _as_list(statement["Action"])}
        resources = _as_list(statement["Resource"])
        if services & DATA_PLANE_SERVICES:
            for resource in resources:
                assert "*" not in json.dumps(resource), f"{owner}: {statement.get('Sid')} on {resource}"
        if "*" in resources:
            assert set(_as_list(statement["Action"])) <= STAR_RESOURCE_ACTIONS, f"{owner}: {statement.get('Sid')}"


def test_functions_use_their_own_written_out_role(template: dict[str, Any]) -> None:
    # A role generated by SAM for an SQS-triggered function gets AWSLambdaSQSQueueExecutionRole (receive and
    # delete on every queue of the account): every function names its own role instead, without managed policies.
    roles = _resources(template, "AWS::IAM::Role")
    seen = set()
    for function_id, function in _functions(template).items():
        assert "Policies" not in function["Properties"], function_id
        role_id = _role_id(function)
        assert role_id in roles and role_id not in seen, function_id
        seen.add(role_id)
        assert "ManagedPolicyArns" not in roles[role_id]["Properties"], role_id
        trust = roles[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust == [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]


def test_each_function_may_do_exactly_what_it_needs_to_the_data(template: dict[str, Any]) -> None:
    functions = _functions(template)
    assert set(functions) == set(EXPECTED_DATA_PERMISSIONS)
    for function_id, expected in EXPECTED_DATA_PERMISSIONS.items():
        role_id = _role_id(functions[function_id])
        granted = {
            (action, _resource_label(resource))
            for owner, statement in _statements(template)
            if owner == role_id and statement["Effect"] == "Allow"
            for action in _as_list(statement["Action"])
            if action.split(":")[0] not in ("logs", "xray")
            for resource in _as_list(statement["Resource"])
        }
        assert granted == expected, function_id


def test_functions_write_only_their_own_logs_and_traces(template: dict[str, Any]) -> None:
    log_groups = _resources(template, "AWS::Logs::LogGroup")
    for function_id, function in _functions(template).items():
        log_group_id = _logical_id(function["Properties"]["LoggingConfig"]["LogGroup"])
        assert "RetentionInDays" in log_groups[log_group_id]["Properties"], log_group_id
        grants = {
            (action, _resource_label(resource))
            for owner, statement in _statements(template)
            if owner == _role_id(function)
            for action in _as_list(statement["Action"])
            if action.split(":")[0] in ("logs", "xray", "cloudwatch")
            for resource in _as_list(statement["Resource"])
        }
        assert grants == {
            ("logs:CreateLogStream", log_group_id),
            ("logs:PutLogEvents", log_group_id),
            ("xray:PutTraceSegments", "*"),
            ("xray:PutTelemetryRecords", "*"),
        }, function_id  # no cloudwatch:PutMetricData: Powertools metrics are EMF log lines


def test_a_function_given_a_queue_url_may_send_to_that_queue_or_hand_its_messages_back(
    template: dict[str, Any],
) -> None:
    for function_id, function in _functions(template).items():
        allowed = EXPECTED_DATA_PERMISSIONS[function_id]
        for name, value in _environment(template, function).items():
            if name.endswith("_QUEUE_URL"):
                queue = _logical_id(value)
                assert {("sqs:SendMessage", queue), ("sqs:ChangeMessageVisibility", queue)} & allowed, (
                    f"{function_id}: {name}"
                )


# --- configuration -----------------------------------------------------------------------------------


def test_every_function_environment_variable_resolves(template: dict[str, Any]) -> None:
    known = set(template["Parameters"]) | set(template["Resources"]) | PSEUDO_PARAMETERS
    for function_id, function in _functions(template).items():
        environment = _environment(template, function)
        assert environment, function_id
        for name, value in environment.items():
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"{function_id}: {name}"
            assert value is not None and value != "", f"{function_id}: {name} is empty"
            unknown = set(_referenced_names(value)) - known
            assert not unknown, f"{function_id}: {name} refers to {unknown}"


# --- data at rest ----------------------------------------------------------------------------------


def test_activities_expire_on_expires_at(template: dict[str, Any]) -> None:
    ttl = template["Resources"]["ActivitiesTable"]["Properties"].get("TimeToLiveSpecification")
    assert ttl == {"AttributeName": "expires_at", "Enabled": True}


def test_every_table_and_queue_is_encrypted_and_every_table_recoverable(template: dict[str, Any]) -> None:
    for table_id, table in _resources(template, "AWS::DynamoDB::Table").items():
        props = table["Properties"]
        assert props.get("SSESpecification", {}).get("SSEEnabled") is True, table_id
        recovery = props.get("PointInTimeRecoverySpecification", {})
        assert recovery.get("PointInTimeRecoveryEnabled") is True, table_id
    for queue_id, queue in _resources(template, "AWS::SQS::Queue").items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, queue_id


# --- alarms ------------------------------------------------------------------------------------------


def test_every_dead_letter_queue_raises_an_alarm_on_its_first_message(template: dict[str, Any]) -> None:
    dead_letter_queues = {
        dlq for q in _resources(template, "AWS::SQS::Queue").values() if (dlq := _dead_letter_queue_of(q))
    }
    watched = {
        _logical_id(alarm["Properties"]["Dimensions"][0]["Value"])
        for alarm in _resources(template, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("Namespace") == "AWS/SQS"  # an alarm on metric math has none
        and alarm["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and alarm["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
        and alarm["Properties"]["Threshold"] == 0
    }
    assert dead_letter_queues
    assert dead_letter_queues <= watched


def test_every_function_raises_an_alarm_on_errors(template: dict[str, Any]) -> None:
    watched = {
        _logical_id(alarm["Properties"]["Dimensions"][0]["Value"])
        for alarm in _resources(template, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("Namespace") == "AWS/Lambda" and alarm["Properties"]["MetricName"] == "Errors"
    }
    assert set(_functions(template)) <= watched


def test_alarms_notify_the_topic_only_when_one_is_given(template: dict[str, Any]) -> None:
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert template["Conditions"]["HasAlarmTopic"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}
    notify = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    alarms = _resources(template, "AWS::CloudWatch::Alarm")
    assert alarms
    for alarm_id, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == notify, alarm_id
        assert alarm["Properties"]["OKActions"] == notify, alarm_id
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", alarm_id


# --- the linter --------------------------------------------------------------------------------------


def test_cfn_lint_finds_nothing() -> None:
    # the same rules as `sam validate --lint` (make build); offline, about a second
    api = pytest.importorskip("cfnlint.api")
    matches = api.lint_file(TEMPLATE_PATH, config=api.ManualArgs(regions=["us-east-1"]))
    assert [str(match) for match in matches] == []


# --- the HTTP API ------------------------------------------------------------------------------------


def _http_routes(template: dict[str, Any]) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """(method, path) -> (function id, event properties) for every HttpApi event."""
    routes = {}
    for function_id, function in _functions(template).items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                props = event["Properties"]
                routes[(props["Method"], props["Path"])] = (function_id, props)
    return routes


def test_the_http_api_takes_iam_signed_requests_only(template: dict[str, Any]) -> None:
    (api_id,) = _resources(template, "AWS::Serverless::HttpApi")
    auth = template["Resources"][api_id]["Properties"]["Auth"]
    assert auth == {"EnableIamAuthorizer": True, "DefaultAuthorizer": "AWS_IAM"}
    routes = _http_routes(template)
    assert set(routes) == {
        ("POST", "/contacts/{contact_id}/account-edits"),
        ("GET", "/contacts/{contact_id}/activities"),
        ("GET", "/accounts/{account_id}/suppressed-changes"),
        ("POST", "/people/{person_id}/convert"),
    }
    for route, (function_id, props) in routes.items():
        assert _logical_id(props["ApiId"]) == api_id, route
        assert props["PayloadFormatVersion"] == "2.0", route
        assert "Auth" not in props, f"{route}: no route may opt out of the IAM authorizer"
        timeout = int(_function_setting(template, _functions(template)[function_id], "Timeout"))
        assert timeout * 1000 < int(props.get("TimeoutInMillis", 30000)) <= 30000, route


def test_convert_person_is_its_own_function_and_granted_apart(template: dict[str, Any]) -> None:
    routes = _http_routes(template)
    assert routes[("POST", "/people/{person_id}/convert")][0] == "ConvertPersonFunction"
    assert {function_id for function_id, _ in routes.values()} == {"MarketingApiFunction", "ConvertPersonFunction"}
    grants = {
        owner: sorted(_resource_label(r) for r in _as_list(statement["Resource"]))
        for owner, statement in _statements(template)
        if "execute-api:Invoke" in _as_list(statement["Action"])
    }
    assert set(grants) == {"MarketingApiCallerPolicy", "ConvertPersonCallerPolicy"}
    assert all("convert" not in resource for resource in grants["MarketingApiCallerPolicy"])
    assert [r.split("/")[-3:] for r in grants["ConvertPersonCallerPolicy"]] == [["people", "*", "convert"]]


def test_only_the_functions_that_call_salesforce_ship_simple_salesforce(template: dict[str, Any]) -> None:
    root = TEMPLATE_PATH.parent
    assert "simple-salesforce" not in (root / "layers/account_sync/requirements.txt").read_text()
    for function_id, function in _functions(template).items():
        requirements = root / function["Properties"]["CodeUri"] / "requirements.txt"
        lines = requirements.read_text().splitlines() if requirements.is_file() else []
        ships = any(line.split("#")[0].strip().startswith("simple-salesforce") for line in lines)
        assert ships == (function_id in SALESFORCE_FUNCTIONS), function_id


def _schedule_parameters(expression: Any) -> list[str]:
    """The parameters a ScheduleExpression may take its value from (every branch of an `Fn::If`)."""
    if isinstance(expression, dict) and "Ref" in expression:
        return [expression["Ref"]]
    if isinstance(expression, dict) and "Fn::If" in expression:
        return [name for branch in expression["Fn::If"][1:] for name in _schedule_parameters(branch)]
    return []


def _rate_seconds(expression: str) -> int:
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours)\)", expression)
    assert match, f"{expression!r}: only rate(...) schedules are checked here"
    return int(match[1]) * (60 if match[2].startswith("minute") else 3600)


def test_a_fetch_killed_at_its_timeout_holds_no_lease_when_the_next_schedule_fires(template: dict[str, Any]) -> None:
    """Issue 11, item 1: a run's lease lasts its remaining time + LEASE_MARGIN_SECONDS, so a run Lambda kills at
    its Timeout must have let go of the lease before the next scheduled run, whichever schedule is in force."""
    from account_sync.services.fetch_changes import LEASE_MARGIN_SECONDS

    fetch = _functions(template)["FetchChangesFunction"]
    timeout = int(_function_setting(template, fetch, "Timeout"))
    schedules = [
        event["Properties"]["ScheduleExpression"]
        for event in fetch["Properties"]["Events"].values()
        if event["Type"] in ("Schedule", "ScheduleV2")
    ]
    parameters = [name for expression in schedules for name in _schedule_parameters(expression)]
    assert parameters, "the fetch's schedule comes from parameters"
    for name in parameters:
        period = _rate_seconds(template["Parameters"][name]["Default"])
        assert timeout + LEASE_MARGIN_SECONDS < period, (name, timeout, period)


def test_the_fetch_may_invoke_itself_and_no_other_function(template: dict[str, Any]) -> None:
    # A paused run starts the next at once (docs/decisions.md, "A paused run continues at once"): the policy names
    # the function by the name it is given, the same string, since its Arn would be a circular reference.
    fetch = template["Resources"]["FetchChangesFunction"]["Properties"]
    invokable = [
        resource["Fn::Sub"]
        for owner, statement in _statements(template)
        if "lambda:InvokeFunction" in _as_list(statement["Action"])
        for resource in _as_list(statement["Resource"])
    ]
    prefix = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"
    assert invokable == [prefix + fetch["FunctionName"]["Fn::Sub"]]
    assert fetch["ReservedConcurrentExecutions"] == 1  # a continuation never runs beside the run that started it


def test_the_fetchs_asynchronous_invocations_are_never_retried_and_expire_within_a_schedule_period(
    template: dict[str, Any],
) -> None:
    # A failed run waits for the schedule (as a failed chain link does), and a next run throttled for longer than
    # the schedule's period is dropped: the schedule has started one by then.
    config = template["Resources"]["FetchChangesFunction"]["Properties"]["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 0
    periods = [
        _rate_seconds(template["Parameters"][name]["Default"]) for name in ("SyncSchedule", "PollScheduleWithPush")
    ]
    assert 60 <= config["MaximumEventAgeInSeconds"] <= min(periods)


def test_the_fetch_has_one_full_vcpu(template: dict[str, Any]) -> None:
    # Lambda gives one vCPU at 1,769 MB; the fetch's work is one thread of CPU (its send lanes mostly wait), so
    # less memory slows an initial load down and more buys a second vCPU it cannot use (docs/decisions.md).
    from local_stack.bench.fan_out_costs import LAMBDA_FULL_VCPU_MB

    fetch = _functions(template)["FetchChangesFunction"]
    assert int(_function_setting(template, fetch, "MemorySize")) == LAMBDA_FULL_VCPU_MB
