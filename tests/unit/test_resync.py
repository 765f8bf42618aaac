"""A resync of the version an account already applied (issue 12, item 1): it re-diffs the contacts and writes only
real differences, with activities of origin `resync`, under the 5000 rule, idempotently."""

from __future__ import annotations

from account_sync.contracts import AccountChangeMessage, LocalEditMessage, parse_change_message
from account_sync.domain.records import ChangeOrigin, LocalEdit

from tests.unit.factories import account_id, account_version, contact_id, contact_version, stamp
from tests.unit.test_fan_out import NOW, World


def resync(world: World, version, resync_id: str = "rs1"):
    report = world.fan_out.apply(parse_change_message(AccountChangeMessage(version, resync_id).to_body()))
    world.run_queued_segments()
    world.log_activities()
    return report


def test_a_resync_of_a_store_in_step_writes_nothing_and_logs_nothing():
    # Given an account applied to its contacts
    world = World()
    world.given_contacts(3)
    world.sync(account_version(1, minute=1))
    writes, logged = world.contacts.writes, len(world.store.activities)
    # When the same version is resynced
    report = resync(world, account_version(1, minute=1))
    # Then nothing is written, nothing logged
    assert report.outcome == "resynced"
    assert (world.contacts.writes, len(world.store.activities)) == (writes, logged)
    assert report.contacts_unchanged == 3 and report.activities_queued == 0


def test_without_the_resync_flag_the_same_version_is_already_applied():
    world = World()
    world.given_contacts(1)
    world.sync(account_version(1, minute=1))
    world.contact(0).account_fields["Industry"] = "Tampered"
    assert world.sync(account_version(1, minute=1)).outcome == "already_applied"
    assert world.contact(0).account_fields["Industry"] == "Tampered"


def test_a_contact_changed_behind_the_stores_back_is_repaired_with_exact_activities():
    world = World()
    world.given_contacts(3)
    world.sync(account_version(1, minute=1))
    world.contact(1).account_fields["Industry"] = "Tampered"
    report = resync(world, account_version(1, minute=1))
    assert report.contacts_written == 1 and report.contacts_unchanged == 2
    assert world.contact(1).account_fields["Industry"] == "Energy"
    resynced = [a for a in world.store.activities.values() if a.origin is ChangeOrigin.RESYNC]
    assert [(a.contact_id, a.attribute_name, a.old_value, a.new_value) for a in resynced] == [
        (contact_id(1_000_001), "Industry", "Tampered", "Energy")
    ]
    assert resynced[0].activity_key == f"{stamp(1)}#resync#Industry#rs1"
    assert ChangeOrigin.RESYNC.reason == "Resync from Salesforce"


def test_the_same_resync_redelivered_writes_nothing_more_and_rewrites_the_same_activity():
    world = World()
    world.given_contacts(2)
    world.sync(account_version(1, minute=1))
    world.contact(0).account_fields["Name"] = "Tampered"
    resync(world, account_version(1, minute=1))
    writes, keys = world.contacts.writes, set(world.store.activities)
    report = resync(world, account_version(1, minute=1))
    assert world.contacts.writes == writes and set(world.store.activities) == keys
    assert report.activities_queued == 1  # re-emitted from the contact's outbox, under the same key


def test_a_newly_synced_field_reaches_the_account_and_every_contact():
    world = World()
    world.given_contacts(2)
    world.sync(account_version(1, minute=1))
    version = account_version(1, minute=1, Rating="Hot")  # the field list now has Rating
    world.fan_out._config = world.fan_out._config.__class__(  # a deployment that adds the field
        (*world.fan_out._config.synced_fields, "Rating")
    )
    report = resync(world, version)
    assert report.changed_fields == ["Rating"]
    assert world.accounts.get(account_id(1)).fields["Rating"] == "Hot"
    assert all(world.contact(n).account_fields["Rating"] == "Hot" for n in range(2))


def test_above_the_threshold_a_resync_writes_but_logs_no_activity():
    world = World(threshold=2)
    world.given_contacts(3)
    world.sync(account_version(1, minute=1))
    world.contact(0).account_fields["Industry"] = "Tampered"
    logged = len(world.store.activities)
    report = resync(world, account_version(1, minute=1))
    assert report.contacts_written == 1 and len(world.store.activities) == logged
    assert report.activity_logging == "suppressed"


def test_a_large_account_is_resynced_in_segments():
    world = World(segment_size=2)
    world.given_contacts(5)
    world.sync(account_version(1, minute=1))
    world.contact(4).account_fields["Industry"] = "Tampered"
    report = resync(world, account_version(1, minute=1))
    assert report.segments_planned == 3
    assert world.contact(4).account_fields["Industry"] == "Energy"


def test_a_resync_keeps_a_local_edit_over_the_version():
    world = World()
    world.given_contacts(2)
    world.sync(account_version(1, minute=1))
    world.edit(LocalEdit("e1", contact_id(1_000_000), account_id(1), "Industry", "Local", NOW))
    report = resync(world, account_version(1, minute=1))
    assert report.contacts_written == 0
    assert world.contact(1).account_fields["Industry"] == "Local"
    assert world.accounts.get(account_id(1)).fields["Industry"] == "Local"


def test_a_resync_reading_a_newer_version_applies_it_as_a_version():
    world = World()
    world.given_contacts(1)
    world.sync(account_version(1, minute=1))
    report = resync(world, account_version(1, minute=2, Industry="Retail"))
    assert report.outcome == "new"
    assert [a.origin for a in world.store.activities.values()][-1] is ChangeOrigin.ACCOUNT


