"""`account-sync`, the operator's command line, on moto: dead letters listed without values and redriven once,
the status view, and a deployed stack found by its CloudFormation outputs."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from account_sync_cli import __main__ as cli
from account_sync_cli.__main__ import Progress, main
from account_sync_cli.dead_letters import DeadLetters
from account_sync_cli.deployment import Deployment, DeploymentNotFound
from botocore.stub import Stubber
from local_stack.template import Resources

pytestmark = pytest.mark.integration

SECRET_VALUE = "Confidential Industry Value"


def _account_change(account_id: str, industry: str = SECRET_VALUE) -> str:
    return json.dumps(
        {
            "type": "account_change",
            "schema": 1,
            "version": {
                "account_id": account_id,
                "system_modstamp": "2026-12-04T10:00:00.000Z",
                "is_deleted": False,
                "fields": {"Name": "Acme", "Industry": industry},
            },
        }
    )


@pytest.fixture
def deployment(stack_resources: Resources, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    """The test's moto resources as a deployment; `account-sync --stack test` resolves to it."""
    found = Deployment(name="stack test", refs=stack_resources.refs(), region="us-east-1")
    monkeypatch.setattr(cli, "deployment_for", lambda args: found)
    return found


def _run(*args: str) -> tuple[int, Any]:
    out = io.StringIO()
    status = main(["--stack", "test", "--json", *args], stdout=out)
    return status, json.loads(out.getvalue())


def _dead_letter(sqs: Any, deployment: Deployment, account_id: str, reason: str | None = None) -> str:
    attributes = {"reason": {"DataType": "String", "StringValue": reason}} if reason else {}
    return str(
        sqs.send_message(
            QueueUrl=deployment.ref("AccountChangesDeadLetterQueue"),
            MessageBody=_account_change(account_id),
            MessageGroupId=account_id,
            MessageDeduplicationId=f"dead-{account_id}",
            MessageAttributes=attributes,
        )["MessageId"]
    )


def _all_bodies(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=60
    ).get("Messages", []):
        messages += batch
    return messages


def test_dlq_list_shows_ids_kinds_groups_reasons_and_receive_counts_never_values(deployment, aws):
    # given two dead letters of the account-changes queue, one with the reason the consumer gave it
    sqs = aws.client("sqs")
    first = _dead_letter(sqs, deployment, "001000000000000001", reason="malformed: version.fields.Industry")
    second = _dead_letter(sqs, deployment, "001000000000000002")
    # when they are listed
    status, listed = _run("dlq", "list", "--queue", "changes")
    # then each is shown by id, kind, group and reason, and no field value appears anywhere
    assert status == 1  # something to look at
    letters = {letter["message_id"]: letter for letter in listed["dead_letters"]["changes"]}
    assert set(letters) == {first, second}
    assert letters[first]["kind"] == "account_change"
    assert letters[first]["group"] == "001000000000000001"
    assert letters[first]["reason"] == "malformed: version.fields.Industry"
    assert letters[second]["reason"] is None
    assert letters[first]["receive_count"] >= 1
    assert SECRET_VALUE not in json.dumps(listed)
    # and listing took nothing away: both are still there, visible at once
    assert len(_all_bodies(sqs, deployment.ref("AccountChangesDeadLetterQueue"))) == 2


def test_dlq_list_of_empty_queues_says_so_and_exits_0(deployment):
    status, listed = _run("dlq", "list")
    assert status == 0
    assert listed == {"dead_letters": {"activities": [], "changes": []}, "total": 0}


def test_dlq_redrive_dry_run_moves_nothing(deployment, aws):
    sqs = aws.client("sqs")
    message_id = _dead_letter(sqs, deployment, "001000000000000001")
    status, summary = _run("dlq", "redrive", "--queue", "changes", "--dry-run")
    assert status == 0
    assert summary["would_move_ids"] == [message_id] and summary["moved"] == 0
    assert _all_bodies(sqs, deployment.ref("AccountChangesQueue")) == []
    assert len(_all_bodies(sqs, deployment.ref("AccountChangesDeadLetterQueue"))) == 1


def test_dlq_redrive_of_a_selection_moves_only_it_back_to_its_group(deployment, aws):
    # given three dead letters
    sqs = aws.client("sqs")
    ids = [_dead_letter(sqs, deployment, f"00100000000000000{n}") for n in (1, 2, 3)]
    # when the second one, and an id that is not there, are redriven
    status, summary = _run("dlq", "redrive", "--queue", "changes", "--id", ids[1], "--id", "no-such-message")
    # then it alone is back on the account-changes queue, in its account's group, with its body unchanged
    assert status == 1 and summary["not_found"] == ["no-such-message"]
    assert summary["moved_ids"] == [ids[1]]
    back = _all_bodies(sqs, deployment.ref("AccountChangesQueue"))
    assert [m["Attributes"]["MessageGroupId"] for m in back] == ["001000000000000002"]
    assert back[0]["Body"] == _account_change("001000000000000002")
    # and the other two are still dead letters, visible
    left = _all_bodies(sqs, deployment.ref("AccountChangesDeadLetterQueue"))
    assert sorted(m["MessageId"] for m in left) == sorted([ids[0], ids[2]])


