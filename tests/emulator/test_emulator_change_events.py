"""Change Data Capture through Event Relay: one event per committed Account/Contact change, in the EventBridge
envelope, none for a rolled-back transaction; the relay's faults."""

from __future__ import annotations

import json

import pytest

from .test_emulator_composite import composite, convert_person

pytestmark = pytest.mark.integration


@pytest.fixture
def delivered(emulator):
    events: list[dict] = []
    relay = emulator.relay_change_events(events.extend)
    return events, relay


def headers(events):
    return [event["detail"]["payload"]["ChangeEventHeader"] for event in events]


def test_create_update_delete_undelete_each_publish_one_event_with_the_changed_fields_only(emulator, delivered):
    events, relay = delivered
    account_id = emulator.create("Account", {"Name": "Acme", "Industry": "Energy"})
    emulator.update("Account", account_id, {"Industry": "Retail"})
    emulator.delete("Account", account_id)
    emulator.undelete("Account", account_id)
    assert [(h["entityName"], h["recordIds"], h["changeType"]) for h in headers(events)] == [
        ("Account", [account_id], change) for change in ("CREATE", "UPDATE", "DELETE", "UNDELETE")
    ]
    update = events[1]
    assert update["source"] == relay.source and update["source"].startswith("aws.partner/salesforce.com/")
    assert update["detail-type"] == "AccountChangeEvent"
    assert update["detail"]["payload"]["ChangeEventHeader"]["changedFields"] == ["Industry"]
    assert update["detail"]["payload"]["Industry"] == "Retail"
    assert "Name" not in update["detail"]["payload"] and "SystemModstamp" not in update["detail"]["payload"]
    assert int(events[1]["detail"]["replayId"]) > int(events[0]["detail"]["replayId"])


def test_a_rolled_back_composite_publishes_nothing_and_a_committed_one_publishes_its_two_objects(
    emulator, sf, delivered
):
    events, _ = delivered
    composite(sf, convert_person("person-2", stage=None))  # refused: rolled back
    assert events == []
    composite(sf, convert_person("person-3"))
    assert sorted(h["entityName"] for h in headers(events)) == ["Account", "Contact"]  # no Opportunity captured


def test_gap_overflow_duplicate_and_down_faults(emulator, delivered):
    events, relay = delivered
    account_id = emulator.create("Account", {"Name": "Acme"})
    events.clear()
    relay.faults.gap = True
    emulator.update("Account", account_id, {"Industry": "Retail"})
    assert headers(events)[-1]["changeType"] == "GAP_UPDATE" and set(events[-1]["detail"]["payload"]) == {
        "ChangeEventHeader"
    }
    relay.faults.gap, relay.faults.overflow = False, True
    emulator.update("Account", account_id, {"Industry": "Media"})
    assert headers(events)[-1]["changeType"] == "GAP_OVERFLOW" and headers(events)[-1]["recordIds"] == []
    relay.faults.overflow, relay.faults.duplicate = False, True
    emulator.update("Account", account_id, {"Industry": "Energy"})
    assert events[-1] == events[-2]
    relay.faults.duplicate, relay.faults.down = False, True
    count = len(events)
    emulator.update("Account", account_id, {"Industry": "Retail"})
    assert len(events) == count and relay.dropped == 1


def test_change_origin_names_the_api_client_of_the_request_and_is_empty_for_ui_changes(emulator, sf, delivered):
    # Account Sync sends `Sforce-Call-Options: client=AccountSync` (the adapter): its own changes are recognisable
    from account_sync.change_events import ACCOUNT_SYNC_CLIENT_ID, parse_change_event

    events, _ = delivered
    sf.headers["Sforce-Call-Options"] = f"client={ACCOUNT_SYNC_CLIENT_ID}"
    composite(sf, convert_person("person-4"))
    emulator.create("Account", {"Name": "Made in the UI"})
    origins = [h["changeOrigin"] for h in headers(events)]
    assert origins[:2] == ["com/salesforce/api/rest/62.0;client=AccountSync"] * 2 and origins[2] == ""
    nudges = [parse_change_event(json.dumps(event)) for event in events]
    assert [n.from_client(ACCOUNT_SYNC_CLIENT_ID) for n in nudges] == [True, True, False]
