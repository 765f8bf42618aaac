"""`LocalStack`: the whole template on an embedded moto server, with the functions running in-process.

    with LocalStack(extra_env={"SALESFORCE_INSTANCE_URL": emulator.url}) as stack:
        stack.run_schedule("FetchChangesFunction")      # what EventBridge would do
        totals = stack.drain()                          # what the SQS triggers would do, until the queues are empty
        stack.invoke("fan_out", event)                  # one function by logical id, folder or function name
        stack.run_event_invocations()                   # what the functions invoked asynchronously, in order

Starting it: a moto server on 127.0.0.1 (a free port), the environment that points boto3 and pynamodb at it
(`AWS_ENDPOINT_URL`, fake credentials, us-east-1), every table and queue of template.yaml (stage "local"), the
union of the functions' environments on `os.environ` (plus `extra_env`, which wins), and one poller per SQS
event source. Stopping it stops the server and puts `os.environ` back as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local_stack.lambda_runtime import InvocationResult, LambdaRuntime
from local_stack.moto_server import MotoServer, apply_env, reset_pynamodb_connections
from local_stack.resources import AwsClients, Resources
from local_stack.sqs_poller import DrainResult, SqsEventSourcePoller, drain
from local_stack.template import Template, create_resources, lambda_functions, load_template, union_environment
from local_stack.triggers import ScheduleTarget, schedule_targets, sqs_event_sources

logger = logging.getLogger(__name__)


class LocalStack:
    """The template's resources on moto and its functions in-process; see the module docstring.

    `visibility_timeout` overrides the queues' visibility timeout for the pollers (real Lambda uses the
    queue's: 540 s for the account-changes queue), so that failed messages come back within a demo; None keeps
    the queue's value.
    """

    def __init__(
        self,
        template: Template | str | Path | None = None,
        *,
        stage: str = "local",
        parameter_overrides: Mapping[str, Any] | None = None,
        extra_env: Mapping[str, str] | None = None,
        visibility_timeout: int | None = 1,
        port: int | None = None,
        separate_process: bool = False,
    ) -> None:
        self.template = template if isinstance(template, Template) else load_template(template)
        self.stage = stage
        self.parameter_overrides = dict(parameter_overrides or {})
        self.extra_env: dict[str, str] = {name: str(value) for name, value in (extra_env or {}).items()}
        self.visibility_timeout = visibility_timeout
        self.server = MotoServer(port=port, separate_process=separate_process)
        self.resources: Resources | None = None
        self.runtime: LambdaRuntime | None = None
        self.pollers: dict[str, SqsEventSourcePoller] = {}
        self.clients: AwsClients | None = None
        self._previous_env: dict[str, str | None] = {}

    # --- life cycle ---

    def start(self) -> LocalStack:
        import boto3

        self.server.start()
        try:
            self._set_env(self.server.env)
            reset_pynamodb_connections()
            session = boto3.session.Session(region_name="us-east-1")
            self.clients = AwsClients.from_any(session)
            self.resources = create_resources(self.template, self.clients, self.stage, self.parameter_overrides)
            self._set_env(union_environment(self.template, self.resources))
            self._set_env(self.extra_env)
            self.runtime = LambdaRuntime(lambda_functions(self.template, self.resources), extra_env=self.extra_env)
            self.pollers = self._make_pollers()
        except BaseException:
            self.stop()
            raise
        logger.info("local stack up at %s: %s", self.server.endpoint_url, self.resources.refs())
        return self

    def stop(self) -> None:
        if self.server.port is not None and not self.server.separate_process and self.resources is not None:
            # a moto server in a thread keeps its resources in this process's moto backends, which the next
            # stack of this process would find (its CloudFormation stack "already exists"): forget them
            self.server.reset()
        self.server.stop()
        apply_env(self._previous_env)
        self._previous_env = {}
        reset_pynamodb_connections()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    def add_env(self, variables: Mapping[str, str]) -> None:
        """More environment for every function and for this process (e.g. an emulator's settings)."""
        values = {name: str(value) for name, value in variables.items()}
        self.extra_env.update(values)
        self._set_env(values)
        if self.runtime is not None:
            self.runtime.add_env(values)

    # --- running functions ---

    def invoke(self, function: str, event: Any = None) -> Any:
        """Invoke a function synchronously; its response, or `LambdaInvocationError` if it failed."""
        return self.invoke_result(function, event).raise_for_error()

    def invoke_result(self, function: str, event: Any = None) -> InvocationResult:
        """Invoke a function synchronously; the whole `InvocationResult`, error or not."""
        return self._runtime.invoke(function, {} if event is None else event)

    def run_schedule(self, function: str) -> Any:
        """Invoke a function the way its Schedule/ScheduleV2 event would."""
        target = self.schedule(function)
        return self.invoke(target.function_logical_id, target.event(account=self._resources.account_id))

    def run_event_invocations(self, limit: int | None = None) -> list[InvocationResult]:
        """Run what the functions invoked asynchronously (a paused fetch's next run), as Lambda's event queue
        would: in order, one after the other, those they queue included (`LambdaRuntime.run_event_invocations`)."""
        return self._runtime.run_event_invocations(limit)

    def schedule(self, function: str) -> ScheduleTarget:
        logical_id = self._runtime.spec(function).logical_id
        for target in schedule_targets(self._resources):
            if target.function_logical_id == logical_id:
                return target
        raise KeyError(f"{logical_id} has no Schedule or ScheduleV2 event")

    def drain(self, **options: Any) -> DrainResult:
        """Run every SQS trigger until every source queue is empty (see `sqs_poller.drain`)."""
        return drain(self.pollers.values(), **options)

    # --- internals ---

    @property
    def _runtime(self) -> LambdaRuntime:
        if self.runtime is None:
            raise RuntimeError("the local stack is not started")
        return self.runtime

    @property
    def _resources(self) -> Resources:
        if self.resources is None:
            raise RuntimeError("the local stack is not started")
        return self.resources

    def _set_env(self, values: Mapping[str, str | None]) -> None:
        previous = apply_env(values)
        for name, value in previous.items():
            self._previous_env.setdefault(name, value)

    def _make_pollers(self) -> dict[str, SqsEventSourcePoller]:
        assert self.clients is not None
        resources = self._resources
        pollers = {}
        for source in sqs_event_sources(self.template, resources):
            if not source.enabled:
                continue
            if source.queue_logical_id is None:
                logger.warning("%s: queue %s is outside the template: no trigger", source.event_name, source.queue_arn)
                continue
            runtime, function = self._runtime, source.function_logical_id

            def invoke(event: dict[str, Any], runtime: LambdaRuntime = runtime, function: str = function) -> Any:
                return runtime.invoke(function, event).raise_for_error()

            pollers[f"{function}.{source.event_name}"] = SqsEventSourcePoller(
                self.clients.sqs,
                resources.queue_url(source.queue_logical_id),
                resources.queue_arn(source.queue_logical_id),
                invoke,
                batch_size=source.batch_size,
                report_batch_item_failures=source.report_batch_item_failures,
                visibility_timeout=self.visibility_timeout,
                region=resources.region,
                name=f"{function}.{source.event_name}",
            )
        return pollers
