"""moto in server mode: boto3 and pynamodb find it through the environment alone."""

from __future__ import annotations

import os

import boto3
import pytest
from local_stack.moto_server import MotoServer, fake_aws_env, free_port, reset_pynamodb_connections
from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model


class Note(Model):
    """A model with no `Meta.host`, as the deployed code has."""

    class Meta:
        table_name = "local-stack-notes"
        billing_mode = "PAY_PER_REQUEST"

    note_id = UnicodeAttribute(hash_key=True)
    text = UnicodeAttribute()


@pytest.fixture
def clean_env(monkeypatch):
    """No AWS variable from the host: what the server sets must be all there is, and be undone."""
    for name in fake_aws_env():
        monkeypatch.delenv(name, raising=False)
    yield
    reset_pynamodb_connections()


def test_boto3_and_pynamodb_reach_the_server_through_aws_endpoint_url(clean_env):
    # given a moto server and the environment that points at it
    with MotoServer() as server:
        server.apply_env()
        assert os.environ["AWS_ENDPOINT_URL"] == server.endpoint_url
        reset_pynamodb_connections()
        # when pynamodb creates a table and writes an item, with no host configured
        Note.create_table(wait=True)
        Note("n1", text="hello").save()
        # then pynamodb's client talks to the server, and boto3 sees the item there
        connection = Note._get_connection().connection
        assert connection.client.meta.endpoint_url == server.endpoint_url
        assert connection.client.meta.region_name == "us-east-1"
        item = boto3.client("dynamodb").get_item(TableName="local-stack-notes", Key={"note_id": {"S": "n1"}})["Item"]
        assert item["text"] == {"S": "hello"}
    # and stopping the server puts the environment back
    assert "AWS_ENDPOINT_URL" not in os.environ
    assert "AWS_ACCESS_KEY_ID" not in os.environ


def test_a_given_port_is_used_and_reset_forgets_every_resource(clean_env):
    port = free_port()
    with MotoServer(port=port) as server:
        assert server.endpoint_url == f"http://127.0.0.1:{port}"
        sqs = boto3.client(
            "sqs",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        sqs.create_queue(QueueName="local-stack-reset")
        server.reset()
        assert sqs.list_queues().get("QueueUrls", []) == []


def test_a_client_s_requests_share_its_kept_alive_connection(clean_env):
    # given a moto server and one boto3 client (a pool of connections, kept alive)
    with MotoServer() as server:
        server.apply_env()
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="kept-alive")["QueueUrl"]
        # when it sends request after request, bodies and all
        for n in range(20):
            sqs.send_message(QueueUrl=url, MessageBody=f"message {n}")
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        # then each is answered on the one connection (werkzeug alone opened one per request)
        assert len(received) == 10
        assert server.request_report()["connections"] == 1


def test_a_chunked_request_is_answered_and_its_connection_closed(clean_env):
    import http.client

    # given a request whose body comes in chunks, which the request counter does not read ahead
    with MotoServer() as server:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
        connection.request(
            "POST",
            "/",
            body=iter([b'{"QueueName": ', b'"chunked"}']),
            headers={
                "X-Amz-Target": "AmazonSQS.CreateQueue",
                "Content-Type": "application/x-amz-json-1.0",
                "Authorization": "AWS4-HMAC-SHA256 Credential=a/20261204/us-east-1/sqs/aws4_request, "
                "SignedHeaders=host, Signature=x",
            },
            encode_chunked=True,
        )
        response = connection.getresponse()
        # then it is answered, and the connection is not kept for a next request (its input may be unread)
        assert response.status == 200 and b"chunked" in response.read()
        assert response.getheader("Connection") == "close"
        connection.close()