def test_a_resync_of_an_older_version_is_stale():
    world = World()
    world.given_contacts(1)
    world.sync(account_version(1, minute=2))
    assert resync(world, account_version(1, minute=1)).outcome == "stale"


def test_a_field_removed_from_the_synced_list_is_removed_by_the_resync_without_an_activity():
    world = World()
    world.given_contacts(2)
    world.sync(account_version(1, minute=1))
    logged = len(world.store.activities)
    world.fan_out._config = world.fan_out._config.__class__(("Name", "Industry"))  # BillingCountry removed
    version = account_version(1, minute=1)
    version = version.__class__(
        version.account_id, version.system_modstamp, False, {"Name": "Account 1", "Industry": "Energy"}
    )
    report = resync(world, version)
    assert report.contacts_written == 2 and len(world.store.activities) == logged
    assert all("BillingCountry" not in world.contact(n).account_fields for n in range(2))
    assert "BillingCountry" not in world.accounts.get(account_id(1)).fields
    # and a second resync finds the store in step
    assert resync(world, version, "rs2").contacts_written == 0


def _resync_without_its_segments(world: World, version, resync_id: str = "rs1"):
    return world.fan_out.apply(parse_change_message(AccountChangeMessage(version, resync_id).to_body()))


def test_a_contact_that_joined_before_the_resyncs_refresh_takes_the_refreshed_values():
    # Finding F (issue 10): a change accepted before a contact joined is not written on it (the join took the
    # account's fields). A resync's refresh of the account's fields counts as a change accepted, so a contact that
    # joined before it, with the account's values as they were, is still repaired by it.
    world = World()
    world.given_contacts(1)
    world.sync(account_version(1, minute=1))
    world.fan_out.apply_contact_change(contact_version(9, account=1, minute=2))  # joins, takes the fields
    world.fan_out._config = world.fan_out._config.__class__((*world.fan_out._config.synced_fields, "Rating"))
    resync(world, account_version(1, minute=1, Rating="Hot"))
    assert world.contacts.items[contact_id(9)].account_fields["Rating"] == "Hot"
    assert world.contact(0).account_fields["Rating"] == "Hot"


def test_a_contact_that_joined_after_the_resyncs_refresh_keeps_the_edit_it_took_with_the_accounts_fields():
    # Finding F's resync side: the resync is in segments; a local edit is accepted behind it, then a contact joins
    # and takes the account's fields (the refreshed ones, and the edit). The resync's segment must not write the
    # version's value over the edit on the joiner (nor log it), and the edit owes the joiner nothing.
    world = World(segment_size=2)
    world.given_contacts(3)
    world.sync(account_version(1, minute=1))
    before = set(world.activities_of(0))
    world.fan_out._config = world.fan_out._config.__class__(
        (*world.fan_out._config.synced_fields, "Rating"), segment_size=2
    )
    assert _resync_without_its_segments(world, account_version(1, minute=1, Rating="Hot")).segments_planned == 2
    edit = LocalEdit("e1", contact_id(1_000_000), account_id(1), "Name", "Edited", stamp(3))
    world.fan_out.apply(parse_change_message(LocalEditMessage(edit).to_body()))
    world.fan_out.apply_contact_change(contact_version(9, account=1, minute=4))
    joiner = world.contacts.items[contact_id(9)]
    assert (joiner.account_fields["Name"], joiner.account_fields["Rating"]) == ("Edited", "Hot")
    world.run_queued_segments()
    world.log_activities()
    assert joiner.account_fields["Name"] == "Edited"
    assert [a for a in world.store.activities.values() if a.contact_id == contact_id(9)] == []
    assert set(world.activities_of(0)) - before == {("Rating", None, "Hot"), ("Name", "Account 1", "Edited")}


def test_a_resyncs_segments_running_before_an_earlier_edits_keep_the_edits_activity():
    # Issue 11, item 5: segments run side by side. A resync accepted while an edit's segments still run reaches
    # contacts first; it takes the edit onto them first (its activity, origin local), then writes its own fields.
    world = World(segment_size=10)
    world.given_contacts(15)
    world.sync(account_version(1, minute=1))
    edit = LocalEdit("e1", contact_id(1_000_000), account_id(1), "Industry", "Edited", stamp(30))
    world.fan_out.apply(parse_change_message(LocalEditMessage(edit).to_body()))
    edit_segments = list(world.changes.messages)
    world.changes.messages.clear()
    world.fan_out._config = world.fan_out._config.__class__(
        (*world.fan_out._config.synced_fields, "Rating"), segment_size=10
    )
    assert _resync_without_its_segments(world, account_version(1, minute=1, Rating="Hot")).segments_planned == 2
    world.run_queued_segments()  # the resync's, first
    for segment in edit_segments:
        world.fan_out.apply(segment)
    world.log_activities()
    contacts = [world.contact(n) for n in range(15)]
    assert {(c.account_fields["Industry"], c.account_fields["Rating"]) for c in contacts} == {("Edited", "Hot")}
    by_origin = {}
    for a in world.store.activities.values():
        by_origin.setdefault((a.origin.value, a.attribute_name, a.old_value, a.new_value), set()).add(a.contact_id)
    assert by_origin[("local", "Industry", "Energy", "Edited")] == {c.contact_id for c in contacts}
    assert by_origin[("resync", "Rating", None, "Hot")] == {c.contact_id for c in contacts}
    assert ("resync", "Industry", "Energy", "Edited") not in by_origin
