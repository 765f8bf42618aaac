"""The push path: Change Data Capture events read as nudges, the records read again by id and queued as the fetch
queues them; gaps, overflows, duplicates, own changes and the API budget."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from account_sync.change_events import ChangeNudge, parse_change_event
from account_sync.contracts import AccountChangeMessage, ContactChangesMessage, MalformedMessage
from account_sync.ports import ApiUsage, RecordedUsage, SalesforceBudgetExhausted
from account_sync.services.push_changes import PushConfig, push_changes

from tests.unit.factories import SYNCED, account_id, contact_id, stamp
from tests.unit.fakes import FakeSyncState, RecordingPublisher

OWN_CLIENT = "AccountSync"


def change_event(
    entity: str = "Account",
    ids: Sequence[str] = (account_id(1),),
    change_type: str = "UPDATE",
    origin: str = "com/salesforce/api/soap/62.0;client=SfdcInternalAPI/",
) -> str:
    """An SQS body as the rule delivers it: the EventBridge event Event Relay put on the partner source."""
    return json.dumps(
        {
            "version": "0",
            "id": "6f1c2a1e-0000-4000-8000-000000000001",
            "detail-type": f"{entity}ChangeEvent",
            "source": "aws.partner/salesforce.com/00D000000000001EAA/0YL000000000001GAA",
            "account": "123456789012",
            "time": "2026-11-27T10:01:00Z",
            "region": "eu-west-1",
            "resources": [],
            "detail": {
                "payload": {
                    "ChangeEventHeader": {
                        "entityName": entity,
                        "recordIds": list(ids),
                        "changeType": change_type,
                        "changedFields": ["Industry"],
                        "changeOrigin": origin,
                        "transactionKey": "0002a4f1-0000-0000-0000-000000000001",
                        "sequenceNumber": 1,
                        "commitTimestamp": 1796032860000,
                        "commitNumber": 10,
                        "commitUser": "005000000000001AAA",
                    },
                    "Industry": "Retail",
                },
                "schemaId": "abc123",
                "id": "2f0e9c1a-0000-4000-8000-000000000002",
                "replayId": "42",
            },
        }
    )


class FakeRecordReader:
    """Records by id, one call per 200 ids like the adapter; a budget that can run out."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, dict[str, object]]] = {"Account": {}, "Contact": {}}
        self.calls = 0
        self.asked: list[tuple[str, tuple[str, ...]]] = []
        self.usage: ApiUsage | None = ApiUsage(100, 1000)
        self.budget_stop = False

    def records_by_id(self, sobject: str, fields: Sequence[str], record_ids: Sequence[str]):
        for first in range(0, len(record_ids), 200):
            if self.budget_stop:
                raise SalesforceBudgetExhausted("REQUEST_LIMIT_EXCEEDED")
            self.calls += 1
            chunk = tuple(record_ids[first : first + 200])
            self.asked.append((sobject, chunk))
            for record_id in chunk:
                if record_id in self.records[sobject]:
                    row = self.records[sobject][record_id]
                    yield {name: row.get(name) for name in fields}

    @property
    def api_usage(self) -> ApiUsage | None:
        return self.usage

    @property
    def api_calls(self) -> int:
        return self.calls


class Scenario:
    def __init__(self) -> None:
        self.salesforce = FakeRecordReader()
        self.queue = RecordingPublisher()
        self.state = FakeSyncState()
        self.clock = stamp(10)

    def account(self, n: int, minute: int = 1, deleted: bool = False, **fields: object) -> None:
        row: dict[str, object] = {
            "Id": account_id(n),
            "SystemModstamp": stamp(minute),
            "IsDeleted": deleted,
            "Name": f"Account {n}",
            "Industry": "Retail",
            "BillingCountry": "France",
        }
        row.update(fields)
        self.salesforce.records["Account"][account_id(n)] = row

    def contact(self, n: int, account: int, minute: int = 1) -> None:
        self.salesforce.records["Contact"][contact_id(n)] = {
            "Id": contact_id(n),
            "AccountId": account_id(account),
            "SystemModstamp": stamp(minute),
            "IsDeleted": False,
            "LastName": f"C{n}",
            "FirstName": None,
            "Email": None,
        }

    def push(self, *bodies: str, share: float | None = 0.5):
        nudges = [parse_change_event(body) for body in bodies]
        config = PushConfig(SYNCED, api_budget_share=share, own_client_id=OWN_CLIENT)
        return push_changes(nudges, self.salesforce, self.queue, self.state, config, now=lambda: self.clock)


