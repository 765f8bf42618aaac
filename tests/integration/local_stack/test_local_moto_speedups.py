"""moto's speed fixes (`moto_fixes`) keep moto's rules exactly: FIFO deduplication looked up in an index, and
UpdateExpressions parsed once per text."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError


def _fifo_queue(sqs, content_based: bool = False) -> str:
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true" if content_based else "false"}
    return sqs.create_queue(QueueName="dedup.fifo", Attributes=attributes)["QueueUrl"]


def _bodies(sqs, url: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return sorted(message["Body"] for message in messages)


def _send(sqs, url: str, body: str, dedup: str | None = None, group: str = "g") -> None:
    entry = {"QueueUrl": url, "MessageBody": body, "MessageGroupId": group}
    if dedup is not None:
        entry["MessageDeduplicationId"] = dedup
    sqs.send_message(**entry)


def test_a_duplicate_within_five_minutes_is_dropped_whatever_its_group(aws):
    sqs = aws.client("sqs")
    url = _fifo_queue(sqs)
    _send(sqs, url, "first", dedup="d1", group="a")
    _send(sqs, url, "again", dedup="d1", group="b")
    _send(sqs, url, "other", dedup="d2", group="b")
    assert _bodies(sqs, url) == ["first", "other"]


def test_a_deleted_message_no_longer_deduplicates_as_in_moto(aws):
    sqs = aws.client("sqs")
    url = _fifo_queue(sqs)
    _send(sqs, url, "first", dedup="d1")
    received = sqs.receive_message(QueueUrl=url)["Messages"][0]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=received["ReceiptHandle"])
    _send(sqs, url, "after delete", dedup="d1")
    assert _bodies(sqs, url) == ["after delete"]


def test_a_purge_forgets_the_deduplication_ids(aws):
    sqs = aws.client("sqs")
    url = _fifo_queue(sqs)
    _send(sqs, url, "first", dedup="d1")
    sqs.purge_queue(QueueUrl=url)
    _send(sqs, url, "after purge", dedup="d1")
    assert _bodies(sqs, url) == ["after purge"]


def test_content_based_deduplication_still_applies(aws):
    sqs = aws.client("sqs")
    url = _fifo_queue(sqs, content_based=True)
    _send(sqs, url, "same")
    _send(sqs, url, "same")
    _send(sqs, url, "different")
    assert _bodies(sqs, url) == ["different", "same"]


# --- UpdateExpressions parsed once per text --------------------------------------------------------------------


def _table(dynamodb) -> str:
    dynamodb.create_table(
        TableName="speed",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return "speed"


_UPDATE = "SET #f.#k = :v, #n = if_not_exists(#n, :zero) + :one REMOVE #gone"
_NAMES = {"#f": "fields", "#k": "Industry", "#n": "count", "#gone": "old"}


def _update(dynamodb, table: str, item_id: str, value: str, condition: str | None = None) -> dict:
    request = {
        "TableName": table,
        "Key": {"id": {"S": item_id}},
        "UpdateExpression": _UPDATE,
        "ExpressionAttributeNames": _NAMES,
        "ExpressionAttributeValues": {":v": {"S": value}, ":zero": {"N": "0"}, ":one": {"N": "1"}},
        "ReturnValues": "ALL_NEW",
    }
    if condition:
        request["ConditionExpression"] = condition
    return dynamodb.update_item(**request)["Attributes"]


def test_one_update_expression_text_applies_each_requests_own_values(aws):
    # given an item with a map, a counter and an attribute to remove
    dynamodb = aws.client("dynamodb")
    table = _table(dynamodb)
    dynamodb.put_item(TableName=table, Item={"id": {"S": "a"}, "fields": {"M": {}}, "old": {"S": "x"}})
    dynamodb.put_item(TableName=table, Item={"id": {"S": "b"}, "fields": {"M": {}}})
    # when the same expression text is sent again and again with other values
    first = _update(dynamodb, table, "a", "Energy")
    second = _update(dynamodb, table, "a", "Retail")
    other = _update(dynamodb, table, "b", "Media")
    # then each request applied its own values: the remembered parse is never changed by a use
    assert first == {"id": {"S": "a"}, "fields": {"M": {"Industry": {"S": "Energy"}}}, "count": {"N": "1"}}
    assert second == {"id": {"S": "a"}, "fields": {"M": {"Industry": {"S": "Retail"}}}, "count": {"N": "2"}}
    assert other == {"id": {"S": "b"}, "fields": {"M": {"Industry": {"S": "Media"}}}, "count": {"N": "1"}}


def test_a_failed_condition_and_a_bad_expression_are_refused_every_time(aws):
    dynamodb = aws.client("dynamodb")
    table = _table(dynamodb)
    dynamodb.put_item(TableName=table, Item={"id": {"S": "a"}, "fields": {"M": {}}})
    for _ in range(2):
        with pytest.raises(ClientError, match="ConditionalCheckFailed"):
            _update(dynamodb, table, "a", "Energy", condition="attribute_not_exists(#f)")
        with pytest.raises(ClientError, match="ValidationException"):
            dynamodb.update_item(
                TableName=table, Key={"id": {"S": "a"}}, UpdateExpression="SET = :v", ExpressionAttributeValues={}
            )
    # and the refused requests changed nothing
    assert dynamodb.get_item(TableName=table, Key={"id": {"S": "a"}})["Item"] == {
        "id": {"S": "a"},
        "fields": {"M": {}},
    }


def test_one_condition_text_is_judged_on_each_requests_own_names_and_values(aws):
    # given two items, one holding an older stamp than the other
    dynamodb = aws.client("dynamodb")
    table = _table(dynamodb)
    dynamodb.put_item(TableName=table, Item={"id": {"S": "a"}, "fields": {"M": {}}, "stamp": {"S": "2"}})
    dynamodb.put_item(TableName=table, Item={"id": {"S": "b"}, "fields": {"M": {}}, "stamp": {"S": "5"}})
    condition = "attribute_not_exists(#s) OR #s < :stamp"

    def write(item_id: str, stamp: str, attribute: str = "stamp") -> bool:
        try:
            dynamodb.update_item(
                TableName=table,
                Key={"id": {"S": item_id}},
                UpdateExpression="SET #f.#k = :v",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#f": "fields", "#k": "Industry", "#s": attribute},
                ExpressionAttributeValues={":v": {"S": stamp}, ":stamp": {"S": stamp}},
            )
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
            return False
        return True

    # when the same condition text is sent with other values, and other names, again and again
    # then each request is judged on its own: a newer stamp passes, an older one fails, another attribute passes
    assert [write("a", "3"), write("b", "3"), write("b", "6"), write("a", "1"), write("a", "1", "other")] == [
        True,
        False,
        True,
        False,
        True,
    ]
    # and a condition that does not lex is refused every time (in-process moto raises its lexer's own error)
    for _ in range(2):
        with pytest.raises((ClientError, ValueError), match=r"ValidationException|Cannot parse"):
            dynamodb.update_item(
                TableName=table,
                Key={"id": {"S": "a"}},
                UpdateExpression="SET #f = :v",
                ConditionExpression="#f ! :v",
                ExpressionAttributeNames={"#f": "flag"},
                ExpressionAttributeValues={":v": {"S": "x"}},
            )


def _table_with_a_group_index(dynamodb: Any, table: str, projection: dict[str, Any]) -> None:
    """A table keyed by `id` with an index `by_group` (`group`, `id`) projecting `projection`."""
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "group", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_group",
                "KeySchema": [
                    {"AttributeName": "group", "KeyType": "HASH"},
                    {"AttributeName": "id", "KeyType": "RANGE"},
                ],
                "Projection": projection,
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


# --- an item projected from one conversion ------------------------------------------------------------------------


def test_an_index_and_a_projection_expression_return_what_moto_returns(aws):
    # given a table whose index INCLUDEs one attribute, and an item with a map and a list
    dynamodb = aws.client("dynamodb")
    _table_with_a_group_index(dynamodb, "projected", {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["fields"]})
    item = {
        "id": {"S": "a"},
        "group": {"S": "g"},
        "fields": {"M": {"Name": {"S": "Acme"}, "Tags": {"L": [{"S": "x"}, {"S": "y"}]}}},
        "secret": {"S": "not projected"},
    }
    dynamodb.put_item(TableName="projected", Item=item)
    query = {
        "TableName": "projected",
        "KeyConditionExpression": "#g = :g",
        "ExpressionAttributeValues": {":g": {"S": "g"}},
    }
    # when it is read through the index, with top-level names, and with a nested path and a list element
    (from_index,) = dynamodb.query(**query, IndexName="by_group", ExpressionAttributeNames={"#g": "group"})["Items"]
    (names,) = dynamodb.scan(
        TableName="projected", ProjectionExpression="id, #f", ExpressionAttributeNames={"#f": "fields"}
    )["Items"]
    (nested,) = dynamodb.scan(
        TableName="projected",
        ProjectionExpression="#f.Tags[1], #f.#n, id",
        ExpressionAttributeNames={"#f": "fields", "#n": "Name"},
    )["Items"]
    # then each holds exactly what it asked for
    assert from_index == {key: item[key] for key in ("id", "group", "fields")}
    assert names == {key: item[key] for key in ("id", "fields")}
    assert nested == {"id": {"S": "a"}, "fields": {"M": {"Name": {"S": "Acme"}, "Tags": {"L": [{"S": "y"}]}}}}


def test_a_remembered_condition_still_refuses_a_value_it_does_not_use(aws):
    # given a conditional update whose condition and update share one request's values
    dynamodb = aws.client("dynamodb")
    table = _table(dynamodb)
    dynamodb.put_item(TableName=table, Item={"id": {"S": "a"}, "fields": {"M": {}}, "stamp": {"S": "2"}})
    request = {
        "TableName": table,
        "Key": {"id": {"S": "a"}},
        "UpdateExpression": "SET #s = :stamp, #at = :now",
        "ConditionExpression": "#s < :stamp",
        "ExpressionAttributeNames": {"#s": "stamp", "#at": "updated_at"},
    }
    # when the condition's values stay and the update's change (a timestamp per request), it is judged each time
    dynamodb.update_item(**request, ExpressionAttributeValues={":stamp": {"S": "3"}, ":now": {"S": "t1"}})
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        dynamodb.update_item(**request, ExpressionAttributeValues={":stamp": {"S": "3"}, ":now": {"S": "t2"}})
    # and a value that nothing uses is refused, every time, as moto refuses it
    for _ in range(2):
        with pytest.raises(ClientError, match="unused"):
            dynamodb.update_item(
                **request, ExpressionAttributeValues={":stamp": {"S": "4"}, ":now": {"S": "t3"}, ":extra": {"S": "x"}}
            )
    assert dynamodb.get_item(TableName=table, Key={"id": {"S": "a"}})["Item"]["updated_at"] == {"S": "t1"}


# --- items serialized as they are -------------------------------------------------------------------------------

_EVERY_TYPE = {
    "id": {"S": "a"},
    "blank": {"S": ""},
    "number": {"N": "12.5"},
    "nothing": {"NULL": True},
    "no": {"BOOL": False},
    "strings": {"SS": ["x", "y"]},
    "numbers": {"NS": ["1", "2"]},
    "nested": {"M": {"list": {"L": [{"S": "x"}, {"M": {"n": {"N": "1"}}}, {"NULL": True}]}, "empty": {"M": {}}}},
}


def test_items_of_every_type_read_back_as_moto_serializes_them(aws, monkeypatch):
    from local_stack.moto_fixes import is_wire_attribute_value
    from moto.core.serialize import BaseJSONSerializer

    # given an item with every kind of value, and one with a binary value (moto's own path)
    dynamodb = aws.client("dynamodb")
    table = _table(dynamodb)
    dynamodb.put_item(TableName=table, Item=_EVERY_TYPE)
    dynamodb.put_item(TableName=table, Item={"id": {"S": "b"}, "blob": {"B": b"\x00\x01"}})
    assert all(is_wire_attribute_value(value) for value in _EVERY_TYPE.values())
    assert not is_wire_attribute_value({"B": "AAE="}) and not is_wire_attribute_value({"S": "x", "N": "1"})

    def reads() -> list:
        keys = [{"id": {"S": "a"}}, {"id": {"S": "b"}}]
        got = dynamodb.batch_get_item(RequestItems={table: {"Keys": keys}})["Responses"][table]
        return [
            dynamodb.get_item(TableName=table, Key=keys[0])["Item"],
            sorted(dynamodb.scan(TableName=table)["Items"], key=lambda item: item["id"]["S"]),
            sorted(got, key=lambda item: item["id"]["S"]),
        ]

    # when they are read with the fast path, and with moto's own serializer
    fast = reads()
    monkeypatch.setattr(BaseJSONSerializer, "_serialize_type_map", BaseJSONSerializer._serialize_type_map.__wrapped__)
    # then both answers are the same, and the item is the one written
    assert fast == reads()
    assert fast[0] == _EVERY_TYPE


def test_a_keys_only_index_answers_keys_counts_and_pages_and_leaves_the_items_whole(aws):
    # given a table with a keys-only index and three members of one group, each with a map
    dynamodb = aws.client("dynamodb")
    _table_with_a_group_index(dynamodb, "members", {"ProjectionType": "KEYS_ONLY"})
    items = [{"id": {"S": name}, "group": {"S": "g"}, "fields": {"M": {"Name": {"S": name.upper()}}}} for name in "abc"]
    for item in items:
        dynamodb.put_item(TableName="members", Item=item)
    query = {"TableName": "members", "IndexName": "by_group", "KeyConditionExpression": "#g = :g"}
    names, values = {"#g": "group"}, {":g": {"S": "g"}}
    # when the index is read whole, counted, and in pages of two
    whole = dynamodb.query(**query, ExpressionAttributeNames=names, ExpressionAttributeValues=values)["Items"]
    counted = dynamodb.query(**query, Select="COUNT", ExpressionAttributeNames=names, ExpressionAttributeValues=values)
    first = dynamodb.query(**query, Limit=2, ExpressionAttributeNames=names, ExpressionAttributeValues=values)
    rest = dynamodb.query(
        **query,
        Limit=2,
        ExclusiveStartKey=first["LastEvaluatedKey"],
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )
    # then it answers the keys only, in order, the count, and the pages; and every item is still whole
    assert whole == [{"id": {"S": n}, "group": {"S": "g"}} for n in "abc"]
    assert counted["Count"] == 3 and "Items" not in counted
    assert first["Items"] + rest["Items"] == whole and "LastEvaluatedKey" not in rest
    assert [dynamodb.get_item(TableName="members", Key={"id": {"S": n}})["Item"] for n in "abc"] == items


def test_an_item_is_sized_whole_and_refused_past_moto_s_limit(aws):
    dynamodb = aws.client("dynamodb")
    table = _table(dynamodb)
    # given two items of several attributes, one under moto's 405,000-byte limit and one just past it
    under = {"id": {"S": "a"}, "one": {"S": "x" * 200_000}, "two": {"S": "y" * 204_000}}
    over = {"id": {"S": "b"}, "one": {"S": "x" * 200_000}, "two": {"S": "y" * 205_000}}
    # when both are put, alone and in a batch
    dynamodb.put_item(TableName=table, Item=under)
    for attempt in (
        lambda: dynamodb.put_item(TableName=table, Item=over),
        lambda: dynamodb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": over}}]}),
    ):
        with pytest.raises(ClientError, match="Item size"):
            attempt()
    # then only the first is stored, whole
    assert dynamodb.get_item(TableName=table, Key={"id": {"S": "a"}})["Item"] == under
    assert "Item" not in dynamodb.get_item(TableName=table, Key={"id": {"S": "b"}})


# --- KMS: a symmetric key's unused RSA pair is made when first used ---


def test_the_stacks_encrypted_tables_make_no_rsa_key(aws, sam_template, monkeypatch):
    from cryptography.hazmat.primitives.asymmetric import rsa
    from local_stack.template import create_resources

    made: list[int] = []
    generate = rsa.generate_private_key
    monkeypatch.setattr(rsa, "generate_private_key", lambda *a, **kw: made.append(1) or generate(*a, **kw))
    create_resources(sam_template, aws, stage="test")
    kms = aws.client("kms")
    (alias,) = [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/aws/dynamodb"]

    key = kms.describe_key(KeyId=alias["TargetKeyId"])["KeyMetadata"]
    ciphertext = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"contact")["CiphertextBlob"]

    assert key["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert kms.decrypt(CiphertextBlob=ciphertext)["Plaintext"] == b"contact"
    assert made == []


def test_an_asymmetric_key_signs_and_verifies_as_in_moto(aws):
    kms = aws.client("kms")
    key_id = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_2048")["KeyMetadata"]["KeyId"]
    signed = kms.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]

    verified = kms.verify(KeyId=key_id, Message=b"m", Signature=signed, SigningAlgorithm="RSASSA_PSS_SHA_256")

    assert verified["SignatureValid"] is True
    assert kms.get_public_key(KeyId=key_id)["PublicKey"]


def test_a_symmetric_keys_pair_is_made_when_first_used(aws):
    from moto.kms.models import kms_backends

    kms = aws.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    key = kms_backends["123456789012"]["us-east-1"].keys[key_id]

    assert key.private_key.public_key() is not None  # what moto's GetPublicKey reads, made now


def test_a_queues_attributes_are_moto_s_own_with_the_names_converted_once(aws):
    from moto.core.utils import camelcase_to_underscores
    from moto.sqs import models

    names = ["VisibilityTimeout", "ApproximateNumberOfMessagesNotVisible", "KmsMasterKeyId", "FifoQueue", "SqsManaged"]
    assert [models.camelcase_to_underscores(name) for name in names] == [camelcase_to_underscores(n) for n in names]
    sqs = aws.client("sqs")
    url = _fifo_queue(sqs)
    _send(sqs, url, "one", dedup="d1")

    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    assert (attributes["ApproximateNumberOfMessages"], attributes["FifoQueue"]) == ("1", "true")
    assert models.camelcase_to_underscores.cache_info().hits > 0
