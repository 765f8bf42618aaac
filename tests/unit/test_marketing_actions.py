"""The marketing-side actions on fakes: local edits are checked then queued, the history pages, Convert Person.

Each refusal is a stable code; nothing is queued, converted or linked when a request is refused.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from account_sync.contracts import LocalEditMessage, parse_change_message
from account_sync.domain.conversion import ConversionOrder, ConvertedRecords, PersonConversion, conversion_key
from account_sync.domain.records import CHANGE_DATA_VALUE, CHANGE_DATA_VALUE_SUPPRESSED
from account_sync.ports import (
    AccountState,
    SalesforceRejected,
    StoredActivity,
    StoredContact,
    SubrequestFailure,
    TransientError,
)
from account_sync.services.convert_person import ConversionRequest, PersonConversions
from account_sync.services.history import History, PageRequest, decode_token, encode_token
from account_sync.services.local_edit import KeyedEdit, LocalEdits
from account_sync.services.refusals import Conflict, InvalidRequest, NotFound, Unprocessable

from tests.unit.factories import SYNCED, account_id, contact_id, stamp
from tests.unit.fakes import RecordingPublisher

PERSON = "person-0001"


# --- fakes of the lookups ------------------------------------------------------------------------------


class People:
    """The contacts table as the API sees it, with the link's condition (a person, not linked yet)."""

    def __init__(self, *contacts: StoredContact) -> None:
        self.items = {c.contact_id: c for c in contacts}
        self.links: list[PersonConversion] = []

    def get_contact(self, contact_id: str) -> StoredContact | None:
        return self.items.get(contact_id)

    def link_conversion(self, conversion: PersonConversion) -> bool:
        person = self.items.get(conversion.person_id)
        if person is None or person.is_salesforce_contact or person.conversion is not None:
            return False
        self.items[conversion.person_id] = replace(person, conversion=conversion)
        self.links.append(conversion)
        return True


class Accounts:
    def __init__(self, *states: AccountState) -> None:
        self.items = {s.account_id: s for s in states}

    def get(self, account_id: str) -> AccountState | None:
        return self.items.get(account_id)


def synced_account(n: int = 1, deleted: bool = False, modstamp: str | None = stamp(1)) -> AccountState:
    return AccountState(
        account_id=account_id(n),
        fields={"Name": f"Account {n}", "Industry": "Energy"},
        system_modstamp=modstamp,
        applied_modstamp=modstamp,
        is_deleted=deleted,
        activity_logging=None,
        contacts_counted=None,
    )


def member(n: int, account: int | None = 1, **changes: object) -> StoredContact:
    contact = StoredContact(
        contact_id=contact_id(n),
        account_id=account_id(account) if account is not None else None,
        is_salesforce_contact=True,
    )
    return replace(contact, **changes)  # type: ignore[arg-type]


def person(person_id: str = PERSON, **changes: object) -> StoredContact:
    contact = StoredContact(
        contact_id=person_id,
        account_id=None,
        is_salesforce_contact=False,
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.org",
    )
    return replace(contact, **changes)  # type: ignore[arg-type]


# --- local edits ----------------------------------------------------------------------------------------


