"""The store's boto3 calls (those pynamodb's public API cannot make as the store needs them): their expressions
come from pynamodb's typed conditions and actions, and their errors mean what pynamodb's do."""

from __future__ import annotations

import pytest
from account_sync.adapters.dynamodb import expressions, is_condition_failure, translate
from account_sync.adapters.dynamodb_models import ContactItem
from account_sync.ports import PermanentFailure, TransientError
from botocore.exceptions import ClientError


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
