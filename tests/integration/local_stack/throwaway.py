"""Small templates and throwaway handlers for testing the local stack itself (not the project's functions)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from local_stack.template import Template, parse_template

# Queues for the poller tests: a standard queue and a FIFO queue, each with its dead-letter queue.
QUEUES_TEMPLATE = """
Parameters:
  Stage: {Type: String, Default: dev}
Resources:
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub poller-${Stage}-work
      VisibilityTimeout: 30
      RedrivePolicy: {deadLetterTargetArn: !GetAtt WorkDeadLetterQueue.Arn, maxReceiveCount: 3}
  WorkDeadLetterQueue:
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Sub "poller-${Stage}-work-dlq"}
  OrderedQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub poller-${Stage}-ordered.fifo
      FifoQueue: true
      VisibilityTimeout: 30
      RedrivePolicy: {deadLetterTargetArn: !GetAtt OrderedDeadLetterQueue.Arn, maxReceiveCount: 5}
  OrderedDeadLetterQueue:
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Sub "poller-${Stage}-ordered-dlq.fifo", FifoQueue: true}
  LooseQueue:  # no dead-letter queue: a message that always fails comes back forever
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Sub "poller-${Stage}-loose"}
"""

# A whole little application: a scheduled producer, an SQS consumer that writes a table and fails poison.
APP_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: dev}
  Greeting: {Type: String, Default: hello}
Globals:
  Function:
    Timeout: 5
    MemorySize: 256
    Environment:
      Variables:
        STAGE: !Ref Stage
        RESULTS_TABLE: !Ref ResultsTable
        GREETING: !Ref Greeting
Resources:
  ProducerFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub app-${Stage}-producer
      CodeUri: functions/producer/
      Handler: app.lambda_handler
      Environment:
        Variables:
          WORK_QUEUE_URL: !Ref WorkQueue
      Events:
        Tick:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(1 minute)
            Input: '{"bodies": ["one", "two", "poison"]}'
  ConsumerFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub app-${Stage}-consumer
      CodeUri: functions/consumer/
      Handler: app.lambda_handler
      Timeout: 3
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt WorkQueue.Arn
            BatchSize: 5
            FunctionResponseTypes: [ReportBatchItemFailures]
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub app-${Stage}-work
      VisibilityTimeout: 18
      RedrivePolicy: {deadLetterTargetArn: !GetAtt WorkDeadLetterQueue.Arn, maxReceiveCount: 2}
  WorkDeadLetterQueue:
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Sub "app-${Stage}-work-dlq"}
  ResultsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub app-${Stage}-results
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
"""

PRODUCER = """
import json
import os

import boto3


def lambda_handler(event, context):
    sqs = boto3.client("sqs")
    for body in event["bodies"]:
        sqs.send_message(QueueUrl=os.environ["WORK_QUEUE_URL"], MessageBody=body)
    return {"sent": len(event["bodies"]), "function": context.function_name}
"""

CONSUMER = """
import os

import boto3

TABLE = boto3.resource("dynamodb").Table(os.environ["RESULTS_TABLE"])  # created once per cold start


def lambda_handler(event, context):
    failures = []
    for record in event["Records"]:
        if record["body"] == "poison":
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        TABLE.put_item(Item={"id": record["body"], "greeting": os.environ["GREETING"]})
    return {"batchItemFailures": failures}
"""


def template_from(text: str, base_dir: Path | None = None) -> Template:
    """A template from YAML text; its CodeUri paths are relative to `base_dir`."""
    body = parse_template(textwrap.dedent(text))
    return Template(body, (base_dir or Path.cwd()) / "template.yaml")


def write_function(root: Path, name: str, source: str) -> Path:
    """functions/<name>/app.py under `root`, as the project lays its functions out."""
    code_dir = root / "functions" / name
    code_dir.mkdir(parents=True, exist_ok=True)
    (code_dir / "app.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return code_dir


def write_app(root: Path) -> Path:
    """The little application of APP_TEMPLATE on disk; returns its template path."""
    write_function(root, "producer", PRODUCER)
    write_function(root, "consumer", CONSUMER)
    path = root / "template.yaml"
    path.write_text(textwrap.dedent(APP_TEMPLATE), encoding="utf-8")
    return path


def bodies(event: dict[str, Any]) -> list[str]:
    return [record["body"] for record in event["Records"]]
