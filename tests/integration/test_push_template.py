"""The push path's two settings, created on moto from template.yaml: off by default, every piece with a source."""

from __future__ import annotations

import json

from local_stack.template import QUEUE, create_resources, function_environment
from local_stack.triggers import schedule_targets

SOURCE = "aws.partner/salesforce.com/00D5e000000abcdEAA/0YL5e0000000abcGAA"


def test_without_a_relay_source_nothing_of_the_push_path_exists(aws, sam_template):
    resources = create_resources(sam_template, aws, stage="nopush")
    assert "ChangeEventsQueue" not in resources and "PushChangesFunction" not in resources
    assert set(resources.of_type(QUEUE)) == {
        "AccountChangesQueue",
        "AccountChangesDeadLetterQueue",
        "ActivityQueue",
        "ActivityDeadLetterQueue",
    }


def test_with_a_relay_source_the_queue_its_dead_letters_and_the_function_exist(aws, sam_template):
    resources = create_resources(sam_template, aws, stage="push", parameter_overrides={"EventRelaySourceName": SOURCE})
    sqs = aws.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=resources.queue_url("ChangeEventsQueue"), AttributeNames=["All"])[
        "Attributes"
    ]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": resources.queue_arn("ChangeEventsDeadLetterQueue"),
        "maxReceiveCount": 5,
    }
    environment = function_environment(sam_template, resources, "PushChangesFunction")
    assert environment["ACCOUNT_CHANGES_QUEUE_URL"] == resources.queue_url("AccountChangesQueue")
    assert environment["API_BUDGET_SHARE"] == "0.5"
    assert "SALESFORCE_TOKEN_URL" in environment


def test_the_poll_schedule_follows_the_push_setting(aws, sam_template):
    def expressions(stage, overrides):
        resources = create_resources(sam_template, aws, stage=stage, parameter_overrides=overrides)
        return [target.expression for target in schedule_targets(resources)]

    assert expressions("poll", {}) == ["rate(5 minutes)"]
    assert expressions("push", {"EventRelaySourceName": SOURCE}) == ["rate(15 minutes)"]