def test_dlq_redrive_all_moves_each_once_and_a_second_run_moves_nothing(deployment, aws):
    sqs = aws.client("sqs")
    for n in range(1, 13):  # more than one receive batch
        _dead_letter(sqs, deployment, f"0010000000000000{n:02d}")
    status, summary = _run("dlq", "redrive", "--queue", "changes")
    assert status == 0 and summary["moved"] == 12
    assert _run("dlq", "redrive", "--queue", "changes")[1]["moved"] == 0
    back = _all_bodies(sqs, deployment.ref("AccountChangesQueue"))
    assert len(back) == 12
    assert len({m["Attributes"]["MessageGroupId"] for m in back}) == 12


def test_redrive_of_a_standard_queue_on_aws_uses_sqs_move_task(stack_resources):
    # given a deployed stack (SQS serves StartMessageMoveTask there; moto does not: stubbed)
    deployment = Deployment(name="stack prod", refs=stack_resources.refs(), region="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    dead_letter_url = deployment.ref("ActivityDeadLetterQueue")
    arn = "arn:aws:sqs:us-east-1:123456789012:activities-dlq"
    with Stubber(sqs) as stub:
        stub.add_response(
            "get_queue_attributes",
            {"Attributes": {"QueueArn": arn}},
            {"QueueUrl": dead_letter_url, "AttributeNames": ["QueueArn"]},
        )
        stub.add_response("start_message_move_task", {"TaskHandle": "task-1"}, {"SourceArn": arn})
        # when every activity dead letter is redriven
        summary = DeadLetters(deployment, sqs).redrive("activities")
        # then SQS was asked to move them back to their source, and nothing was moved by hand
        stub.assert_no_pending_responses()
    assert summary.move_task == "task-1" and summary.moved == []


def test_status_counts_queue_depths_and_dead_letters(deployment, aws):
    sqs = aws.client("sqs")
    _dead_letter(sqs, deployment, "001000000000000001")
    sqs.send_message(QueueUrl=deployment.ref("ActivityQueue"), MessageBody="{}")
    status, view = _run("status")
    assert status == 0
    assert view["queues"]["AccountChangesDeadLetterQueue"]["visible"] == 1
    assert view["queues"]["ActivityQueue"]["visible"] == 1
    assert view["dead_letters"] == 1
    assert view["sync_state"] == {}


def test_a_deployed_stack_is_found_by_its_outputs(aws):
    # given a stack whose outputs name the resources (a small template: moto creates it)
    template = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "changes.fifo", "FifoQueue": True}}
        },
        "Outputs": {
            "AccountChangesQueueUrl": {"Value": {"Ref": "Queue"}},
            "ContactsTableName": {"Value": "account-sync-prod-contacts"},
        },
    }
    aws.client("cloudformation").create_stack(StackName="account-sync-prod", TemplateBody=json.dumps(template))
    # when it is looked up by name
    deployment = Deployment.from_stack("account-sync-prod", region="us-east-1")
    # then its resources are known by logical id, and a missing one is a clear error
    assert deployment.ref("AccountChangesQueue").endswith("/changes.fifo")
    assert deployment.ref("ContactsTable") == "account-sync-prod-contacts"
    with pytest.raises(DeploymentNotFound, match="has no AccountsTable"):
        deployment.ref("AccountsTable")
    with pytest.raises(DeploymentNotFound, match="cannot read stack no-such-stack"):
        Deployment.from_stack("no-such-stack", region="us-east-1")


def test_progress_is_plain_lines_in_a_log_and_a_bar_on_a_terminal():
    log = io.StringIO()
    progress = Progress("redriving changes", log, every=10)
    for done in range(1, 26):
        progress(done)
    progress.close()
    assert log.getvalue() == "redriving changes: 10\nredriving changes: 20\n"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    progress = Progress("redriving changes", terminal)
    progress(1)
    progress(2)
    progress.close()
    assert terminal.getvalue() == "\rredriving changes: 1\rredriving changes: 2\n"


def test_the_push_paths_queues_are_shown_and_listed_only_where_it_is_deployed(deployment, aws, monkeypatch):
    # given a stack without the push path: status and dlq list name only the poll's queues
    _, view = _run("status")
    assert "ChangeEventsDeadLetterQueue" not in view["queues"]
    _, listed = _run("dlq", "list")
    assert sorted(listed["dead_letters"]) == ["activities", "changes"]
    # when the push path is deployed and an EventBridge event has dead-lettered on its queue
    sqs = aws.client("sqs")
    queues = {name: sqs.create_queue(QueueName=f"push-{name}")["QueueUrl"] for name in ("events", "dead")}
    pushed = Deployment(
        name="stack test",
        refs={**deployment.refs, "ChangeEventsQueue": queues["events"], "ChangeEventsDeadLetterQueue": queues["dead"]},
        region="us-east-1",
    )
    monkeypatch.setattr(cli, "deployment_for", lambda args: pushed)
    event = {"detail-type": "AccountChangeEvent", "detail": {"payload": {"Industry": SECRET_VALUE}}}
    sqs.send_message(QueueUrl=queues["dead"], MessageBody=json.dumps(event))
    # then status counts it among the dead letters, and dlq list shows it by its kind, never its values
    status, view = _run("status")
    assert view["queues"]["ChangeEventsDeadLetterQueue"]["visible"] == 1 and view["dead_letters"] == 1
    status, listed = _run("dlq", "list")
    assert status == 1
    [letter] = listed["dead_letters"]["change-events"]
    assert letter["kind"] == "AccountChangeEvent"
    assert SECRET_VALUE not in json.dumps(listed)
