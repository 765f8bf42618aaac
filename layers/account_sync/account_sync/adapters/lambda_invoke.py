"""The fetch's next run started at once: an asynchronous invocation (`InvocationType=Event`) of its own function.

Lambda queues the event and answers 202 without waiting for the run. With `ReservedConcurrentExecutions` 1 the new
run cannot overlap this one: an invocation while it still runs is throttled and retried by Lambda's asynchronous
queue, and the lease (released before this call) makes a run that finds another one active do nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from account_sync.ports import ContinuationFailed


class LambdaRunContinuation:
    """`make_client` builds the Lambda client at the first continuation: a run that never pauses (every regular
    run) never pays for it at its cold start."""

    def __init__(self, function_name: str, make_client: Callable[[], Any]) -> None:
        self._function_name = function_name
        self._make_client = make_client
        self._client: Any = None

    def start_next_run(self, event: Mapping[str, object]) -> None:
        try:
            if self._client is None:
                self._client = self._make_client()
            response = self._client.invoke(
                FunctionName=self._function_name, InvocationType="Event", Payload=json.dumps(event).encode()
            )
        except (ClientError, BotoCoreError) as exc:
            raise ContinuationFailed(f"the next run could not be invoked: {exc}") from exc
        if response.get("StatusCode") != 202:
            raise ContinuationFailed(f"the next run was not queued: status {response.get('StatusCode')}")
