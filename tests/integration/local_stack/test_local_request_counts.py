"""The moto server counts the requests it serves, per service, action and resource (what `make bench` reads)."""

from __future__ import annotations

import io
import json

import boto3
import pytest
from local_stack.moto_process import RequestCounter
from local_stack.moto_server import MotoServer, fake_aws_env, reset_pynamodb_connections


@pytest.fixture
def clean_env(monkeypatch):
    for name in fake_aws_env():
        monkeypatch.delenv(name, raising=False)
    yield
    reset_pynamodb_connections()


def _counts(server: MotoServer) -> dict[tuple[str, str, str], tuple[int, int]]:
    return {(r["service"], r["action"], r["resource"]): (r["count"], r["items"]) for r in server.request_counts()}


@pytest.mark.parametrize("separate_process", [False, True], ids=["in-process", "child-process"])
def test_requests_are_counted_per_service_action_and_resource(clean_env, separate_process):
    # given a moto server and a table and a queue on it
    with MotoServer(separate_process=separate_process) as server:
        server.apply_env()
        dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
        dynamodb.create_table(
            TableName="notes",
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        url = sqs.create_queue(QueueName="work")["QueueUrl"]
        server.reset_request_counts()
        # when a client writes, queries and sends
        dynamodb.batch_write_item(
            RequestItems={"notes": [{"PutRequest": {"Item": {"k": {"S": str(i)}}}} for i in range(25)]}
        )
        dynamodb.update_item(
            TableName="notes",
            Key={"k": {"S": "1"}},
            UpdateExpression="SET v = :v",
            ExpressionAttributeValues={":v": {"S": "x"}},
        )
        dynamodb.update_item(
            TableName="notes",
            Key={"k": {"S": "2"}},
            UpdateExpression="SET v = :v",
            ExpressionAttributeValues={":v": {"S": "x"}},
        )
        dynamodb.query(
            TableName="notes",
            KeyConditionExpression="k = :k",
            ExpressionAttributeValues={":k": {"S": "1"}},
            Select="COUNT",
        )
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "m"} for i in range(3)])
        # then the server counted each request, and the requests did their work
        assert _counts(server) == {
            ("dynamodb", "BatchWriteItem", "notes"): (1, 25),
            ("dynamodb", "UpdateItem", "notes"): (2, 0),
            ("dynamodb", "Query", "notes#COUNT"): (1, 0),
            ("sqs", "SendMessageBatch", "work"): (1, 3),
        }
        assert dynamodb.get_item(TableName="notes", Key={"k": {"S": "2"}})["Item"]["v"] == {"S": "x"}
        # and the TCP connections those requests came on are counted too
        assert server.request_report()["connections"] >= 1
        # and a reset starts from zero
        server.reset_request_counts()
        assert server.request_counts() == []


def test_a_query_protocol_action_is_read_from_the_form_body(clean_env):
    with MotoServer() as server:
        server.apply_env()
        boto3.client("sts").get_caller_identity()
        assert _counts(server) == {("sts", "GetCallerIdentity", ""): (1, 0)}


def test_the_action_parameter_of_the_query_string_and_an_unsigned_request():
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "Action=ListQueues&Version=2012-11-05"}
    assert RequestCounter.classify(environ) == (("unknown", "ListQueues", ""), 0)


def test_the_body_is_given_back_to_the_application_intact():
    seen = {}

    def app(environ, start_response):
        seen["body"] = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        start_response("200 OK", [])
        return [b""]

    body = json.dumps({"TableName": "notes", "Key": {"k": {"S": "1"}}}).encode()
    counter = RequestCounter(app)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.GetItem",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    counter(environ, lambda *args: None)
    assert seen["body"] == body
    assert counter.snapshot()[0] | {"seconds": 0} == {
        "service": "dynamodb",
        "action": "GetItem",
        "resource": "notes",
        "count": 1,
        "items": 0,
        "seconds": 0,
    }
