"""Which Account Sync to talk to: a deployed stack (its CloudFormation outputs, the caller's credentials) or the
local stack that `python -m local_stack up` runs (its `.local-stack/stack.json`, fake credentials, loopback only).

Every command works on a `Deployment`: resource names by the template's logical ids, and the boto3 session and
endpoint that reach them. Nothing here knows what the commands do.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# The template's outputs a command needs, by the logical id of the resource each one names.
OUTPUT_RESOURCES = {
    "AccountChangesQueueUrl": "AccountChangesQueue",
    "ActivityQueueUrl": "ActivityQueue",
    "AccountChangesDeadLetterQueueUrl": "AccountChangesDeadLetterQueue",
    "ActivityDeadLetterQueueUrl": "ActivityDeadLetterQueue",
    "ChangeEventsQueueUrl": "ChangeEventsQueue",  # the push path's queues: outputs only where it is deployed
    "ChangeEventsDeadLetterQueueUrl": "ChangeEventsDeadLetterQueue",
    "ContactsTableName": "ContactsTable",
    "AccountsTableName": "AccountsTable",
    "ActivitiesTableName": "ActivitiesTable",
    "SyncStateTableName": "SyncStateTable",
    "FetchChangesFunctionName": "FetchChangesFunction",
}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# What moto accepts: the local stack has no real credentials, and these never leave the loopback endpoint.
_FAKE_CREDENTIALS = {  # nosec B105 - moto's fake credentials, for the local stack only
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


class DeploymentNotFound(RuntimeError):
    """The stack does not exist, lacks an output a command needs, or the local stack is not running."""


@dataclass(frozen=True)
class Deployment:
    """Logical id -> physical name (table name, queue URL, function name), and how to reach them."""

    name: str
    refs: Mapping[str, str]
    region: str | None = None
    endpoint_url: str | None = None  # the local stack's moto server; None: the real AWS endpoints
    local: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def ref(self, logical_id: str) -> str:
        try:
            return self.refs[logical_id]
        except KeyError:
            raise DeploymentNotFound(f"{self.name} has no {logical_id} (is it an Account Sync stack?)") from None

    def client(self, service: str) -> Any:
        import boto3

        with self.environment():
            return boto3.session.Session(region_name=self.region).client(service, endpoint_url=self.endpoint_url)

    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        """For the local stack: fake credentials and the moto endpoint in the environment, so that boto3 and
        pynamodb made inside reach it and nothing else; for a deployed stack: nothing changes."""
        if not self.local:
            yield
            return
        assert self.endpoint_url is not None
        values = {**_FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint_url, "AWS_DEFAULT_REGION": self.region or ""}
        saved = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    @classmethod
    def from_outputs(cls, stack_name: str, outputs: Mapping[str, str], region: str | None = None) -> Deployment:
        refs = {logical_id: outputs[key] for key, logical_id in OUTPUT_RESOURCES.items() if key in outputs}
        return cls(name=f"stack {stack_name}", refs=refs, region=region)

    @classmethod
    def from_stack(cls, stack_name: str, region: str | None = None) -> Deployment:
        """A deployed stack, by name, through the caller's credentials (`cloudformation:DescribeStacks`)."""
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        cloudformation = boto3.session.Session(region_name=region).client("cloudformation")
        try:
            stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        except (ClientError, BotoCoreError) as exc:
            raise DeploymentNotFound(f"cannot read stack {stack_name}: {exc}") from None
        outputs = {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}
        return cls.from_outputs(stack_name, outputs, region=cloudformation.meta.region_name)

    @classmethod
    def from_local(cls, state_dir: str | Path = ".local-stack") -> Deployment:
        """The local stack, from the stack.json that `python -m local_stack up` writes while it runs."""
        path = Path(state_dir) / "stack.json"
        try:
            description = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DeploymentNotFound(
                f"no local stack: {path} does not exist (start one: python -m local_stack up)"
            ) from None
        except (OSError, ValueError) as exc:
            raise DeploymentNotFound(f"cannot read {path}: {exc}") from None
        if description.get("stopped_at"):
            raise DeploymentNotFound(f"the local stack of {path} stopped at {description['stopped_at']}")
        endpoint = str(description.get("endpoint_url", ""))
        parts = urlsplit(endpoint)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS or parts.port is None:
            raise DeploymentNotFound(f"{path}: the endpoint {endpoint!r} is not a local moto server")
        pid = description.get("pid")
        if isinstance(pid, int) and not _process_alive(pid):
            raise DeploymentNotFound(f"the local stack of {path} (pid {pid}) is not running")
        if not _answers(parts.hostname, parts.port):
            raise DeploymentNotFound(f"the local stack of {path} does not answer at {endpoint}")
        refs = {logical_id: str(resource["ref"]) for logical_id, resource in description["resources"].items()}
        return cls(
            name=f"local stack ({path})",
            refs=refs,
            region=description.get("region"),
            endpoint_url=endpoint,
            local=True,
            extra={"salesforce": description.get("salesforce", {}), "state_dir": str(state_dir)},
        )


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False
