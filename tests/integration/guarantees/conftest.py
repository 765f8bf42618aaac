"""The delivery guarantees under faults: the real handlers, run as Lambda runs them, on moto from template.yaml.

* `pipeline`: the three functions in the in-process Lambda runtime, with the two SQS triggers emulated as
  Lambda's event source mappings (partial batch responses, redelivery, dead-letter queues after
  `maxReceiveCount`). The pollers see failed messages again at once (visibility timeout 0) so a test does not
  wait for the queues' real 540 s / 360 s.
* `faults`: a `FaultInjector` under every AWS call of the process (see `faults.py`).
* `salesforce`: the Salesforce emulator over HTTPS, its connected app's key in Secrets Manager, the fetch's
  environment pointed at it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import requests
from account_sync.adapters.dynamodb import DynamoSyncStateStore
from account_sync.adapters.dynamodb_models import AccountItem, ActivityItem, ContactItem
from account_sync.adapters.salesforce import SalesforceRestSource
from account_sync.adapters.salesforce_auth import JwtBearerAuthenticator
from account_sync.adapters.secrets import load_salesforce_credentials
from account_sync.adapters.sqs import SqsBatchSender, SqsChangePublisher
from account_sync.contracts import ChangeMessage
from account_sync.domain.timestamps import utc_now
from account_sync.services.fetch_changes import FetchConfig, FetchReport, fetch_changes
from account_sync.settings import Settings, load_settings
from local_stack.lambda_runtime import LambdaRuntime
from local_stack.sqs_poller import DrainResult, PollResult, SqsEventSourcePoller, drain
from local_stack.template import Resources
from salesforce_emulator import SalesforceEmulator

from tests.integration.guarantees.faults import FaultInjector
from tests.support.cfn_template import load_template
from tests.support.events import load_event


def max_receive_count(queue: str) -> int:
    """The RedrivePolicy's maxReceiveCount of a queue of template.yaml: how many receives SQS allows it."""
    return int(load_template()["Resources"][queue]["Properties"]["RedrivePolicy"]["maxReceiveCount"])


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> FaultInjector:
    """Faults under the SDK; none until a test adds one."""
    return FaultInjector(monkeypatch)


@dataclass
class Pipeline:
    runtime: LambdaRuntime
    resources: Resources
    sqs: Any
    fan_out: SqsEventSourcePoller
    activity_log: SqsEventSourcePoller
    sent: list[str] = field(default_factory=list)

    # --- queueing ---

    def queue_changes(self, messages: Iterable[ChangeMessage], dedup_suffix: str = "") -> list[str]:
        """Send as the fetch does (group = account, deduplication id from the version); the message ids.
        A `dedup_suffix` makes SQS take a re-send it would otherwise drop as a duplicate."""
        url = self.resources.queue_url("AccountChangesQueue")
        ids = []
        for message in messages:
            response = self.sqs.send_message(
                QueueUrl=url,
                MessageBody=message.to_body(),
                MessageGroupId=message.group_id,
                MessageDeduplicationId=message.deduplication_id[:60] + dedup_suffix,
            )
            ids.append(response["MessageId"])
        return ids

    def queue_raw(self, body: str, group: str) -> str:
        response = self.sqs.send_message(
            QueueUrl=self.resources.queue_url("AccountChangesQueue"),
            MessageBody=body,
            MessageGroupId=group,
            MessageDeduplicationId=uuid.uuid4().hex,
        )
        return response["MessageId"]

    # --- running the triggers ---

    def drain(self, timeout: float = 20.0) -> DrainResult:
        """Both triggers, until both queues are empty (failed messages come back at once)."""
        return drain([self.fan_out, self.activity_log], timeout=timeout, idle_wait=0.01)

    def poll_fan_out(self) -> PollResult:
        return self.fan_out.poll_once()

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        return self.runtime.invoke(function, event)

    # --- reading the queues and the store ---

    def bodies(self, queue: str) -> list[str]:
        """Every message of a queue, left in it (for a dead-letter queue: what an operator would see)."""
        url = self.resources.queue_url(queue)
        received = []
        while batch := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
            "Messages", []
        ):
            received.extend(batch)
        for message in received:
            self.sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return [message["Body"] for message in received]

    def depth(self, queue: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.resources.queue_url(queue),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())


