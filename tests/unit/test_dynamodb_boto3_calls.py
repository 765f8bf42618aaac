"""The store's boto3 calls (those pynamodb's public API cannot make as the store needs them): their expressions
come from pynamodb's typed conditions and actions, and their errors mean what pynamodb's do."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from account_sync.adapters.dynamodb import _decoded_contact, _snapshot, expressions, is_condition_failure, translate
from account_sync.adapters.dynamodb_models import ContactItem
from account_sync.domain.records import ChangeOrigin
from account_sync.ports import PermanentFailure, TransientError
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st


def client_error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "UpdateItem")


def test_expressions_name_every_attribute_and_value_they_use():
    # given an update, its condition, a key and a filter
    kwargs = expressions(
        [ContactItem.email.set("a@example.com"), ContactItem.updated_at.remove()],
        ContactItem.account_modstamp < "2026-12-04T00:00:00Z",
        key=ContactItem.contact_id == "003A",
        filter=ContactItem.is_deleted == False,  # noqa: E712 - a pynamodb condition, not a comparison
    )
    # then each expression is there, and the placeholders resolve to the attributes and values given
    names, values = kwargs["ExpressionAttributeNames"], kwargs["ExpressionAttributeValues"]
    assert set(names.values()) == {"email", "updated_at", "account_modstamp", "contact_id", "is_deleted"}
    assert sorted(map(str, values.values())) == sorted(
        map(str, [{"S": "a@example.com"}, {"S": "2026-12-04T00:00:00Z"}, {"S": "003A"}, {"BOOL": False}])
    )
    for expression in ("UpdateExpression", "ConditionExpression", "KeyConditionExpression", "FilterExpression"):
        placeholders = [word for word in kwargs[expression].replace(",", " ").split() if word[0] in "#:"]
        assert placeholders and all(p.strip("()") in names or p.strip("()") in values for p in placeholders)


def test_expressions_leave_out_what_is_not_asked():
    assert expressions() == {}
    assert set(expressions(key=ContactItem.contact_id == "003A")) == {
        "KeyConditionExpression",
        "ExpressionAttributeNames",
        "ExpressionAttributeValues",
    }


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_a_throttled_boto3_call_is_transient(code):
    error = translate(client_error(code, "Rate exceeded"))
    assert isinstance(error, TransientError) and code in str(error) and "Rate exceeded" in str(error)


def test_an_invalid_item_is_permanent_and_its_values_are_not_quoted():
    error = translate(client_error("ValidationException", "Item size has exceeded the limit: secret@example.com"))
    assert isinstance(error, PermanentFailure) and "secret" not in str(error)


def test_a_condition_failure_is_told_apart_and_anything_else_is_left_as_it_is():
    failed, other = client_error("ConditionalCheckFailedException"), client_error("AccessDeniedException")
    assert is_condition_failure(failed) and not is_condition_failure(other)
    assert translate(other) is other


# --- a read contact, decoded without the model -------------------------------------------------------------

wire_scalars = st.one_of(
    st.text(max_size=4).map(lambda s: {"S": s}),
    st.sampled_from(["0", "-0", "7", "1000", "1.5", "-2.25", "1E+2", "12345678901234567890.5"]).map(lambda n: {"N": n}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
)
field_names = st.one_of(st.sampled_from(["Name", "S", "M", "a.b", "#x"]), st.text(min_size=1, max_size=4))
stamps = st.sampled_from(["2026-12-05T00:00:01.000Z", "2026-12-05T00:00:02.000Z"])
outbox_entries = st.one_of(
    wire_scalars,  # an entry written before the outbox named its change: the value before, bare
    st.fixed_dictionaries(
        {
            "origin": st.sampled_from([o.value for o in ChangeOrigin]).map(lambda o: {"S": o}),
            "stamp": stamps.map(lambda s: {"S": s}),
        },
        optional={
            "old": wire_scalars,
            "change_id": st.just({"S": "e1"}),
            "base": st.one_of(stamps.map(lambda s: {"S": s}), st.just({"S": ""})),
            "path": st.sampled_from(["fetch", "push", "bogus"]).map(lambda p: {"S": p}),
        },
    ).map(lambda entry: {"M": entry}),
)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, st.just({"NULL": True}))


contact_items = st.fixed_dictionaries(
    {"contact_id": st.sampled_from(["003A", "003B"]).map(lambda c: {"S": c})},
    optional={
        "account_id": optional(st.sampled_from(["001A", "001B"]).map(lambda a: {"S": a})),
        "account_fields": optional(st.dictionaries(field_names, wire_scalars, max_size=4).map(lambda m: {"M": m})),
        "account_modstamp": optional(stamps.map(lambda s: {"S": s})),
        "account_deleted": optional(st.booleans().map(lambda b: {"BOOL": b})),
        "account_previous_values": optional(
            st.dictionaries(field_names, outbox_entries, max_size=4).map(lambda m: {"M": m})
        ),
        "contact_modstamp": optional(stamps.map(lambda s: {"S": s})),
        "is_deleted": optional(st.booleans().map(lambda b: {"BOOL": b})),
        "account_changes_at_join": optional(st.integers(0, 9).map(lambda n: {"N": str(n)})),
        "revision": optional(st.integers(0, 9).map(lambda n: {"N": str(n)})),
        "email": st.just({"S": "a@example.com"}),  # read, not decoded: no snapshot takes it
    },
)


def read(decode: Any) -> object:
    try:
        return decode()
    except (TypeError, ValueError) as exc:
        return type(exc)


@settings(max_examples=500, deadline=None)
@given(contact_items, st.sampled_from(["001A", None]))
def test_a_contact_decoded_without_the_model_is_the_snapshot_and_membership_the_model_gives(raw, account):
    model, decoded = ContactItem.from_raw_data(copy.deepcopy(raw)), _decoded_contact(copy.deepcopy(raw))
    assert read(lambda: _snapshot(decoded, account)) == read(lambda: _snapshot(model, account))
    assert (decoded.contact_id, decoded.account_id, bool(decoded.is_deleted)) == (
        model.contact_id,
        model.account_id,
        bool(model.is_deleted),
    )
