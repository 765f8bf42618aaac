"""DynamoDB throttling, injected the way DynamoDB answers it: token buckets per partition key and per table.

moto never throttles; DynamoDB does (docs/shared PRODUCTION.md): a partition key takes about 1,000 write units and
3,000 read units a second, a table (or an on-demand table that has not scaled yet) a bounded total. `DynamoThrottle`
keeps a token bucket for each partition key and one for each table, for writes and for reads, refilled at the
configured rate (a burst of one second's worth). A request that finds a bucket empty is answered as DynamoDB
answers it, with HTTP 400:

* a partition key's bucket: `ProvisionedThroughputExceededException`;
* a table's bucket: `ThrottlingException` ("Throughput exceeds the current capacity of your table or index");
* `BatchWriteItem`: the items whose buckets are empty come back in `UnprocessedItems` (HTTP 200), and only when
  none of them was taken does the whole request fail with `ProvisionedThroughputExceededException`.

It sits inside botocore's retry loop (`Endpoint._do_get_response`, wrapped process-wide once `install()`ed), so
the SDK's own retries and backoff see the throttle exactly as they would see DynamoDB's, then give up and raise:
what the code under test handles is what is left after the SDK's retries, as in production. It answers before
anything is sent, so it works the same on a moto server and under `mock_aws`. Costs are per request and per item
(a conditional write that fails still costs its unit, as on DynamoDB); a Query or Scan costs one read unit of
its partition (of the index, when it names one), whatever it reads.

    with DynamoThrottle(partition_writes=50, table_writes=200).installed():
        ...  # every DynamoDB request of this process is metered

`python -m local_stack up --throttle-table-writes 200 --throttle-partition-writes 50` turns it on for a local
stack; `throttled` counts what it refused, per (kind, table).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.endpoint import Endpoint, convert_to_response_dict

# The partition key of each table of the template, by the end of its name (a table not listed: its key's first
# attribute in name order).
HASH_KEYS = {"contacts": "contact_id", "accounts": "account_id", "activities": "subject_id", "sync-state": "state_id"}
_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
_READS = {"GetItem", "Query", "Scan"}


@dataclass
class _Bucket:
    rate: float  # tokens a second
    tokens: float
    updated: float

    def take(self, now: float, amount: float = 1.0) -> bool:
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)  # a burst of one second
        self.updated = now
        if self.tokens < amount:
            return False
        self.tokens -= amount
        return True


@dataclass
class DynamoThrottle:
    """Rates in units a second; None: that bucket is not metered."""

    partition_writes: float | None = 1000.0
    partition_reads: float | None = 3000.0
    table_writes: float | None = None
    table_reads: float | None = None
    clock: Callable[[], float] = time.monotonic
    hash_keys: Mapping[str, str] = field(default_factory=lambda: dict(HASH_KEYS))
    throttled: dict[tuple[str, str], int] = field(default_factory=dict)  # (error or "unprocessed", table) -> count

    def __post_init__(self) -> None:
        self._buckets: dict[tuple[str, ...], _Bucket] = {}
        self._lock = threading.Lock()

    # --- installing ---

    def install(self) -> None:
        """Meter every DynamoDB request of this process from now on (one throttle at a time)."""
        global _ACTIVE
        _patch_endpoint()
        _ACTIVE = self

    def uninstall(self) -> None:
        global _ACTIVE
        if _ACTIVE is self:
            _ACTIVE = None

    @contextmanager
    def installed(self) -> Iterator[DynamoThrottle]:
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    @property
    def total_throttled(self) -> int:
        with self._lock:
            return sum(self.throttled.values())

    # --- deciding ---

    def answer(self, operation: str, body: bytes | str | None) -> tuple[int, dict[str, Any]] | None:
        """(HTTP status, JSON body) to answer instead of DynamoDB, or None to let the request through."""
        if operation not in _WRITES | _READS | {"BatchWriteItem"}:
            return None
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            return None
        with self._lock:
            now = self.clock()
            if operation == "BatchWriteItem":
                return self._batch_write(params, now)
            table = str(params.get("TableName", ""))
            write = operation in _WRITES
            partition = self._partition(operation, table, params)
            error = self._take(table, partition, write, now)
            if error is None:
                return None
            self._count(error, table)
            return 400, _error_body(error)

    def _take(self, table: str, partition: str, write: bool, now: float) -> str | None:
        """Take one unit from the partition's and the table's buckets; the error when one of them is empty."""
        kind = "write" if write else "read"
        table_rate = self.table_writes if write else self.table_reads
        partition_rate = self.partition_writes if write else self.partition_reads
        partition_bucket = self._bucket((kind, table, partition), partition_rate, now)
        table_bucket = self._bucket((kind, table), table_rate, now)
        if table_bucket is not None and not table_bucket.take(now):
            return "ThrottlingException"
        if partition_bucket is not None and not partition_bucket.take(now):
            if table_bucket is not None:
                table_bucket.tokens += 1  # not consumed after all
            return "ProvisionedThroughputExceededException"
        return None

    def _batch_write(self, params: dict[str, Any], now: float) -> tuple[int, dict[str, Any]] | None:
        unprocessed: dict[str, list[Any]] = {}
        taken = 0
        for table, requests in (params.get("RequestItems") or {}).items():
            for request in requests:
                item = (request.get("PutRequest") or {}).get("Item") or (request.get("DeleteRequest") or {}).get("Key")
                partition = self._key_value(str(table), item or {})
                if self._take(str(table), partition, True, now) is None:
                    taken += 1
                else:
                    unprocessed.setdefault(str(table), []).append(request)
        if not unprocessed:
            return None
        for table, requests in unprocessed.items():
            self._count("unprocessed", table, len(requests))
        if not taken:
            return 400, _error_body("ProvisionedThroughputExceededException")
        # Items taken must be written: answer through the real call, with the rest unprocessed (see _patched)
        return 200, {"__partial__": True, "UnprocessedItems": unprocessed}

    def _bucket(self, key: tuple[str, ...], rate: float | None, now: float) -> _Bucket | None:
        if rate is None:
            return None
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(rate, rate, now)
        return bucket

    def _partition(self, operation: str, table: str, params: dict[str, Any]) -> str:
        if operation in ("Query", "Scan"):
            index = str(params.get("IndexName") or "")
            values = params.get("ExpressionAttributeValues") or {}
            condition = str(params.get("KeyConditionExpression") or "")
            placeholder = next((name for name in values if name in condition), None)
            value = json.dumps(values.get(placeholder), sort_keys=True) if placeholder else "*"
            return f"{index}#{value}"
        return self._key_value(table, params.get("Key") or params.get("Item") or {})

    def _key_value(self, table: str, key: Mapping[str, Any]) -> str:
        name = next((attr for suffix, attr in self.hash_keys.items() if table.endswith(suffix)), None)
        if name is None or name not in key:
            name = min(key) if key else ""
        return json.dumps(key.get(name), sort_keys=True)

    def _count(self, what: str, table: str, amount: int = 1) -> None:
        self.throttled[(what, table)] = self.throttled.get((what, table), 0) + amount


_MESSAGES = {
    "ProvisionedThroughputExceededException": (
        "The level of configured provisioned throughput for the table was exceeded. Consider increasing your "
        "provisioning level with the UpdateTable API."
    ),
    "ThrottlingException": "Throughput exceeds the current capacity of your table or index.",
}


def _error_body(code: str) -> dict[str, Any]:
    return {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": _MESSAGES[code]}


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


_ACTIVE: DynamoThrottle | None = None
_ACTIVE_LAG: IndexLag | None = None
_PATCH_LOCK = threading.Lock()
_ORIGINAL: Any = None


def _patch_endpoint() -> None:
    """Wrap botocore's `Endpoint._do_get_response` once: inside the retry loop, before the request is sent."""
    global _ORIGINAL
    with _PATCH_LOCK:
        if _ORIGINAL is not None:
            return
        _ORIGINAL = Endpoint._do_get_response

        def _do_get_response(self: Endpoint, request: Any, operation_model: Any, context: Any) -> Any:
            throttle, lag = _ACTIVE, _ACTIVE_LAG
            if (throttle is None and lag is None) or operation_model.service_model.endpoint_prefix != "dynamodb":
                return _ORIGINAL(self, request, operation_model, context)
            answer = throttle.answer(operation_model.name, request.body) if throttle is not None else None
            if answer is None:
                result = _ORIGINAL(self, request, operation_model, context)
            else:
                status, body = answer
                if not body.pop("__partial__", False):
                    return _respond(self, request, operation_model, status, body)
                result = _write_some(self, request, operation_model, context, body["UnprocessedItems"])
            if lag is not None:
                lag.observe(operation_model.name, request.body, result)
            return result

        Endpoint._do_get_response = _do_get_response  # type: ignore[method-assign]


