"""Runs Lambda handlers in-process, the way the Lambda Python runtime does.

* Cold and warm starts: a function's handler file (every function's is `app.py`) is loaded by path under a
  module name of its own, once, on its first invocation; later invocations reuse the module, its globals and
  the clients it created. A failed initialisation, or a timeout, throws the execution environment away: the
  next invocation is cold again, as on Lambda.
* The event and the response are JSON round-tripped, so a handler gets plain JSON types and a response Lambda
  could not serialise is an error (`Runtime.MarshalError`), not a silent success.
* The context is shaped like the runtime's (`awslambdaric`): `function_name`, `function_version`,
  `invoked_function_arn`, `memory_limit_in_mb` (a string, as there), `aws_request_id`, `log_group_name`,
  `log_stream_name`, `get_remaining_time_in_millis()` counting down from the function's Timeout.
* During an invocation, `os.environ` holds the function's own environment (template variables, then the
  runtime's `extra_env`, then Lambda's reserved variables such as `AWS_LAMBDA_FUNCTION_NAME`), and the code
  folder is first on `sys.path`; both are put back afterwards. `AWS_SAM_LOCAL=true` is set as `sam local`
  does, which tells Powertools' Tracer to switch itself off (there is no X-Ray daemon here).
* Lambda kills an invocation at its Timeout: nothing after that point lands. A thread cannot be stopped
  in-process, so every AWS request (botocore's `BaseClient._make_api_call`, wrapped once at import) made by the
  invocation past its deadline raises `FunctionKilled` (a `SystemExit`: no `except Exception` of the handler
  catches it), from the handler's thread and from every thread the invocation started (an executor's writers);
  those threads stay dead after the invocation, as the environment does. The invocation is reported as
  `Sandbox.Timedout` and the environment thrown away. A handler that runs late without calling AWS again writes
  nothing more either: its result is discarded, as on Lambda. `kill_at_timeout=False` restores the old
  behaviour (a late handler finishes its writes).
* An asynchronous invocation (`Invoke` with `InvocationType=Event`, as the fetch starts its next run) of a function
  the runtime holds is queued here instead of going to moto (whose Lambda runs no code here), answered 202 as
  Lambda does; `run_event_invocations()` runs the queue in order, each one after the other, as a function of
  reserved concurrency 1 would (what a run queues while it runs is run next). Not like Lambda: a failed one is not
  retried (Lambda retries twice), and nothing runs them unless asked (the caller is Lambda's event queue).
* botocore's parser takes DynamoDB's wire-form attribute values as they are (`botocore_wire`: the same result,
  a fifth of the fan-out's CPU here); nothing of it runs on AWS.

Not like Lambda: all functions share one interpreter, so modules of the shared layer (imported by plain name)
are shared by every function. A module-level cache in the layer filled by one function is seen by the others;
keep per-function state in the handler module, or key it by function.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from local_stack.botocore_wire import apply_botocore_wire_speedup

logger = logging.getLogger(__name__)


def handler_location(code_dir: Path, handler: str) -> tuple[Path, str]:
    """`app.lambda_handler` in `functions/fan_out/` → (`functions/fan_out/app.py`, "lambda_handler")."""
    module, dot, function = handler.rpartition(".")
    if not dot or not module or not function:
        raise ValueError(f"handler {handler!r} is not <module>.<function>")
    return code_dir / (module.replace(".", "/") + ".py"), function


@dataclass(frozen=True)
class FunctionSpec:
    """What the runtime needs to know about one function (built from the template by `template.py`)."""

    logical_id: str
    function_name: str
    code_dir: Path
    handler: str = "app.lambda_handler"
    timeout: int = 3
    memory_size: int = 128
    runtime: str = "python3.13"
    environment: Mapping[str, str] = field(default_factory=dict)
    layer_dirs: tuple[Path, ...] = ()
    region: str = "us-east-1"
    account_id: str = "123456789012"
    log_group: str | None = None  # LoggingConfig.LogGroup; Lambda's default otherwise

    @property
    def log_group_name(self) -> str:
        return self.log_group or f"/aws/lambda/{self.function_name}"

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def handler_file(self) -> Path:
        return handler_location(self.code_dir, self.handler)[0]

    @property
    def handler_function(self) -> str:
        return handler_location(self.code_dir, self.handler)[1]


class LambdaContext:
    """The context object the Lambda Python runtime passes to a handler."""

    def __init__(self, spec: FunctionSpec, *, log_stream_name: str, aws_request_id: str | None = None) -> None:
        self.function_name = spec.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        self.memory_limit_in_mb = str(spec.memory_size)
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.log_group_name = spec.log_group_name
        self.log_stream_name = log_stream_name
        self.identity: Any = None
        self.client_context: Any = None
        self.tenant_id: str | None = None
        self._deadline_ms = int(time.time() * 1000) + spec.timeout * 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def __repr__(self) -> str:
        return (
            f"LambdaContext(function_name={self.function_name!r}, aws_request_id={self.aws_request_id!r}, "
            f"remaining_ms={self.get_remaining_time_in_millis()})"
        )


@dataclass(frozen=True)
class InvocationResult:
    """One invocation: the response (`payload`) or Lambda's error payload (`error`, and `payload` too)."""

    logical_id: str
    function_name: str
    request_id: str
    payload: Any
    error: Mapping[str, Any] | None
    duration_ms: float
    cold_start: bool

    @property
    def ok(self) -> bool:
        return self.error is None

    def raise_for_error(self) -> Any:
        """The response, or `LambdaInvocationError` when the function failed."""
        if self.error is not None:
            raise LambdaInvocationError(self)
        return self.payload