@pytest.fixture
def pipeline(triggers, stack_resources: Resources, aws) -> Pipeline:
    """The template's functions and SQS triggers on the `aws` moto; the store bound for the test's own reads."""
    pollers = triggers.pollers
    return Pipeline(
        triggers.runtime, stack_resources, aws.client("sqs"), pollers["FanOutFunction"], pollers["ActivityLogFunction"]
    )


# --- the store, as a test reads it ----------------------------------------------------------------


def given_contacts(account_id: str, count: int, first: int = 1) -> list[str]:
    """Contacts of the account in the store, without account fields yet."""
    ids = [f"003{account_id[-9:]}{n:06d}" for n in range(first, first + count)]
    with ContactItem.batch_write() as batch:
        for contact_id in ids:
            batch.save(ContactItem(contact_id, account_id=account_id, account_fields={}))
    return ids


def contact_fields(contact_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    return {cid: ContactItem.get(cid, consistent_read=True).account_fields.as_dict() for cid in contact_ids}


def activity_keys() -> list[tuple[str, str]]:
    """Every activity item as (subject, key), sorted: a duplicate would show twice only if its key differed."""
    return sorted((item.subject_id, item.activity_key) for item in ActivityItem.scan())


def account_item(account_id: str) -> AccountItem:
    return AccountItem.get(account_id, consistent_read=True)


def sqs_event(*bodies: str, message_ids: Iterable[str] | None = None, group: str = "001000000000000001") -> dict:
    """An SQS event as Lambda builds it (the shape of `events/fan_out_account_change.json`)."""
    template = load_event("fan_out_account_change.json")["Records"][0]
    ids = list(message_ids) if message_ids is not None else [str(uuid.uuid4()) for _ in bodies]
    records = []
    for body, message_id in zip(bodies, ids, strict=True):
        record = json.loads(json.dumps(template))
        record.update(body=body, messageId=message_id, receiptHandle=uuid.uuid4().hex)
        record["attributes"]["MessageGroupId"] = group
        records.append(record)
    return {"Records": records}


# --- Salesforce ----------------------------------------------------------------------------------------


def point_runtime_at(runtime: LambdaRuntime, emulator: SalesforceEmulator) -> None:
    runtime.add_env({"SALESFORCE_TOKEN_URL": emulator.token_url, "SALESFORCE_CA_BUNDLE": emulator.ca_bundle})


@dataclass
class Fetch:
    """The fetch service on its real adapters (Secrets Manager, the emulator over HTTPS, the FIFO queue, the sync
    state table), with every backoff recorded in `sleeps` instead of slept."""

    settings: Settings
    sleeps: list[float] = field(default_factory=list)
    runs: int = 0

    def source(self, on_response: Callable[..., Any] | None = None) -> SalesforceRestSource:
        """A Salesforce client as the fetch function builds one; `on_response` sees every HTTP response."""
        settings = self.settings
        assert settings.salesforce_secret_name and settings.salesforce_token_url
        session = requests.Session()
        session.verify = settings.salesforce_ca_bundle or True
        session.trust_env = False
        if on_response is not None:
            session.hooks["response"].append(on_response)
        secret_name = settings.salesforce_secret_name
        authenticator = JwtBearerAuthenticator(
            credentials=lambda: load_salesforce_credentials(secret_name),
            token_url=settings.salesforce_token_url,
            session=session,
        )
        return SalesforceRestSource(authenticator, session, sleep=self.sleeps.append)

    @property
    def publisher(self) -> SqsChangePublisher:
        assert self.settings.account_changes_queue_url
        sender = SqsBatchSender(boto3.client("sqs"), self.settings.account_changes_queue_url, sleep=self.sleeps.append)
        return SqsChangePublisher(sender)

    @property
    def state(self) -> DynamoSyncStateStore:
        return DynamoSyncStateStore()

    def run(self, now: Callable[[], str] = utc_now, publisher: Any = None, source: Any = None) -> FetchReport:
        self.runs += 1
        config = FetchConfig(self.settings.synced_account_fields, lookback_seconds=self.settings.lookback_seconds)
        return fetch_changes(
            source or self.source(), publisher or self.publisher, self.state, config, now=now, run_id=f"run-{self.runs}"
        )


@pytest.fixture
def fetch(salesforce, pipeline) -> Fetch:
    """The fetch service pointed at `salesforce`; `pipeline` applies what it queues, and its runtime's fetch
    function is pointed at `salesforce` too."""
    point_runtime_at(pipeline.runtime, salesforce)
    return Fetch(load_settings())


SCHEDULE_EVENT = load_event("fetch_schedule.json")
