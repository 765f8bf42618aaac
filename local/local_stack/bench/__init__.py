"""`make bench`: what a sync costs (Salesforce API calls, DynamoDB and SQS requests, memory, time, cold start) and
how that grows with the data, each figure beside its lower bound or a baseline measured in the same run.

Requests are counted at the endpoints: the moto server of the local stack counts what it serves
(`local_stack.moto_process.RequestCounter`), the Salesforce emulator logs every call. See `cli.py` for the
options, `bench/results.md` for the last results.
"""
