"""The running local stack, as other processes find it: `.local-stack/stack.json`.

`python -m local_stack up` writes the file when its stack is up (and marks it stopped when it stops); `store`,
`token` and `invoke --attach` read it:

    stack = RunningStack.connect(".local-stack")   # NoRunningStack unless an `up` answers there
    with stack.attached():                         # fake credentials, AWS_ENDPOINT_URL, the table names bound
        ...                                        # boto3 and pynamodb reach the stack's moto server, nothing else

What the file holds: the moto endpoint, the stage, the template and its parameters (the overrides and every
resolved value), every resource's logical id → type, ref and attributes (what `!Ref` and `!GetAtt` give), the
environment the running stack adds to every function (the emulator's token URL and CA bundle), and the Salesforce
emulator's url, token_url, ca_bundle and connection file. The endpoint is only ever a loopback address.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from local_stack.template import CreatedResource, Resources

if TYPE_CHECKING:
    import argparse

    from local_stack.lambda_runtime import InvocationResult
    from local_stack.sandbox import SyncSandbox

DEFAULT_STATE_DIR = Path(".local-stack")
STACK_FILE = "stack.json"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class NoRunningStack(RuntimeError):
    """There is no stack.json, the stack it describes has stopped, or its endpoint does not answer."""


def add_state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help=f"where `up` keeps stack.json and the emulator's keys (default: {DEFAULT_STATE_DIR})",
    )


def shown_path(path: str | Path) -> str:
    """A path relative to the working directory when it is under it (shorter to read and to paste)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def describe(sandbox: SyncSandbox, state_dir: Path, parameter_overrides: Mapping[str, Any]) -> dict[str, Any]:
    """What stack.json says about a started sandbox."""
    stack, salesforce = sandbox.local, sandbox.salesforce
    resources = stack.resources
    assert resources is not None
    return {
        "pid": os.getpid(),
        "started_at": _now(),
        "endpoint_url": stack.endpoint_url,
        "region": resources.region,
        "account_id": resources.account_id,
        "stage": stack.stage,
        "stack_name": resources.stack_name,
        "template": str(stack.template.path),
        "parameter_overrides": {name: str(value) for name, value in parameter_overrides.items()},
        "parameters": resources.parameters,
        "resources": {
            logical_id: {
                "type": resource.resource_type,
                "ref": resource.ref,
                "attributes": dict(resource.attributes),
                "created": resource.created,
            }
            for logical_id, resource in resources.items()
        },
        "functions": resources.functions,  # what the runtime reads of each function, as moto evaluated it
        "function_env": dict(stack.extra_env),
        "salesforce": {
            "url": salesforce.url,
            "token_url": salesforce.token_url,
            "ca_bundle": str(Path(salesforce.ca_bundle).resolve()),
            "connection_file": str((state_dir / "salesforce" / "connection.json").resolve()),
            "username": salesforce.username,
        },
    }


def write_stack_file(state_dir: Path, description: Mapping[str, Any]) -> Path:
    """Write stack.json atomically: a reader never sees half a file."""
    path = state_dir / STACK_FILE
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def mark_stopped(state_dir: Path) -> None:
    """Keep stack.json for inspection, saying that its stack is gone."""
    path = state_dir / STACK_FILE
    with contextlib.suppress(OSError, ValueError):
        description = json.loads(path.read_text(encoding="utf-8"))
        description["stopped_at"] = _now()
        write_stack_file(state_dir, description)


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