def _write_some(endpoint: Endpoint, request: Any, operation_model: Any, context: Any, unprocessed: dict) -> Any:
    """A BatchWriteItem some of whose items were throttled: the others are written (the real request, without
    the throttled items), and the answer names the throttled ones in `UnprocessedItems`."""
    params = json.loads(request.body)
    held = {table: [json.dumps(r, sort_keys=True) for r in requests] for table, requests in unprocessed.items()}
    params["RequestItems"] = {
        table: [r for r in requests if json.dumps(r, sort_keys=True) not in held.get(table, [])]
        for table, requests in params["RequestItems"].items()
    }
    params["RequestItems"] = {table: requests for table, requests in params["RequestItems"].items() if requests}
    original_body, original_length = request.body, request.headers.get("Content-Length")
    request.body = json.dumps(params).encode()
    request.headers["Content-Length"] = str(len(request.body))
    try:  # (moto checks no signature; a retry of this request must send every item again)
        result, error = _ORIGINAL(endpoint, request, operation_model, context)
    finally:
        request.body = original_body
        if original_length is not None:
            request.headers["Content-Length"] = original_length
    if error is not None or result is None:
        return result, error
    http_response, parsed = result
    if http_response.status_code < 300:
        merged = parsed.setdefault("UnprocessedItems", {})
        for table, requests in unprocessed.items():
            merged.setdefault(table, []).extend(requests)
    return (http_response, parsed), None


