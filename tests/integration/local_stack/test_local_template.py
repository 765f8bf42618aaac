"""template.yaml → moto: the tables, queues, environment and triggers are exactly what the template says."""

from __future__ import annotations

import json
import os

import pytest
from local_stack.template import QUEUE, TABLE, TemplateError, create_resources, function_environment, resolve_parameters
from local_stack.triggers import schedule_targets, sqs_event_sources

from tests.integration.local_stack.throwaway import template_from


def _by_name(items, key):
    return {item[key]: item for item in items}


class TestTables:
    def test_every_table_is_created_with_the_keys_indexes_billing_ttl_and_encryption_of_the_template(
        self, aws, sam_template, stack_resources
    ):
        # given the tables of template.yaml, created on moto
        dynamodb = aws.client("dynamodb")
        declared_tables = sam_template.logical_ids(TABLE)
        assert set(declared_tables) == set(stack_resources.of_type(TABLE))

        for logical_id in declared_tables:
            declared = sam_template.resources[logical_id]["Properties"]
            name = stack_resources.table_name(logical_id)
            # when we describe the created table
            table = dynamodb.describe_table(TableName=name)["Table"]
            # then it is the declared one
            assert name == declared["TableName"]["Fn::Sub"].replace("${Stage}", "test")
            assert table["KeySchema"] == declared["KeySchema"]
            assert _by_name(table["AttributeDefinitions"], "AttributeName") == _by_name(
                declared["AttributeDefinitions"], "AttributeName"
            )
            assert table["BillingModeSummary"]["BillingMode"] == declared["BillingMode"]
            created_indexes = _by_name(table.get("GlobalSecondaryIndexes", []), "IndexName")
            for index in declared.get("GlobalSecondaryIndexes", []):
                created = created_indexes.pop(index["IndexName"])
                assert created["KeySchema"] == index["KeySchema"]
                assert created["Projection"] == index["Projection"]
            assert created_indexes == {}
            assert table["SSEDescription"]["Status"] == "ENABLED"
            ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if "TimeToLiveSpecification" in declared:
                assert ttl == {
                    "TimeToLiveStatus": "ENABLED",
                    "AttributeName": declared["TimeToLiveSpecification"]["AttributeName"],
                }
            else:
                assert ttl["TimeToLiveStatus"] == "DISABLED"
            backups = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
            assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"

    def test_the_contacts_index_holds_keys_only_so_that_contact_writes_never_write_it(self, aws, stack_resources):
        table = aws.client("dynamodb").describe_table(TableName=stack_resources.table_name("ContactsTable"))["Table"]
        (index,) = table["GlobalSecondaryIndexes"]
        assert index["IndexName"] == "by_account_keys"
        assert [key["AttributeName"] for key in index["KeySchema"]] == ["account_id", "contact_id"]
        assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}


class TestQueues:
    def test_every_queue_has_the_attributes_of_the_template(self, aws, sam_template, stack_resources):
        sqs = aws.client("sqs")
        # the push path's queues exist only with EventRelaySourceName set (tests/unit/test_template_push.py)
        declared_queues = [q for q in sam_template.logical_ids(QUEUE) if "Condition" not in sam_template.resources[q]]
        assert set(declared_queues) == set(stack_resources.of_type(QUEUE))
        for logical_id in declared_queues:
            declared = sam_template.resources[logical_id]["Properties"]
            url = stack_resources.queue_url(logical_id)
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            for name in (
                "MaximumMessageSize",
                "MessageRetentionPeriod",
                "VisibilityTimeout",
                "DeduplicationScope",
                "FifoThroughputLimit",
            ):
                if name in declared:
                    assert attributes[name] == str(declared[name]), (logical_id, name)
            for name in ("FifoQueue", "ContentBasedDeduplication", "SqsManagedSseEnabled"):
                if name in declared:
                    assert attributes[name] == str(declared[name]).lower(), (logical_id, name)
            assert attributes["QueueArn"] == stack_resources.queue_arn(logical_id)

    def test_a_redrive_policy_names_the_created_dead_letter_queue(self, aws, stack_resources):
        # the dead-letter queues come after the queues in template.yaml: they must be created first anyway
        sqs = aws.client("sqs")
        for queue, dead_letter_queue in (
            ("AccountChangesQueue", "AccountChangesDeadLetterQueue"),
            ("ActivityQueue", "ActivityDeadLetterQueue"),
        ):
            attributes = sqs.get_queue_attributes(
                QueueUrl=stack_resources.queue_url(queue), AttributeNames=["RedrivePolicy"]
            )["Attributes"]
            policy = json.loads(attributes["RedrivePolicy"])
            # 35: an hour of throttling on the retry schedule before SQS's redrive (docs/decisions.md)
            assert policy == {
                "deadLetterTargetArn": stack_resources.queue_arn(dead_letter_queue),
                "maxReceiveCount": 35,
            }

    def test_queue_names_and_attributes_resolve_for_getatt(self, stack_resources):
        queue = stack_resources["AccountChangesQueue"]
        assert queue.attributes["QueueName"] == "account-sync-test-account-changes.fifo"
        assert queue.ref == queue.attributes["QueueUrl"]
        assert queue.arn == "arn:aws:sqs:us-east-1:123456789012:account-sync-test-account-changes.fifo"