class RunningStack:
    """stack.json, read back: the resources, the environment to reach them, the emulator's files."""

    def __init__(self, path: Path, description: Mapping[str, Any]) -> None:
        self.path = path
        self.description = dict(description)
        endpoint = urlsplit(str(self.description.get("endpoint_url", "")))
        if endpoint.scheme != "http" or endpoint.hostname not in LOOPBACK_HOSTS or endpoint.port is None:
            raise NoRunningStack(f"{path}: the endpoint {endpoint.geturl()!r} is not a local moto server")
        self.host, self.port = endpoint.hostname, endpoint.port

    @classmethod
    def read(cls, state_dir: str | Path = DEFAULT_STATE_DIR) -> RunningStack:
        path = Path(state_dir) / STACK_FILE
        try:
            description = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NoRunningStack(
                f"no local stack: {path} does not exist (start one with `python -m local_stack up`)"
            ) from None
        except (OSError, ValueError) as exc:
            raise NoRunningStack(f"cannot read {path}: {exc}") from None
        return cls(path, description)

    @classmethod
    def connect(cls, state_dir: str | Path = DEFAULT_STATE_DIR) -> RunningStack:
        """The stack of stack.json if it is running; NoRunningStack, saying why, otherwise."""
        stack = cls.read(state_dir)
        stack.check_running()
        return stack

    def check_running(self) -> None:
        restart = "start it again with `python -m local_stack up`"
        if self.description.get("stopped_at"):
            stopped_at = self.description["stopped_at"]
            raise NoRunningStack(f"the local stack of {self.path} stopped at {stopped_at}; {restart}")
        pid = self.description.get("pid")
        if isinstance(pid, int) and not _process_alive(pid):
            raise NoRunningStack(f"the local stack of {self.path} (pid {pid}) is not running; {restart}")
        if not _answers(self.host, self.port):
            raise NoRunningStack(f"the local stack of {self.path} does not answer at {self.endpoint_url}; {restart}")

    @property
    def endpoint_url(self) -> str:
        return str(self.description["endpoint_url"])

    @property
    def stage(self) -> str:
        return str(self.description["stage"])

    @property
    def template_path(self) -> Path:
        return Path(self.description["template"])

    @property
    def function_env(self) -> dict[str, str]:
        """What the running stack adds to every function's environment (the emulator's URL and CA bundle)."""
        return {str(name): str(value) for name, value in (self.description.get("function_env") or {}).items()}

    @property
    def salesforce(self) -> dict[str, str]:
        return dict(self.description["salesforce"])

    def resources(self) -> Resources:
        entries = {
            logical_id: CreatedResource(
                logical_id,
                entry["type"],
                entry["ref"],
                dict(entry.get("attributes") or {}),
                bool(entry.get("created", True)),
            )
            for logical_id, entry in self.description["resources"].items()
        }
        return Resources(
            entries,
            parameters=self.description["parameters"],
            stack_name=self.description["stack_name"],
            account=self.description["account_id"],
            region=self.description["region"],
            functions=self.description.get("functions") or {},
        )

    def table_name(self, logical_id: str) -> str:
        return self.resources().table_name(logical_id)

    @contextlib.contextmanager
    def attached(self) -> Iterator[None]:
        """boto3 and pynamodb in this process reach this stack (fake credentials, its endpoint) and the models
        name its tables; all of it is put back afterwards."""
        from account_sync.adapters.dynamodb_models import ALL_MODELS, bind_table_names

        from local_stack.moto_server import apply_env, fake_aws_env, reset_pynamodb_connections

        table_names = {logical_id: model.Meta.table_name for logical_id, model in ALL_MODELS.items()}
        previous = apply_env(fake_aws_env(self.endpoint_url))
        reset_pynamodb_connections()
        try:
            bind_table_names(
                contacts=self.table_name("ContactsTable"),
                accounts=self.table_name("AccountsTable"),
                activities=self.table_name("ActivitiesTable"),
                sync_state=self.table_name("SyncStateTable"),
            )
            yield
        finally:
            apply_env(previous)
            for logical_id, model in ALL_MODELS.items():
                model.Meta.table_name = table_names[logical_id]
            reset_pynamodb_connections()

    def invoke(
        self,
        function: str,
        event: Any,
        *,
        extra_env: Mapping[str, str] | None = None,
        template: str | Path | None = None,
    ) -> InvocationResult:
        """Invoke one function in this process against this stack, as the stack's own triggers do.

        Powertools' parameter cache (the Salesforce secret, and the client that read it) lives in the shared layer:
        it is emptied before and after, so that neither this stack nor another one of this process gets the
        other's key or endpoint.
        """
        from aws_lambda_powertools.utilities import parameters

        from local_stack.lambda_runtime import LambdaRuntime
        from local_stack.template import lambda_functions, load_template

        functions = lambda_functions(load_template(template or self.template_path), self.resources())
        runtime = LambdaRuntime(functions, extra_env={**self.function_env, **(extra_env or {})})
        parameters.clear_caches()
        try:
            with self.attached():
                return runtime.invoke(function, event)
        finally:
            parameters.clear_caches()
