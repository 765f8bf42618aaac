"""The local world's DynamoDB throttling answers as DynamoDB does: per partition key, per table, and BatchWriteItem
with `UnprocessedItems` (local_stack.dynamodb_throttling). A clock that stands still keeps the buckets empty."""

from __future__ import annotations

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from local_stack.dynamodb_throttling import DynamoThrottle

TABLE = "t-contacts"
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def dynamodb(aws):
    client = aws.client("dynamodb", config=NO_RETRIES)
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "contact_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "contact_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


def put(client, contact_id: str) -> None:
    client.put_item(TableName=TABLE, Item={"contact_id": {"S": contact_id}})


def error_code(call) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


def test_a_hot_partition_key_is_refused_while_other_keys_are_written(dynamodb):
    # given a partition key that takes 2 writes a second, and a clock that stands still
    with DynamoThrottle(partition_writes=2, clock=lambda: 0.0).installed() as throttle:
        put(dynamodb, "hot")
        put(dynamodb, "hot")
        # when it is written a third time, then another key once
        code = error_code(lambda: put(dynamodb, "hot"))
        put(dynamodb, "cold")
    # then the third write is refused as DynamoDB refuses it, and the other key is written
    assert code == "ProvisionedThroughputExceededException"
    assert throttle.throttled == {("ProvisionedThroughputExceededException", TABLE): 1}
    assert dynamodb.scan(TableName=TABLE)["Count"] == 2


def test_a_table_past_its_rate_answers_throttling_exception(dynamodb):
    with DynamoThrottle(partition_writes=None, table_writes=3, clock=lambda: 0.0).installed():
        for n in range(3):
            put(dynamodb, f"c{n}")
        assert error_code(lambda: put(dynamodb, "c4")) == "ThrottlingException"
        # reads are metered apart: a read still goes through
        assert dynamodb.get_item(TableName=TABLE, Key={"contact_id": {"S": "c0"}})["Item"]


def test_the_buckets_refill_with_time(dynamodb):
    now = [0.0]
    with DynamoThrottle(partition_writes=1, clock=lambda: now[0]).installed():
        put(dynamodb, "hot")
        assert error_code(lambda: put(dynamodb, "hot")) == "ProvisionedThroughputExceededException"
        now[0] = 1.0
        put(dynamodb, "hot")


def test_batch_write_item_returns_the_throttled_items_unprocessed_and_writes_the_others(dynamodb):
    requests = [{"PutRequest": {"Item": {"contact_id": {"S": f"c{n}"}}}} for n in range(5)]
    with DynamoThrottle(partition_writes=None, table_writes=3, clock=lambda: 0.0).installed() as throttle:
        response = dynamodb.batch_write_item(RequestItems={TABLE: requests})
        # and a batch of which nothing can be taken fails as a whole
        code = error_code(lambda: dynamodb.batch_write_item(RequestItems={TABLE: requests[:1]}))
    assert response["UnprocessedItems"] == {TABLE: requests[3:]}
    assert sorted(i["contact_id"]["S"] for i in dynamodb.scan(TableName=TABLE)["Items"]) == ["c0", "c1", "c2"]
    assert code == "ProvisionedThroughputExceededException"
    assert throttle.throttled[("unprocessed", TABLE)] == 3


def test_the_sdk_retries_a_throttled_request_itself(aws, dynamodb, monkeypatch):
    # given the SDK's standard retries (4 attempts, backoff scaled down) and a bucket that refills between attempts
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setitem(ExponentialBackoff._DEFAULT_BACKOFF_CONFIG, "throttling_base_scale", 0.001)
    retrying = aws.client("dynamodb", config=Config(retries={"mode": "standard", "total_max_attempts": 4}))
    ticks = iter([0.0, 0.0, 0.1, 0.2, 1.5])
    with DynamoThrottle(partition_writes=1, clock=lambda: next(ticks)).installed() as throttle:
        put(retrying, "hot")
        put(retrying, "hot")  # refused at 0.0, 0.1, 0.2 s, taken at its fourth attempt (1.5 s): no error
    assert throttle.total_throttled == 3


def test_nothing_is_metered_once_uninstalled(dynamodb):
    throttle = DynamoThrottle(partition_writes=1, clock=lambda: 0.0)
    with throttle.installed():
        put(dynamodb, "hot")
    put(dynamodb, "hot")
    put(dynamodb, "hot")
    assert throttle.total_throttled == 0