class TestFunctionEnvironment:
    def test_refs_become_table_names_and_queue_urls_and_lists_are_joined(self, sam_template, stack_resources):
        # when the fan-out's environment is resolved
        environment = function_environment(sam_template, stack_resources, "FanOutFunction")
        # then globals and its own variables are there, resolved against what was created
        assert environment["CONTACTS_TABLE"] == "account-sync-test-contacts"
        assert environment["ACCOUNT_CHANGES_QUEUE_URL"] == stack_resources.queue_url("AccountChangesQueue")
        assert environment["ACTIVITY_QUEUE_URL"] == stack_resources.queue_url("ActivityQueue")
        assert environment["ACTIVITY_THRESHOLD"] == "5000"
        assert environment["SYNCED_ACCOUNT_FIELDS"].split(",")[:2] == ["Name", "Industry"]
        assert environment["STAGE"] == "test"
        assert "SALESFORCE_TOKEN_URL" not in environment  # the fetch's own variable, not the fan-out's

    def test_the_fixture_puts_every_functions_variables_on_os_environ(self, function_env, stack_resources):
        assert os.environ["ACTIVITIES_TABLE"] == stack_resources.table_name("ActivitiesTable")
        assert os.environ["SALESFORCE_API_VERSION"] == function_env["SALESFORCE_API_VERSION"]
        assert os.environ["ACTIVITY_RETENTION_DAYS"] == "400"

    def test_parameter_overrides_reach_the_names_and_the_environment(self, aws, sam_template):
        resources = create_resources(sam_template, aws, stage="qa", parameter_overrides={"ActivityThreshold": 10})
        environment = function_environment(sam_template, resources, "FanOutFunction")
        assert environment["ACTIVITY_THRESHOLD"] == "10"
        assert environment["CONTACTS_TABLE"] == "account-sync-qa-contacts"

    def test_a_function_variable_overrides_the_global_one(self, aws):
        template = template_from(
            """
            Globals:
              Function:
                Environment: {Variables: {LEVEL: global, KEPT: yes-kept}}
            Resources:
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: fn/
                  Handler: app.handler
                  Environment: {Variables: {LEVEL: own, COUNT: 3, FLAG: true}}
            """
        )
        resources = create_resources(template, aws)
        assert function_environment(template, resources, "Fn") == {
            "LEVEL": "own",
            "KEPT": "yes-kept",
            "COUNT": "3",
            "FLAG": "true",
        }

    def test_a_reference_to_a_resource_the_local_stack_does_not_create_is_an_error(self, aws):
        template = template_from(
            """
            Resources:
              Topic: {Type: AWS::SNS::Topic}
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: fn/
                  Handler: app.handler
                  Environment: {Variables: {TOPIC: !Ref Topic}}
            """
        )
        # when the stack is created, then it says which variable refers to what it does not create
        with pytest.raises(TemplateError, match=r"Variables\.TOPIC: Topic \(AWS::SNS::Topic\) is not created"):
            create_resources(template, aws)