class TestLocalEdits:
    @staticmethod
    def edits(people: People, accounts: Accounts, publisher: RecordingPublisher, keys=None) -> LocalEdits:
        return LocalEdits(people, accounts, publisher, SYNCED, now=lambda: stamp(30), keys=keys)

    def test_an_edit_is_queued_in_the_account_group_and_answered_with_its_id(self):
        # given a contact of a synced account
        publisher = RecordingPublisher()
        edits = self.edits(People(member(1)), Accounts(synced_account()), publisher)

        # when its Industry is edited
        queued = edits.request(contact_id(1), "Industry", "Edited in the store")

        # then one local edit travels in the account's FIFO group, with the fan-out's contract
        (message,) = publisher.messages
        assert isinstance(message, LocalEditMessage) and message.group_id == account_id(1)
        assert parse_change_message(message.to_body()) == message
        assert (message.edit.field, message.edit.value, message.edit.edited_at) == (
            "Industry",
            "Edited in the store",
            stamp(30),
        )
        assert (queued.edit_id, queued.account_id) == (message.edit.edit_id, account_id(1))

    @pytest.mark.parametrize(
        ("contacts", "accounts", "field", "refusal", "code"),
        [
            ([member(1)], [synced_account()], "Description", InvalidRequest, "FIELD_NOT_SYNCED"),
            ([], [synced_account()], "Industry", NotFound, "CONTACT_NOT_FOUND"),
            ([member(1, is_deleted=True)], [synced_account()], "Industry", Conflict, "CONTACT_DELETED"),
            ([member(1, account=None)], [synced_account()], "Industry", Conflict, "CONTACT_HAS_NO_ACCOUNT"),
            ([person(contact_id(1))], [], "Industry", Conflict, "CONTACT_HAS_NO_ACCOUNT"),
            ([member(1)], [], "Industry", Conflict, "ACCOUNT_NOT_SYNCED"),
            ([member(1)], [synced_account(modstamp=None)], "Industry", Conflict, "ACCOUNT_NOT_SYNCED"),
            ([member(1)], [synced_account(deleted=True)], "Industry", Conflict, "ACCOUNT_NOT_SYNCED"),
            ([member(1, account_deleted=True)], [synced_account()], "Industry", Conflict, "ACCOUNT_NOT_SYNCED"),
        ],
        ids=[
            "field not synced",
            "unknown contact",
            "deleted contact",
            "contact without account",
            "person of the store",
            "account never synced",
            "account item without a version",
            "account deleted",
            "contact flagged account_deleted",
        ],
    )
    def test_a_refused_edit_has_its_code_and_queues_nothing(self, contacts, accounts, field, refusal, code):
        publisher = RecordingPublisher()
        edits = self.edits(People(*contacts), Accounts(*accounts), publisher)

        with pytest.raises(refusal) as refused:
            edits.request(contact_id(1), field, "x")

        assert refused.value.code == code
        assert publisher.messages == []

    def test_the_same_idempotency_key_is_the_same_edit_for_one_contact_only(self):
        publisher = RecordingPublisher()
        edits = self.edits(People(member(1), member(2)), Accounts(synced_account()), publisher)

        first = edits.request(contact_id(1), "Industry", "x", idempotency_key="k-1")
        again = edits.request(contact_id(1), "Industry", "x", idempotency_key="k-1")
        other = edits.request(contact_id(2), "Industry", "x", idempotency_key="k-1")
        unkeyed = {edits.request(contact_id(1), "Industry", "x").edit_id for _ in range(2)}

        assert first.edit_id == again.edit_id != other.edit_id
        assert len(unkeyed) == 2
        # SQS FIFO deduplicates by this id for 5 minutes: the re-sent request is dropped there
        assert publisher.messages[0].deduplication_id == publisher.messages[1].deduplication_id

    def test_the_same_idempotency_key_with_another_body_is_refused_and_queues_nothing(self):
        # given an edit made with an Idempotency-Key
        publisher, keys, clock = RecordingPublisher(), MemoryIdempotencyKeys(), (stamp(m) for m in range(30, 40))
        edits = LocalEdits(
            People(member(1)), Accounts(synced_account()), publisher, SYNCED, now=lambda: next(clock), keys=keys
        )
        first = edits.request(contact_id(1), "Industry", "Retail", idempotency_key="k-1")
        # when the same key comes with another value, then with another field
        with pytest.raises(Unprocessable) as other_value:
            edits.request(contact_id(1), "Industry", "Banking", idempotency_key="k-1")
        with pytest.raises(Unprocessable):
            edits.request(contact_id(1), "Name", "Retail", idempotency_key="k-1")
        # then both are refused (422), never answered as queued, and only the first edit was queued
        assert other_value.value.code == "IDEMPOTENCY_KEY_REUSED"
        assert [m.edit.value for m in publisher.messages] == ["Retail"]
        # and the same request again, a minute later, is the same edit: same id and time, the same message
        again = edits.request(contact_id(1), "Industry", "Retail", idempotency_key="k-1")
        assert again == first and publisher.messages[1] == publisher.messages[0]

    def test_the_same_number_written_differently_is_the_same_request(self):
        keys = MemoryIdempotencyKeys()
        edits = self.edits(People(member(1)), Accounts(synced_account()), RecordingPublisher(), keys)
        first = edits.request(contact_id(1), "Industry", 12, idempotency_key="k-2")
        assert edits.request(contact_id(1), "Industry", 12.0, idempotency_key="k-2").edit_id == first.edit_id
        with pytest.raises(Unprocessable):
            edits.request(contact_id(1), "Industry", True, idempotency_key="k-2")


class MemoryIdempotencyKeys:
    def __init__(self) -> None:
        self.kept: dict[str, KeyedEdit] = {}

    def claim(self, keyed: KeyedEdit) -> KeyedEdit:
        return self.kept.setdefault(keyed.edit_id, keyed)


