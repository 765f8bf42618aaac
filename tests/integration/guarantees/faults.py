"""Faults injected under every AWS call of the process, the way the real service would answer.

moto never throttles, never fails part of a batch and never kills a Lambda: these tests do it themselves.
Every boto3 and pynamodb request goes through `botocore.client.BaseClient._make_api_call`; `FaultInjector`
wraps it, so a fault it raises is what the caller sees once the SDK's own retries are spent.

    faults.add(Fault("dynamodb", "UpdateItem", client_error("ProvisionedThroughputExceededException"),
                     when=lambda params: params["TableName"].endswith("-contacts"), times=3))
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

Params = dict[str, Any]
Call = Callable[..., Any]  # the real request (its params, or others), for a fault that changes what is sent or said
Action = Callable[[str, Params, Call], Any]


class SandboxKilled(SystemExit):
    """Lambda stopping an execution environment (a timeout, out of memory): no `except Exception` catches it."""


def client_error(code: str, message: str = "injected fault", status: int = 400) -> Action:
    """The service answers this error (after the SDK has retried, when the error is one it retries)."""

    def raise_error(operation: str, params: Params, call: Call) -> Any:
        raise ClientError(
            {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
            operation,
        )

    return raise_error


def killed(operation: str, params: Params, call: Call) -> Any:
    """The function is stopped in the middle of this request, before it is sent."""
    raise SandboxKilled(f"killed during {operation}")


class Kill:
    """An action that stops the function for good: this request and every later one fail (no `finally` of the
    code reaches AWS any more, as after a real timeout) until `FaultInjector.clear()`."""

    def __init__(self, injector: FaultInjector) -> None:
        self._injector = injector

    def __call__(self, operation: str, params: Params, call: Call) -> Any:
        self._injector.dead = True
        raise SandboxKilled(f"killed during {operation}")


@dataclass
class Fault:
    service: str  # botocore's service name: "dynamodb", "sqs"
    operation: str  # "UpdateItem", "SendMessageBatch"...
    action: Action
    when: Callable[[Params], bool] = lambda params: True
    after: int = 0  # let this many matching calls through first
    times: int | None = None  # then fire this many times (None: until removed)
    matched: int = 0
    fired: int = 0


class FaultInjector:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()  # the fan-out writes contacts from a thread pool
        self.dead = False
        original = BaseClient._make_api_call
        injector = self

        def make_api_call(client: BaseClient, operation_name: str, api_params: Params) -> Any:
            if injector.dead:
                raise SandboxKilled(f"{operation_name} after the function was killed")
            service = client.meta.service_model.service_name
            fault = injector._fault_for(service, operation_name, api_params)
            if fault is None:
                return original(client, operation_name, api_params)
            return fault.action(
                operation_name,
                api_params,
                lambda params=api_params: original(client, operation_name, params),
            )

        monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """The fix is deployed: every request goes through again."""
        with self._lock:
            self._faults.clear()
            self.dead = False

    def _fault_for(self, service: str, operation: str, params: Params) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.service != service or fault.operation != operation or not fault.when(params):
                    continue
                fault.matched += 1
                if fault.matched <= fault.after or (fault.times is not None and fault.fired >= fault.times):
                    continue
                fault.fired += 1
                return fault
        return None


def table(suffix: str) -> Callable[[Params], bool]:
    """A request on the table whose name ends with `suffix` (`-contacts`, `-activities`...)."""
    return lambda params: (
        str(params.get("TableName", "")).endswith(suffix)
        or any(str(name).endswith(suffix) for name in params.get("RequestItems", {}))
    )


def contact_key_in(contact_ids: set[str]) -> Callable[[Params], bool]:
    """An UpdateItem/GetItem on the contacts table for one of these contacts."""
    return lambda params: (
        str(params.get("TableName", "")).endswith("-contacts")
        and (params.get("Key", {}).get("contact_id", {}).get("S") in contact_ids)
    )


def account_key_in(account_ids: set[str]) -> Callable[[Params], bool]:
    return lambda params: (
        str(params.get("TableName", "")).endswith("-accounts")
        and (params.get("Key", {}).get("account_id", {}).get("S") in account_ids)
    )