class TestIntrinsics:
    def test_short_tags_conditions_and_functions_resolve_as_cloudformation_does(self, aws):
        # given a template using the intrinsic functions in their short form
        template = template_from(
            """
            Parameters:
              Stage: {Type: String, Default: dev}
              Names: {Type: CommaDelimitedList, Default: "a,b,c"}
              Mode: {Type: String, Default: fast, AllowedValues: [fast, slow]}
            Mappings:
              Sizes: {fast: {batch: 10}, slow: {batch: 1}}
            Conditions:
              IsFast: !Equals [!Ref Mode, fast]
              IsProd: !Equals [!Ref Stage, prod]
              FastNotProd: !And [!Condition IsFast, !Not [!Condition IsProd]]
            Resources:
              Queue:
                Type: AWS::SQS::Queue
                Properties:
                  QueueName: !Join ["-", [x, !Ref Stage, !Select [1, !Ref Names]]]
                  DelaySeconds: !If [IsProd, 5, !Ref AWS::NoValue]
              ProdOnly:
                Type: AWS::SQS::Queue
                Condition: IsProd
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: fn/
                  Handler: app.handler
                  Environment:
                    Variables:
                      QUEUE_NAME: !GetAtt Queue.QueueName
                      QUEUE_ARN: !GetAtt [Queue, Arn]
                      LITERAL: !Sub "${!NotResolved}-${AWS::Region}-${Stage}"
                      WITH_VARS: !Sub ["${Prefix}/${Queue.QueueName}", {Prefix: !Select [0, !Split ["/", "p/q"]]}]
                      BATCH: !FindInMap [Sizes, !Ref Mode, batch]
                      FAST: !If [FastNotProd, "yes", "no"]
                      NAMES: !Join [";", !Ref Names]
                      OPTIONAL: !If [IsProd, set, !Ref AWS::NoValue]
                      ACCOUNT: !Ref AWS::AccountId
            """
        )
        # when its resources are created and the function's environment resolved
        resources = create_resources(template, aws, stage="test")
        environment = function_environment(template, resources, "Fn")
        # then
        assert "ProdOnly" not in resources
        assert resources["Queue"].attributes["QueueName"] == "x-test-b"
        assert environment == {
            "QUEUE_NAME": "x-test-b",
            "QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:x-test-b",
            "LITERAL": "${NotResolved}-us-east-1-test",
            "WITH_VARS": "p/x-test-b",
            "BATCH": "10",
            "FAST": "yes",
            "NAMES": "a;b;c",
            "ACCOUNT": "123456789012",
        }

    def test_parameters_are_validated_like_cloudformation(self, sam_template):
        with pytest.raises(TemplateError, match="LogLevel='TRACE' is not one of"):
            resolve_parameters(sam_template, "test", {"LogLevel": "TRACE"})
        with pytest.raises(TemplateError, match="does not match"):
            resolve_parameters(sam_template, "Not_A_Stage")
        with pytest.raises(TemplateError, match="below"):
            resolve_parameters(sam_template, "test", {"ApiBudgetShare": -1})
        with pytest.raises(TemplateError, match="unknown parameters: Nope"):
            resolve_parameters(sam_template, "test", {"Nope": 1})
        assert resolve_parameters(sam_template, "test", {"SyncedAccountFields": ["Name", "Rating"]})[
            "SyncedAccountFields"
        ] == ["Name", "Rating"]


class TestTriggers:
    def test_sqs_event_sources_are_the_functions_sqs_events_with_lambdas_defaults(self, sam_template, stack_resources):
        sources = {source.function_logical_id: source for source in sqs_event_sources(sam_template, stack_resources)}
        assert set(sources) == {"FanOutFunction", "ActivityLogFunction"}

        fan_out = sources["FanOutFunction"]
        assert fan_out.queue_logical_id == "AccountChangesQueue"
        assert fan_out.handler_file == sam_template.base_dir / "functions" / "fan_out" / "app.py"
        assert fan_out.handler_function == "lambda_handler"
        assert (fan_out.batch_size, fan_out.maximum_batching_window_in_seconds) == (10, 0)
        assert fan_out.report_batch_item_failures
        assert fan_out.function_timeout == 90

        activity_log = sources["ActivityLogFunction"]
        assert activity_log.queue_logical_id == "ActivityQueue"
        assert activity_log.maximum_batching_window_in_seconds == 5
        assert activity_log.function_timeout == 60  # Globals.Function.Timeout... or its own

    def test_the_fetch_is_the_scheduled_function(self, sam_template, stack_resources):
        (target,) = schedule_targets(stack_resources)
        assert target.function_logical_id == "FetchChangesFunction"
        assert target.event_type == "ScheduleV2"
        assert target.expression == "rate(5 minutes)"
        assert target.enabled
        assert target.event() == {}

    def test_a_schedule_rule_delivers_the_scheduled_event_envelope(self, aws):
        template = template_from(
            """
            Resources:
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: fn/
                  Handler: app.handler
                  Events:
                    Nightly: {Type: Schedule, Properties: {Schedule: "cron(0 2 * * ? *)"}}
            """
        )
        (target,) = schedule_targets(create_resources(template, aws))
        event = target.event()
        assert (event["source"], event["detail-type"], event["detail"]) == ("aws.events", "Scheduled Event", {})
        assert target.expression == "cron(0 2 * * ? *)"