# --- history --------------------------------------------------------------------------------------------


class Activities:
    """Items under subjects, returned newest first after a key, like the table's sort key."""

    def __init__(self) -> None:
        self.items: list[StoredActivity] = []

    def add(self, subject: str, key: str, activity_type: str = CHANGE_DATA_VALUE, **attributes: object) -> None:
        self.items.append(StoredActivity(subject, key, {"activity_type": activity_type, **attributes}))

    def page(self, subject_id, activity_type, limit, after_key):
        mine = sorted(
            (a for a in self.items if a.subject_id == subject_id and a.attributes["activity_type"] == activity_type),
            key=lambda a: a.activity_key,
            reverse=True,
        )
        if after_key is not None:
            mine = [a for a in mine if a.activity_key < after_key]
        page = mine[:limit]
        return page, (page[-1].activity_key if len(mine) > limit else None)


class TestHistory:
    def test_pages_follow_each_other_newest_first_until_the_last(self):
        activities = Activities()
        for minute in range(1, 6):
            activities.add(contact_id(1), f"{stamp(minute)}#account#Industry", new_value=f"v{minute}")
        history = History(People(member(1)), Accounts(), activities)

        seen, token, pages = [], None, 0
        while True:
            page = history.contact_activities(contact_id(1), PageRequest(limit=2, next_token=token))
            pages += 1
            seen += [item["new_value"] for item in page.items]
            token = page.next_token
            if token is None:
                break

        assert seen == ["v5", "v4", "v3", "v2", "v1"]
        assert pages == 3

    def test_an_account_lists_its_suppressed_changes_only(self):
        activities = Activities()
        activities.add(account_id(1), f"{stamp(2)}#suppressed", CHANGE_DATA_VALUE_SUPPRESSED, threshold=5000)
        activities.add(account_id(1), f"{stamp(1)}#account#Name")  # never under an account, but not listed anyway
        history = History(People(), Accounts(synced_account()), activities)

        page = history.account_suppressed_changes(account_id(1), PageRequest())

        assert [(i["activity_key"], i["threshold"]) for i in page.items] == [(f"{stamp(2)}#suppressed", 5000)]
        assert page.next_token is None

    def test_unknown_subjects_are_not_found(self):
        history = History(People(), Accounts(), Activities())
        with pytest.raises(NotFound, match="CONTACT_NOT_FOUND"):
            history.contact_activities(contact_id(9), PageRequest())
        with pytest.raises(NotFound, match="ACCOUNT_NOT_FOUND"):
            history.account_suppressed_changes(account_id(9), PageRequest())

    @pytest.mark.parametrize(
        "token",
        [
            "not base64 !",
            "e30",  # {}
            encode_token(contact_id(2), "2026#account#Name"),  # made for another contact
            encode_token(contact_id(1), "k" * 2000),
        ],
    )
    def test_a_token_that_this_api_did_not_give_for_this_list_is_refused(self, token):
        with pytest.raises(InvalidRequest, match="INVALID_NEXT_TOKEN"):
            decode_token(token, contact_id(1))

    def test_a_token_round_trips(self):
        assert decode_token(encode_token(contact_id(1), "2026#local#Name"), contact_id(1)) == "2026#local#Name"


# --- Convert Person ---------------------------------------------------------------------------------------