def _respond(endpoint: Endpoint, request: Any, operation_model: Any, status: int, body: dict[str, Any]) -> Any:
    """Parse a made-up answer as botocore parses DynamoDB's (errors with their modeled fields)."""
    content = json.dumps(body).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "Content-Length": str(len(content))}
    if status >= 300:
        headers["x-amzn-ErrorType"] = str(body["__type"]).rpartition("#")[2]
    http_response = AWSResponse(request.url, status, headers, _Raw(content))
    response_dict = convert_to_response_dict(http_response, operation_model)
    parser = endpoint._response_parser_factory.create_parser(operation_model.service_model.resolved_protocol)
    parsed = parser.parse(response_dict, operation_model.output_shape)
    if status >= 300:
        endpoint._add_modeled_error_fields(response_dict, parsed, operation_model, parser)
    return (http_response, parsed), None


class IndexLag:
    """A global secondary index that lags behind the table, as DynamoDB's do (moto's never lag): a contact that
    joined an account (a write that sets its `account_id`) is missing from the account index's queries (`Items`
    and `Count`) for `seconds`. Only joins are hidden: a member whose other attributes changed is still shown (a
    real index would show it with its old projected values, which the fan-out's conditional writes tolerate).

        with IndexLag(seconds=5).installed(): ...

    `python -m local_stack up --index-lag-seconds 5` turns it on for a local stack.
    """

    def __init__(
        self,
        seconds: float,
        index_name: str = "by_account_keys",
        attribute: str = "account_id",
        table_suffix: str = "contacts",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.index_name = index_name
        self.attribute = attribute
        self.table_suffix = table_suffix
        self.clock = clock
        self.hidden_items = 0  # items a query did not show because of the lag
        self._joins: dict[str, tuple[str, float]] = {}  # contact key -> (account, when it joined)
        self._lock = threading.Lock()

    def install(self) -> None:
        global _ACTIVE_LAG
        _patch_endpoint()
        _ACTIVE_LAG = self

    def uninstall(self) -> None:
        global _ACTIVE_LAG
        if _ACTIVE_LAG is self:
            _ACTIVE_LAG = None

    @contextmanager
    def installed(self) -> Iterator[IndexLag]:
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    def observe(self, operation: str, body: bytes | str | None, result: Any) -> None:
        """Record the joins a successful write made; hide the recent ones from an answer of the index."""
        (response, error) = result
        if error is not None or response is None or response[0].status_code >= 300:
            return
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            return
        if not str(params.get("TableName", "")).endswith(self.table_suffix) and operation != "BatchWriteItem":
            return
        now = self.clock()
        with self._lock:
            if operation == "Query" and params.get("IndexName") == self.index_name:
                self._hide(params, response[1], now)
            elif operation in ("UpdateItem", "PutItem"):
                account = self._joined_account(operation, params)
                if account is not None:
                    self._joins[json.dumps(params.get("Key") or _first_key(params), sort_keys=True)] = (account, now)

    def _joined_account(self, operation: str, params: dict[str, Any]) -> str | None:
        if operation == "PutItem":
            value = (params.get("Item") or {}).get(self.attribute)
            return json.dumps(value, sort_keys=True) if value is not None else None
        names = params.get("ExpressionAttributeNames") or {}
        values = params.get("ExpressionAttributeValues") or {}
        expression = str(params.get("UpdateExpression") or "")
        set_clause = expression.split("SET", 1)[1] if "SET" in expression else ""
        for assignment in set_clause.split(","):
            target, equals, value = assignment.partition("=")
            target = target.strip()
            if equals and names.get(target, target) == self.attribute and value.strip() in values:
                return json.dumps(values[value.strip()], sort_keys=True)
        return None

    def _hide(self, params: dict[str, Any], parsed: dict[str, Any], now: float) -> None:
        values = params.get("ExpressionAttributeValues") or {}
        condition = str(params.get("KeyConditionExpression") or "")
        placeholder = next((name for name in values if name in condition), None)
        if placeholder is None:
            return
        account = json.dumps(values[placeholder], sort_keys=True)
        recent = {key for key, (joined, at) in self._joins.items() if joined == account and now - at < self.seconds}
        for key in [key for key, (_, at) in self._joins.items() if now - at >= self.seconds]:
            del self._joins[key]
        if not recent:
            return
        if "Items" in parsed:
            kept = [item for item in parsed["Items"] if _contact_key(item) not in recent]
            hidden = len(parsed["Items"]) - len(kept)
            parsed["Items"] = kept
        else:  # Select=COUNT: the recent joiners of this account are not counted (all of them: an approximation)
            hidden = min(len(recent), int(parsed.get("Count", 0)))
        parsed["Count"] = max(0, int(parsed.get("Count", 0)) - hidden)
        self.hidden_items += hidden


def _first_key(params: dict[str, Any]) -> dict[str, Any]:
    item = params.get("Item") or {}
    return {name: item[name] for name in ("contact_id",) if name in item}


def _contact_key(item: Mapping[str, Any]) -> str:
    return json.dumps({"contact_id": item.get("contact_id")}, sort_keys=True)


def throttle_from_options(
    partition_writes: float | None, table_writes: float | None, table_reads: float | None = None
) -> DynamoThrottle | None:
    """The throttle the local stack's flags ask for; None when none is asked."""
    if partition_writes is None and table_writes is None and table_reads is None:
        return None
    return DynamoThrottle(
        partition_writes=partition_writes if partition_writes is not None else 1000.0,
        table_writes=table_writes,
        table_reads=table_reads,
    )