class LambdaInvocationError(RuntimeError):
    """A function returned an error (raised, timed out, failed to initialise or to marshal its response)."""

    def __init__(self, result: InvocationResult) -> None:
        error = result.error or {}
        super().__init__(f"{result.logical_id}: {error.get('errorType')}: {error.get('errorMessage')}")
        self.result = result


@dataclass
class FunctionStats:
    invocations: int = 0
    errors: int = 0
    cold_starts: int = 0
    timeouts: int = 0


@dataclass
class _ExecutionEnvironment:
    module: ModuleType
    handler: Callable[[Any, Any], Any]
    log_stream_name: str


class _InitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _module_name(spec: FunctionSpec) -> str:
    stem = re.sub(r"\W", "_", spec.handler.rpartition(".")[0])
    function = re.sub(r"\W", "_", spec.logical_id)
    return f"_lambda_{function}__{stem}"


@contextmanager
def _environ(overlay: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in overlay}
    os.environ.update(overlay)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _code_on_path(code_dir: Path) -> Iterator[None]:
    entry = str(code_dir)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with suppress(ValueError):
            sys.path.remove(entry)


class FunctionKilled(SystemExit):
    """Lambda stopping an invocation at its timeout: this request, and every later one of the invocation's
    threads, never reaches AWS."""


class _Invocation:
    """The threads of one invocation and its deadline (time.monotonic)."""

    def __init__(self, deadline: float, environment_threads: weakref.WeakSet[threading.Thread]) -> None:
        self.deadline = deadline
        self.handler_thread = threading.current_thread()
        self.before = weakref.WeakSet(threading.enumerate())
        self.environment_threads = environment_threads
        self.killed = False

    def owns(self, thread: threading.Thread) -> bool:
        return thread is self.handler_thread or thread in self.environment_threads or thread not in self.before

    def started_threads(self) -> list[threading.Thread]:
        return [thread for thread in threading.enumerate() if thread not in self.before]


_current_invocation: _Invocation | None = None
_killed_threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


def _install_deadline_guard() -> None:
    """Wrap botocore's `_make_api_call` so that a request made past the running invocation's deadline, or from a
    thread of a killed invocation, never goes out (see the module docstring)."""
    from botocore.client import BaseClient

    original = BaseClient._make_api_call
    if getattr(original, "_lambda_deadline_guard", False):
        return

    def _make_api_call(client: Any, operation_name: str, api_params: Any) -> Any:
        thread = threading.current_thread()
        if thread in _killed_threads:
            raise FunctionKilled(f"{operation_name} from a thread of an invocation killed at its timeout")
        invocation = _current_invocation
        if invocation is not None and time.monotonic() > invocation.deadline and invocation.owns(thread):
            invocation.killed = True
            raise FunctionKilled(f"{operation_name} after the function's timeout")
        return original(client, operation_name, api_params)

    _make_api_call._lambda_deadline_guard = True  # type: ignore[attr-defined]
    BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]


_runtimes: list[weakref.ref[LambdaRuntime]] = []  # newest last: an event invocation goes to the newest that knows


def _function_name(identifier: str) -> str:
    """A function's name from what `Invoke` takes: a name, a full or partial ARN, with or without a qualifier."""
    name = identifier.split(":function:")[-1] if ":function:" in identifier else identifier
    return name.split(":")[0]


def _install_event_invocation_route() -> None:
    """Wrap botocore's `_make_api_call` so that `Invoke` with `InvocationType=Event` of a function a runtime holds
    is queued on that runtime (see the module docstring). Installed before the deadline guard, so that the guard
    (outermost) still stops an invocation killed at its timeout from queueing anything."""
    from botocore.client import BaseClient

    original = BaseClient._make_api_call
    if getattr(original, "_lambda_event_route", False):
        return

    def _make_api_call(client: Any, operation_name: str, api_params: Any) -> Any:
        if (
            operation_name == "Invoke"
            and client.meta.service_model.service_name == "lambda"
            and api_params.get("InvocationType") == "Event"
        ):
            name = _function_name(str(api_params["FunctionName"]))
            for ref in reversed(_runtimes):
                runtime = ref()
                if runtime is not None and runtime.knows(name):
                    payload = api_params.get("Payload") or b"{}"
                    runtime.queue_event_invocation(name, json.loads(payload))
                    return {"StatusCode": 202, "ResponseMetadata": {"HTTPStatusCode": 202}}
        return original(client, operation_name, api_params)

    _make_api_call._lambda_event_route = True  # type: ignore[attr-defined]
    BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]


