"""What a local stack holds: each template resource's `Ref` and attributes, and what its functions need to run.

`template.create_resources` makes one from moto's CloudFormation stack; `running.RunningStack` from stack.json.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account


@dataclass(frozen=True)
class CreatedResource:
    """One template resource as the local stack holds it: `ref` is what `!Ref` returns (a table name, a queue URL,
    a function name), `attributes` what `!GetAtt` does. Functions run in-process: `created` is False for them."""

    logical_id: str
    resource_type: str
    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    created: bool = True

    @property
    def arn(self) -> str:
        return self.attributes["Arn"]


class Resources(Mapping[str, CreatedResource]):
    """Logical id → `CreatedResource`, with the parameter values and each function's properties as moto evaluated
    them (`functions`: what the runtime reads, its environment variables as strings)."""

    def __init__(
        self,
        entries: Mapping[str, CreatedResource],
        *,
        parameters: Mapping[str, str | list[str]],
        stack_name: str,
        account: str = DEFAULT_ACCOUNT_ID,
        region: str = REGION,
        functions: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self._entries, self.parameters, self.stack_name = dict(entries), dict(parameters), stack_name
        self.account_id, self.region = account, region
        self.functions = {lid: dict(props) for lid, props in (functions or {}).items()}

    def __getitem__(self, logical_id: str) -> CreatedResource:
        try:
            return self._entries[logical_id]
        except KeyError:
            raise KeyError(f"{logical_id} is not a resource of the local stack") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Resources({self.refs()!r})"

    @property
    def environments(self) -> dict[str, dict[str, str]]:
        """Each function's environment variables, Globals merged."""
        return {
            lid: dict((props.get("Environment") or {}).get("Variables") or {}) for lid, props in self.functions.items()
        }

    def ref(self, logical_id: str) -> str:
        return self[logical_id].ref

    table_name = queue_url = ref

    def queue_arn(self, logical_id: str) -> str:
        return self[logical_id].arn

    def of_type(self, resource_type: str) -> dict[str, CreatedResource]:
        return {lid: res for lid, res in self._entries.items() if res.resource_type == resource_type}

    def refs(self) -> dict[str, str]:
        """Logical id → table name / queue URL / function name, e.g. to print what a stack holds."""
        return {lid: res.ref for lid, res in self._entries.items()}


class AwsClients:
    """The clients the local stack needs (CloudFormation, SQS), each made when first used: a client costs botocore a
    read of its service model. Sessions (and None: boto3's default) follow the environment, so `AWS_ENDPOINT_URL`
    sends them to a moto server, and under `mock_aws()` they stay in-process."""

    def __init__(self, session: Any = None, **clients: Any) -> None:
        self._session, self._clients = session, dict(clients)

    def _client(self, name: str) -> Any:
        if name not in self._clients:
            import boto3

            self._clients[name] = (self._session or boto3.session.Session()).client(name, region_name=REGION)
        return self._clients[name]

    @property
    def sqs(self) -> Any:
        return self._client("sqs")

    @property
    def cloudformation(self) -> Any:
        return self._client("cloudformation")

    @property
    def events(self) -> Any:
        return self._client("events")

    @classmethod
    def from_any(cls, session_or_clients: Any = None) -> AwsClients:
        """Accept AwsClients, a mapping {"sqs": client, ...}, a boto3 Session or None."""
        if isinstance(session_or_clients, AwsClients):
            return session_or_clients
        if isinstance(session_or_clients, Mapping):
            return cls(None, **session_or_clients)
        return cls(session_or_clients)