# --- parsing ----------------------------------------------------------------------------------------


def test_an_event_relay_event_names_its_object_records_and_origin() -> None:
    nudge = parse_change_event(change_event("Contact", [contact_id(1), contact_id(2), contact_id(1)]))
    assert nudge == ChangeNudge(
        sobject="Contact",
        record_ids=(contact_id(1), contact_id(2)),
        change_type="UPDATE",
        change_origin="com/salesforce/api/soap/62.0;client=SfdcInternalAPI/",
        commit_timestamp=1796032860000,
    )


def test_an_overflow_event_names_no_record_and_is_left_to_the_poll() -> None:
    nudge = parse_change_event(change_event(ids=[], change_type="GAP_OVERFLOW"))
    assert nudge.record_ids == () and nudge.left_to_poll and nudge.is_gap


def test_any_event_naming_no_readable_record_is_left_to_the_poll() -> None:
    assert parse_change_event(change_event(change_type="UPDATE", ids=[])).left_to_poll
    assert not parse_change_event(change_event(change_type="UPDATE")).left_to_poll


def test_a_wildcard_id_is_left_to_the_poll_and_the_plain_ids_beside_it_are_read() -> None:
    nudge = parse_change_event(change_event(ids=[account_id(1), "001*"]))
    assert nudge.record_ids == (account_id(1),) and nudge.left_to_poll


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not JSON"),
        (json.dumps({"detail": {}}), "ChangeEventHeader"),
        (change_event(entity="Opportunity"), "not Account or Contact"),
        (change_event(change_type="MERGE_ALL"), "changeType"),
        (
            json.dumps(
                {
                    "detail": {
                        "payload": {
                            "ChangeEventHeader": {"entityName": "Account", "changeType": "UPDATE", "recordIds": "001"}
                        }
                    }
                }
            ),
            "recordIds",
        ),
    ],
)
def test_a_body_that_is_not_a_cdc_event_is_malformed_with_its_reason(body: str, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        parse_change_event(body)


def test_own_changes_are_recognised_by_the_client_id_in_change_origin() -> None:
    own = parse_change_event(change_event(origin=f"com/salesforce/api/rest/62.0;client={OWN_CLIENT}"))
    other = parse_change_event(change_event(origin=f"com/salesforce/api/rest/62.0;client={OWN_CLIENT}2"))
    assert own.from_client(OWN_CLIENT) and not other.from_client(OWN_CLIENT) and not own.from_client(None)


# --- reading again and queueing ---------------------------------------------------------------------


def test_events_are_read_again_by_id_and_queued_as_the_fetch_queues_them() -> None:
    # given two accounts and a contact changed in Salesforce, and their events (one naming two records)
    s = Scenario()
    s.account(1, minute=3)
    s.account(2, minute=4, IsDeleted=True)
    s.contact(7, account=1, minute=5)
    # when the batch is pushed
    report = s.push(change_event(ids=[account_id(1), account_id(2)]), change_event("Contact", [contact_id(7)]))
    # then each object is read with one call and the records are queued, Accounts first, with their stamps
    assert s.salesforce.asked == [("Account", (account_id(1), account_id(2))), ("Contact", (contact_id(7),))]
    accounts = [m for m in s.queue.messages if isinstance(m, AccountChangeMessage)]
    assert [(m.version.account_id, m.version.system_modstamp, m.version.is_deleted) for m in accounts] == [
        (account_id(1), stamp(3), False),
        (account_id(2), stamp(4), True),
    ]
    assert accounts[0].version.fields == {"Name": "Account 1", "Industry": "Retail", "BillingCountry": "France"}
    assert isinstance(s.queue.messages[-1], ContactChangesMessage)
    assert report.queued == {"Account": 2, "Contact": 1} and report.api_calls == 2


def test_duplicates_and_repeated_ids_in_a_batch_are_read_once() -> None:
    s = Scenario()
    s.account(1)
    report = s.push(change_event(), change_event(), change_event(change_type="GAP_UPDATE"))
    assert s.salesforce.asked == [("Account", (account_id(1),))]
    assert report.read["Account"] == 1 and report.gap_events == 1 and len(s.queue.messages) == 1


def test_a_push_queues_the_same_message_the_poll_queues_for_the_same_version_but_for_its_path() -> None:
    # the FIFO deduplication id is the message's: one version by both paths is one message within 5 minutes; the
    # path rides along for the activities, in no id
    from account_sync.domain.records import SyncPath
    from account_sync.services.fetch_changes import account_messages

    s = Scenario()
    s.account(1)
    s.push(change_event())
    polled, _ = next(account_messages([s.salesforce.records["Account"][account_id(1)]], SYNCED, path=SyncPath.FETCH))
    (pushed,) = s.queue.messages
    assert isinstance(polled, type(pushed)) and pushed.version == polled.version  # type: ignore[union-attr]
    assert (pushed.deduplication_id, pushed.group_id) == (polled.deduplication_id, polled.group_id)
    assert (pushed.path, polled.path) == (SyncPath.PUSH, SyncPath.FETCH)  # type: ignore[union-attr]


def test_ids_are_read_200_to_a_query() -> None:
    s = Scenario()
    ids = [account_id(n) for n in range(1, 451)]
    for n in range(1, 451):
        s.account(n)
    report = s.push(*(change_event(ids=ids[i : i + 50]) for i in range(0, 450, 50)))
    assert [len(chunk) for _, chunk in s.salesforce.asked] == [200, 200, 50]
    assert report.api_calls == 3 and report.queued["Account"] == 450


def test_a_record_gone_from_salesforce_is_not_queued() -> None:
    # hard-deleted (emptied from the recycle bin): nothing to read; the store keeps its last deleted flag
    s = Scenario()
    report = s.push(change_event(change_type="DELETE"))
    assert report.found["Account"] == 0 and s.queue.messages == []


def test_an_overflow_alone_makes_no_call() -> None:
    s = Scenario()
    report = s.push(change_event(ids=[], change_type="GAP_OVERFLOW"))
    assert report.left_to_poll == 1 and s.salesforce.calls == 0 and s.queue.messages == []


def test_an_own_change_is_read_like_any_other_and_counted_apart() -> None:
    s = Scenario()
    s.account(1)
    report = s.push(change_event(origin=f"com/salesforce/api/rest/62.0;client={OWN_CLIENT}"))
    assert report.own_origin == 1 and report.queued["Account"] == 1


def test_an_unstorable_value_is_set_aside_and_the_rest_queued() -> None:
    s = Scenario()
    s.account(1, Name="x" * 10, Industry=float("nan"))
    s.account(2)
    report = s.push(change_event(ids=[account_id(1), account_id(2)]))
    assert [r["record_id"] for r in report.rejected] == [account_id(1)]
    assert report.queued["Account"] == 1


# --- the API budget ---------------------------------------------------------------------------------


def test_a_spent_budget_recorded_by_either_path_costs_no_call_and_leaves_the_batch_to_the_poll() -> None:
    s = Scenario()
    s.account(1)
    s.state.usage = RecordedUsage(ApiUsage(600, 1000), stamp(9))
    report = s.push(change_event())
    assert report.outcome == "skipped_api_budget" and s.salesforce.calls == 0 and s.queue.messages == []


def test_an_old_recorded_usage_is_asked_again() -> None:
    s = Scenario()
    s.account(1)
    s.state.usage = RecordedUsage(ApiUsage(600, 1000), "2026-11-27T08:00:00.000Z")
    assert s.push(change_event()).outcome == "completed"


def test_the_usage_read_is_recorded_for_both_paths() -> None:
    s = Scenario()
    s.account(1)
    s.salesforce.usage = ApiUsage(321, 1000)
    s.push(change_event())
    assert s.state.usage == RecordedUsage(ApiUsage(321, 1000), stamp(10))


def test_a_budget_stop_leaves_the_batch_to_the_poll_and_records_the_allocation_spent() -> None:
    s = Scenario()
    s.account(1)
    s.salesforce.budget_stop = True
    report = s.push(change_event())
    assert report.outcome == "stopped_api_budget" and s.queue.messages == []
    assert s.state.usage is not None and s.state.usage.usage.share == 1.0


def test_the_sample_event_file_is_what_the_push_function_reads() -> None:
    # events/push_change_events.json serves `sam local invoke PushChangesFunction -e` too
    from tests.support.events import load_event

    nudges = [parse_change_event(record["body"]) for record in load_event("push_change_events.json")["Records"]]
    assert [(n.sobject, n.change_type, len(n.record_ids), n.left_to_poll) for n in nudges] == [
        ("Account", "UPDATE", 2, False),
        ("Contact", "GAP_OVERFLOW", 0, True),
    ]