class LambdaRuntime:
    """Invokes the functions it is given, keeping one execution environment per function.

    `invoke(name, event)` accepts a function's logical id (`FanOutFunction`), its code folder (`fan_out`) or its
    function name (`account-sync-local-fan-out`). `extra_env` is laid over every function's environment (the
    hook for local settings such as an emulator's URL); change it with `add_env`.
    """

    def __init__(
        self,
        functions: Iterable[FunctionSpec] | Mapping[str, FunctionSpec],
        *,
        extra_env: Mapping[str, str] | None = None,
        kill_at_timeout: bool = True,
    ) -> None:
        specs = functions.values() if isinstance(functions, Mapping) else functions
        self.kill_at_timeout = kill_at_timeout
        self._specs: dict[str, FunctionSpec] = {spec.logical_id: spec for spec in specs}
        self.extra_env: dict[str, str] = dict(extra_env or {})
        self.stats: dict[str, FunctionStats] = {logical_id: FunctionStats() for logical_id in self._specs}
        self._environments: dict[str, _ExecutionEnvironment] = {}
        self._environment_threads: dict[str, weakref.WeakSet[threading.Thread]] = {}
        self._lock = threading.RLock()
        self._event_invocations: deque[tuple[str, Any]] = deque()
        _install_event_invocation_route()
        _runtimes.append(weakref.ref(self))
        if kill_at_timeout:
            _install_deadline_guard()
        apply_botocore_wire_speedup()  # the functions' DynamoDB responses parsed cheaper, the same (botocore_wire)

    @property
    def functions(self) -> dict[str, FunctionSpec]:
        return dict(self._specs)

    def spec(self, name: str) -> FunctionSpec:
        if name in self._specs:
            return self._specs[name]
        for spec in self._specs.values():
            if name in (spec.function_name, spec.code_dir.name):
                return spec
        raise KeyError(f"no function {name!r}; known: {', '.join(sorted(self._specs))}")

    def knows(self, name: str) -> bool:
        try:
            self.spec(name)
        except KeyError:
            return False
        return True

    def queue_event_invocation(self, name: str, event: Any) -> None:
        """An asynchronous invocation, run by `run_event_invocations` (Lambda's event queue)."""
        self._event_invocations.append((self.spec(name).logical_id, json.loads(json.dumps(event))))

    @property
    def pending_event_invocations(self) -> int:
        return len(self._event_invocations)

    def run_event_invocations(self, limit: int | None = None) -> list[InvocationResult]:
        """Run the queued asynchronous invocations in order, one after the other, including those they queue,
        until none is left (or `limit` have run); their results."""
        results = []
        while self._event_invocations and (limit is None or len(results) < limit):
            function, event = self._event_invocations.popleft()
            results.append(self.invoke(function, event))
        return results

    def add_env(self, variables: Mapping[str, str]) -> None:
        self.extra_env.update({name: str(value) for name, value in variables.items()})

    def reset(self, name: str | None = None) -> None:
        """Throw execution environments away: the next invocation is a cold start."""
        with self._lock:
            for logical_id in [self.spec(name).logical_id] if name else list(self._environments):
                environment = self._environments.pop(logical_id, None)
                if environment is not None:
                    sys.modules.pop(environment.module.__name__, None)

    def invoke(self, name: str, event: Any) -> InvocationResult:
        spec = self.spec(name)
        payload_in = json.loads(json.dumps(event))  # a caller's non-JSON event is the caller's bug: TypeError
        with self._lock:
            stats = self.stats[spec.logical_id]
            stats.invocations += 1
            request_id = str(uuid.uuid4())
            cold_start = spec.logical_id not in self._environments
            started = time.monotonic()
            error: dict[str, Any] | None = None
            payload: Any = None
            invocation = self._start_invocation(spec, started)
            with _environ(self._invocation_env(spec)), _code_on_path(spec.code_dir):
                try:
                    environment = self._environment(spec, cold_start)
                    context = LambdaContext(
                        spec, log_stream_name=environment.log_stream_name, aws_request_id=request_id
                    )
                    response = environment.handler(payload_in, context)
                    payload = self._marshal(response)
                except _InitError as exc:
                    error = {"errorMessage": str(exc), "errorType": exc.error_type, "requestId": request_id}
                    logger.warning("%s: %s", spec.logical_id, exc, exc_info=exc.__cause__ is not None)
                except (Exception, SystemExit) as exc:
                    error = _error_payload(exc, request_id)
                    if not (invocation is not None and invocation.killed):
                        logger.warning("%s raised %s: %s", spec.logical_id, type(exc).__name__, exc, exc_info=True)
                finally:
                    self._end_invocation(spec, invocation)
            duration_ms = (time.monotonic() - started) * 1000
            if cold_start:
                stats.cold_starts += 1
            if invocation is not None and invocation.killed:
                error = None  # reported as the timeout it is, below
                duration_ms = max(duration_ms, spec.timeout * 1000 + 1)
            if error is None and duration_ms > spec.timeout * 1000:
                stats.timeouts += 1
                error = {
                    "errorMessage": f"{_now_iso()} Task timed out after {spec.timeout:.2f} seconds",
                    "errorType": "Sandbox.Timedout",
                    "requestId": request_id,
                }
                logger.warning("%s timed out (%.0f ms > %d s)", spec.logical_id, duration_ms, spec.timeout)
            if error is not None:
                stats.errors += 1
                if error["errorType"] in ("Sandbox.Timedout", "Runtime.ExitError") or error["errorType"].startswith(
                    "Runtime.Import"
                ):
                    self.reset(spec.logical_id)
                payload = error
            return InvocationResult(
                logical_id=spec.logical_id,
                function_name=spec.function_name,
                request_id=request_id,
                payload=payload,
                error=error,
                duration_ms=duration_ms,
                cold_start=cold_start,
            )

    def _start_invocation(self, spec: FunctionSpec, started: float) -> _Invocation | None:
        global _current_invocation
        if not self.kill_at_timeout:
            return None
        threads = self._environment_threads.setdefault(spec.logical_id, weakref.WeakSet())
        invocation = _Invocation(started + spec.timeout, threads)
        _current_invocation = invocation
        return invocation

    def _end_invocation(self, spec: FunctionSpec, invocation: _Invocation | None) -> None:
        """The threads the invocation started belong to its environment; killed, they stay dead (the executor's
        writers of a killed fan-out must not finish its writes after it)."""
        global _current_invocation
        if invocation is None:
            return
        _current_invocation = None
        started = invocation.started_threads()
        invocation.environment_threads.update(started)
        if invocation.killed:
            _killed_threads.update(invocation.environment_threads)
            self._environment_threads.pop(spec.logical_id, None)

    def _invocation_env(self, spec: FunctionSpec) -> dict[str, str]:
        environment = self._environments.get(spec.logical_id)
        log_stream = environment.log_stream_name if environment else _new_log_stream_name()
        reserved = {
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group_name,
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "_HANDLER": spec.handler,
            "AWS_SAM_LOCAL": "true",
        }
        return {**spec.environment, **self.extra_env, **reserved}

    def _environment(self, spec: FunctionSpec, cold_start: bool) -> _ExecutionEnvironment:
        if not cold_start:
            return self._environments[spec.logical_id]
        for layer_dir in spec.layer_dirs:
            if str(layer_dir) not in sys.path:
                sys.path.insert(0, str(layer_dir))  # like /opt/python: before site-packages, for good
        handler_file, handler_function = handler_location(spec.code_dir, spec.handler)
        module_label = spec.handler.rpartition(".")[0]
        if not handler_file.is_file():
            raise _InitError("Runtime.ImportModuleError", f"Unable to import module '{module_label}': {handler_file}")
        module_name = _module_name(spec)
        module_spec = importlib.util.spec_from_file_location(module_name, handler_file)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise _InitError(
                "Runtime.ImportModuleError", f"Unable to import module '{module_label}': {type(exc).__name__}: {exc}"
            ) from exc
        handler = getattr(module, handler_function, None)
        if not callable(handler):
            sys.modules.pop(module_name, None)
            raise _InitError(
                "Runtime.HandlerNotFound", f"Handler '{handler_function}' missing on module '{module_label}'"
            )
        environment = _ExecutionEnvironment(module, handler, os.environ["AWS_LAMBDA_LOG_STREAM_NAME"])
        self._environments[spec.logical_id] = environment
        return environment

    @staticmethod
    def _marshal(response: Any) -> Any:
        try:
            return json.loads(json.dumps(response))
        except (TypeError, ValueError) as exc:
            raise _InitError("Runtime.MarshalError", f"Unable to marshal response: {exc}") from exc


def _error_payload(exc: BaseException, request_id: str) -> dict[str, Any]:
    if isinstance(exc, SystemExit):
        return {
            "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status {exc.code}",
            "errorType": "Runtime.ExitError",
            "requestId": request_id,
        }
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _new_log_stream_name() -> str:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y/%m/%d")
    return f"{today}/[$LATEST]{uuid.uuid4().hex}"


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
