"""`SyncSandbox`: the local stack and the Salesforce emulator wired together, as a deployment would be.

    with SyncSandbox(parameter_overrides={"ActivityThreshold": 50}) as sandbox:
        sandbox.salesforce.create("Account", {"Name": "Acme"})
        cycle = sandbox.run_cycle()          # the schedule fires the fetch; the SQS triggers run until idle

The connected app's private key goes into Secrets Manager (on moto) under the template's secret name, the fetch
gets the emulator's token URL and CA bundle (verification stays on), and nothing leaves this machine.

With `push=True` the push path is on (issue 13): the template's `EventRelaySourceName` is the emulator's Event
Relay source, so moto's CloudFormation makes the partner event bus and its rule to the change-events queue, and the
emulator puts a Change Data Capture event for every Account and Contact change on that bus (`local_stack.
event_relay`); the push function's SQS trigger runs with the others (`drain`). `relay.faults` injects the relay's
faults (duplicates, reordering, gaps, overflow, an outage).

By default every port is free and every key new. A long-running stack (`python -m local_stack up`) fixes the
ports (`moto_port`, `salesforce_port`) and gives a `state_dir`: the emulator keeps its CA and the connected
app's key pair there across runs (`ca.pem`, `client-key.pem`, `client-cert.pem`) and writes `connection.json`,
so that another process can trust it and log in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salesforce_emulator import SalesforceEmulator, generate_client_keypair
from salesforce_emulator.change_events import EventRelay

from local_stack.event_relay import event_bridge_sink
from local_stack.sqs_poller import DrainResult
from local_stack.stack import LocalStack

CONSUMER_KEY = "3MVG9-account-sync-local"
INTEGRATION_USER = "integration@account-sync.local"


@dataclass
class CycleResult:
    """One sync cycle: what the fetch reported and what the triggers did until the queues were idle."""

    fetch: dict[str, Any]
    drain: DrainResult
    seconds: float
    salesforce_calls: int = 0


@dataclass
class SyncSandbox:
    parameter_overrides: Mapping[str, Any] = field(default_factory=dict)
    page_size: int = 2000
    visibility_timeout: int = 1
    separate_process: bool = True  # the moto server in its own process: the second core does the AWS side
    state_dir: str | Path | None = None  # the emulator's files, kept across runs (see the module docstring)
    moto_port: int | None = None  # None: a free port
    salesforce_port: int = 0  # 0: a free port
    stack: LocalStack | None = None
    push: bool = False  # the push path on: Change Data Capture through Event Relay to moto's EventBridge
    salesforce: SalesforceEmulator = field(init=False)
    relay: EventRelay | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        private_key, certificate = _client_keypair(Path(self.state_dir) if self.state_dir is not None else None)
        self._private_key = private_key
        self.salesforce = SalesforceEmulator(
            consumer_key=CONSUMER_KEY,
            username=INTEGRATION_USER,
            client_certificate_pem=certificate,
            page_size=self.page_size,
            port=self.salesforce_port,
            state_dir=self.state_dir,
        )
        if self.state_dir is not None:
            self.salesforce.client_private_key_pem = private_key  # written to the state dir as client-key.pem
        if self.push:
            # Configured before the stack (its source names the bus); it delivers once the bus exists.
            self.relay = self.salesforce.relay_change_events(sink=None)

    def start(self) -> SyncSandbox:
        import boto3

        self.salesforce.start()
        relay_source = {"EventRelaySourceName": self.relay.source} if self.relay is not None else {}
        self.stack = LocalStack(
            parameter_overrides={**relay_source, **self.parameter_overrides},
            visibility_timeout=self.visibility_timeout,
            port=self.moto_port,
            separate_process=self.separate_process,
        ).start()
        secret_name = str(self.stack.resources.parameters["SalesforceSecretName"])  # type: ignore[union-attr]
        boto3.client("secretsmanager").create_secret(
            Name=secret_name,
            SecretString=json.dumps(
                {"consumer_key": CONSUMER_KEY, "username": INTEGRATION_USER, "private_key": self._private_key}
            ),
        )
        self.stack.add_env(
            {
                "SALESFORCE_TOKEN_URL": self.salesforce.token_url,
                "SALESFORCE_CA_BUNDLE": self.salesforce.ca_bundle,
            }
        )
        if self.relay is not None:
            bus = self.stack.resources.ref("PushEventBus")  # type: ignore[union-attr]
            self.relay.sink = event_bridge_sink(boto3.client("events"), bus)
        return self

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
        self.salesforce.stop()

    def __enter__(self) -> SyncSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def local(self) -> LocalStack:
        if self.stack is None:
            raise RuntimeError("the sandbox is not started")
        return self.stack

    def run_cycle(self, on_progress: Callable[[DrainResult], None] | None = None, timeout: float = 1800) -> CycleResult:
        """One scheduled sync: the fetch, then every SQS trigger until the queues are empty."""
        started = time.monotonic()
        calls_before = self.salesforce.api_usage[0]
        fetch = self.local.run_schedule("FetchChangesFunction")
        drained = self.drain(on_progress, timeout)
        return CycleResult(
            fetch=fetch,
            drain=drained,
            seconds=time.monotonic() - started,
            salesforce_calls=self.salesforce.api_usage[0] - calls_before,
        )

    def drain(self, on_progress: Callable[[DrainResult], None] | None = None, timeout: float = 1800) -> DrainResult:
        """Run the triggers until idle, reporting progress every few rounds. `timeout` bounds the whole drain: each
        step gets what is left of it (a step given the whole of it again ran a budgeted benchmark past its budget)."""
        total = DrainResult()
        started = time.monotonic()
        while (left := timeout - (time.monotonic() - started)) > 0:
            step = self.local.drain(max_rounds=20, timeout=left)
            total.add(step)
            total.rounds += step.rounds
            if on_progress is not None:
                on_progress(total)
            if step.empty:
                total.empty = True
                break
        total.elapsed_seconds = time.monotonic() - started
        return total


def _client_keypair(state_dir: Path | None) -> tuple[str, str]:
    """The connected app's key pair: the one kept in `state_dir` if there is one, else a new one."""
    if state_dir is not None:
        key_file, cert_file = state_dir / "client-key.pem", state_dir / "client-cert.pem"
        if key_file.is_file() and cert_file.is_file():
            return key_file.read_text(), cert_file.read_text()
    return generate_client_keypair()
