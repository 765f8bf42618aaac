"""Powertools' Tracer for the functions that make few, slow requests worth a subsegment each: the fetch (Salesforce
over `requests`, SQS and DynamoDB through botocore) and the HTTP API. Only botocore and requests are patched:
pynamodb sends its requests through botocore's client, so its own patch would record every request twice, and
the X-Ray SDK's other patches would import libraries we do not ship.

The fan-out and the activity log do not import this module (docs/decisions.md, "No X-Ray SDK in the queue
consumers").
"""

from aws_lambda_powertools import Tracer

tracer = Tracer(patch_modules=("botocore", "requests"))