class Converter:
    """Salesforce's side: upserts by key, so the same order twice finds the same records."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.orders: list[ConversionOrder] = []
        self.fail_with = fail_with
        self.records: dict[str, ConvertedRecords] = {}

    def convert(self, order: ConversionOrder) -> ConvertedRecords:
        self.orders.append(order)
        if self.fail_with is not None:
            raise self.fail_with
        n = len(self.records) + 1
        if order.key in self.records:
            return replace(self.records[order.key], created=False)
        self.records[order.key] = ConvertedRecords(account_id(n), contact_id(n), f"006{n:015d}")
        return self.records[order.key]


REQUEST = ConversionRequest(
    account={"Name": "Lovelace Analytics"},
    opportunity={"Name": "First deal", "StageName": "Prospecting", "CloseDate": "2026-12-31"},
)


def conversions(people: People, converter: Converter) -> PersonConversions:
    return PersonConversions(people, converter, now=lambda: stamp(40))


class TestConvertPerson:
    def test_a_person_becomes_one_account_contact_and_opportunity_and_is_linked(self):
        people, converter = People(person()), Converter()

        result = conversions(people, converter).convert(PERSON, REQUEST, requested_by="arn:aws:iam::1:role/tool")

        (order,) = converter.orders
        assert order.key == conversion_key(PERSON)
        assert order.contact == {"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.org"}
        assert order.account == {"Name": "Lovelace Analytics"}
        assert result.created and result.conversion.contact_id == contact_id(1)
        assert people.items[PERSON].conversion == result.conversion
        assert result.conversion.converted_by == "arn:aws:iam::1:role/tool"

    def test_the_request_may_complete_the_contact(self):
        people, converter = People(person(last_name=None, email=None)), Converter()
        request = replace(REQUEST, contact={"LastName": "Byron"})

        conversions(people, converter).convert(PERSON, request)

        assert converter.orders[0].contact == {"FirstName": "Ada", "LastName": "Byron"}

    def test_a_person_without_a_last_name_is_refused_before_salesforce(self):
        people, converter = People(person(last_name=None)), Converter()
        with pytest.raises(InvalidRequest, match="CONTACT_LAST_NAME_REQUIRED"):
            conversions(people, converter).convert(PERSON, REQUEST)
        assert converter.orders == []

    def test_an_unknown_person_is_not_found(self):
        with pytest.raises(NotFound, match="PERSON_NOT_FOUND"):
            conversions(People(), Converter()).convert(PERSON, REQUEST)

    def test_a_salesforce_contact_is_already_a_contact(self):
        converter = Converter()
        with pytest.raises(Conflict, match="ALREADY_A_CONTACT"):
            conversions(People(member(1)), converter).convert(contact_id(1), REQUEST)
        assert converter.orders == []

    def test_a_converted_person_is_refused_with_the_records_of_its_conversion(self):
        people, converter = People(person()), Converter()
        first = conversions(people, converter).convert(PERSON, REQUEST)

        with pytest.raises(Conflict) as refused:
            conversions(people, converter).convert(PERSON, REQUEST)

        assert refused.value.code == "ALREADY_A_CONTACT"
        assert refused.value.details["contact_id"] == first.conversion.contact_id
        assert len(converter.orders) == 1  # Salesforce was not asked again

    def test_a_retry_after_the_link_failed_finds_the_same_records(self):
        # given a conversion that reached Salesforce but whose link was lost (a timeout, a crash)
        people, converter = People(person()), Converter()
        converter.convert(ConversionOrder(conversion_key(PERSON), {}, {}, {}))

        # when the same request comes again
        result = conversions(people, converter).convert(PERSON, REQUEST)

        # then the same records, now linked; nothing new in Salesforce
        assert not result.created
        assert len(converter.records) == 1
        assert people.items[PERSON].conversion == result.conversion

    def test_salesforce_refusing_leaves_the_person_unlinked(self):
        failure = SalesforceRejected([SubrequestFailure("contact", "INVALID_EMAIL_ADDRESS", ("Email",))])
        people = People(person(email="not an address"))

        with pytest.raises(SalesforceRejected):
            conversions(people, Converter(fail_with=failure)).convert(PERSON, REQUEST)

        assert people.items[PERSON].conversion is None and people.links == []

    def test_salesforce_unreachable_leaves_the_person_unlinked(self):
        people = People(person())
        with pytest.raises(TransientError):
            conversions(people, Converter(fail_with=TransientError("503"))).convert(PERSON, REQUEST)
        assert people.links == []

    def test_two_identical_requests_at_once_both_answer_the_one_conversion(self):
        # given the other request links the person between our Salesforce call and our link
        people, converter = People(person()), Converter()

        class Racing(Converter):
            def convert(self, order: ConversionOrder) -> ConvertedRecords:
                records = converter.convert(order)
                other = PersonConversion(PERSON, order.key, records.account_id, records.contact_id, "006", stamp(39))
                people.items[PERSON] = replace(people.items[PERSON], conversion=other)
                return replace(records, created=False)

        result = conversions(people, Racing()).convert(PERSON, REQUEST)

        assert not result.created and result.conversion.converted_at == stamp(39)


def test_the_conversion_key_is_one_per_person_and_safe_in_a_url():
    people = ("person-1", "person-2", "a/b.c", "x" * 128)
    keys = [conversion_key(p) for p in people]
    assert len(set(keys)) == len(people)
    assert keys == [conversion_key(p) for p in people]  # the same for every attempt
    assert all(k.replace("-", "").isalnum() and len(k) <= 255 for k in keys)
