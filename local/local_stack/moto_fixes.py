"""A correction to moto 5.2.5's SQS FIFO receive, applied in-process (server mode and `mock_aws` alike).

The bug: moto keeps received messages in `queue.pending_messages` until a later ReceiveMessage looks at them,
and it drops a message whose visibility timeout expired from that set only when its scan reaches it. When two
messages of one group (A2, A3) were left in flight and both become visible again, the scan reaches A2 first
while A3 is still "pending": the group looks busy and A2 is skipped; then A3 leaves the set and is delivered.
A3 comes back before A2, and A2 starves for as long as A3 keeps failing. SQS returns A2 first: a FIFO group is
only blocked by messages that are really in flight.

The fix does what SQS does: before each receive, a message whose visibility timeout has expired is no longer in
flight. It is idempotent and touches nothing else. `tests/integration/local_stack` holds a canary test that fails
once moto no longer needs it. Visibility is judged at one instant per receive (a long poll: per scan), for that
set and for moto's scan alike: judged at two, on a loaded machine A3 and A4 could come back between them, A2 be
skipped as its group still looked busy, then A4 leave the set and be delivered first.

Two speed fixes, same behaviour: moto's SQS is quadratic in the queue's depth, which a demo with tens of
thousands of messages feels (a send of 10 took 100 ms at 1,500 queued messages).
* For every message it sends, adds and validates (twice), moto reads `queue.attributes`, which counts every
  message of the queue three times to fill the Approximate* attributes, just to read `ContentBasedDeduplication`.
  Here those calls see a view of the queue whose `attributes` holds only that flag (`send_message` finds its
  queue through a view of the backend that hands out such views). And to deduplicate a FIFO message, moto
  compares it with every message of the queue: here an index by deduplication id finds the candidates, and
  only a real duplicate costs a scan.
* `Message.visible` and `Message.delayed` build two datetimes per call to learn the time; here they read
  `time.time()` (the same clock, in the same milliseconds).

Two DynamoDB speed fixes, same behaviour (a conditional UpdateItem cost moto about 10 ms of CPU, which bounds
the demo: about 100 contact writes a second):
* moto parses an UpdateExpression twice per request (once to check the names and values it uses, once to apply
  it), from the text each time. Here the parse is remembered per expression text: the fan-out sends a handful of
  distinct texts, each thousands of times. moto's validator works on a deep copy of the tree
  (`Validator.__init__`), so a remembered tree is never changed; a text that does not parse raises every time.
* moto lexes a ConditionExpression (and a FilterExpression or KeyConditionExpression) twice per request, from the
  text each time, compiling seven patterns per token. Here the tokens are remembered per text (fresh nodes each
  time: only the text is remembered; the names and values of each request are read in the later steps).
* moto's tree walkers rebuild their map of node types (a dict of bound methods) for every node they visit, ten
  walks per update; here each walker builds it once.
* To project an item (a query on an index that INCLUDEs some attributes, a ProjectionExpression), moto converts
  the whole item to plain Python once per projected attribute; here once per item, when every projected
  attribute is a top-level name (moto's own path otherwise).
* moto's server lists its own package folder (a directory read and a stat per entry) to route every request;
  here the list is read once (the installed package does not change while it runs).

And two CloudFormation fixes (`template.create_resources` creates the template's tables through moto's
CloudFormation): moto 5.2.5 creates an `AWS::DynamoDB::Table` without its `TimeToLiveSpecification` and
`PointInTimeRecoverySpecification`, and reads `SSESpecification` with the API's key (`Enabled`) instead of the
template's (`SSEEnabled`): here the table gets all three, as CloudFormation gives them. And moto reads every
template body with PyYAML's pure-Python loader before it tries JSON; ours are JSON, which it now reads first (JSON
is YAML: the same data), a quarter of a second less for every stack a test creates.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import deque
from typing import Any

from local_stack.moto_partner_buses import fix_partner_event_buses

_MARK = "_account_sync_fifo_fix"
_DEDUP_INDEX = "_account_sync_deduplication_index"
_receiving = threading.local()  # `now_ms`: the instant the receive this thread is in judges visibility at


def _now_ms() -> float:
    """Now, or the instant of the receive this thread is in (moto's server answers each request in a thread)."""
    frozen: float | None = getattr(_receiving, "now_ms", None)
    return frozen if frozen is not None else time.time() * 1000.0


def apply_moto_fixes() -> None:
    """Patch moto's SQS backend and its CloudFormation tables once per process (cheap to call again)."""
    from moto.sqs.models import SQSBackend

    apply_moto_speedups()
    _speed_up_update_expressions()
    _fix_cloudformation_tables()
    fix_partner_event_buses()  # the push path's partner event bus (moto_partner_buses)

    original = SQSBackend.receive_message
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def receive_message(
        self: Any, queue_name: str, count: int, wait_seconds_timeout: int, visibility_timeout: int, *rest: Any
    ) -> Any:
        queue = self.get_queue(queue_name)
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        while True:  # moto's own long poll, each scan at its own single instant
            _receiving.now_ms = time.time() * 1000.0
            try:
                pending = queue.pending_messages
                pending.difference_update({message for message in pending if message.visible})
                received = original(self, queue_name, count, 0, visibility_timeout, *rest)
            finally:
                _receiving.now_ms = None
            remaining = deadline - time.monotonic()
            if received or remaining <= 0:
                return received
            queue.wait_for_messages(min(1.0, remaining))

    setattr(receive_message, _MARK, True)
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]


class _QueueWithCheapAttributes:
    """The queue, except that `attributes` holds only what moto's send path reads of it."""

    def __init__(self, queue: Any) -> None:
        object.__setattr__(self, "_queue", queue)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._queue, name, value)

    @property
    def attributes(self) -> dict[str, str]:
        return {"ContentBasedDeduplication": "true" if self._queue.content_based_deduplication else "false"}


class _BackendWithCheapQueues:
    """The SQS backend, except that `get_queue` returns the cheap view of the queue (for `send_message`)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def get_queue(self, queue_name: str) -> _QueueWithCheapAttributes:
        return _QueueWithCheapAttributes(self._backend.get_queue(queue_name))


def _is_duplicate(queue: Any, message: Any) -> bool:
    """moto's rule (a message of the queue with the same deduplication id, sent less than 5 minutes before),
    looked up in an index of the messages added instead of a scan of the queue. The queue stays the authority:
    an indexed message counts only while it is still in the queue (deleted, purged or moved ones do not)."""
    from moto.sqs.models import DEDUPLICATION_TIME_IN_SECONDS

    index: dict[str, list[Any]] = queue.__dict__.setdefault(_DEDUP_INDEX, {})
    candidates = index.get(message.deduplication_id)
    if not candidates:
        return False
    in_queue = {id(queued) for queued in queue._messages}
    alive = [candidate for candidate in candidates if id(candidate) in in_queue]
    index[message.deduplication_id] = alive
    return any(
        (message.sent_timestamp - candidate.sent_timestamp) / 1000 < DEDUPLICATION_TIME_IN_SECONDS
        for candidate in alive
    )


def apply_moto_speedups() -> None:
    """Make moto's SQS send and visibility checks cheap (see the module docstring); idempotent."""
    from moto.sqs.models import Message, Queue, SQSBackend

    if getattr(Queue.add_message, _MARK, False):
        return
    add_message = Queue.add_message
    validate = SQSBackend._validate_message

    def cheap_add_message(self: Any, message: Any) -> None:
        if not self.fifo_queue or not message.deduplication_id or self.lambda_event_source_mappings:
            add_message(_QueueWithCheapAttributes(self), message)  # type: ignore[arg-type]
            return
        if _is_duplicate(self, message):
            return
        with self._messages_lock:
            self._messages.append(message)
            self._messages_lock.notify_all()
        self.__dict__.setdefault(_DEDUP_INDEX, {}).setdefault(message.deduplication_id, []).append(message)

    def cheap_validate(self: Any, queue: Any, *args: Any, **kwargs: Any) -> Any:
        return validate(self, _QueueWithCheapAttributes(queue), *args, **kwargs)  # type: ignore[arg-type]

    send_message = SQSBackend.send_message

    def cheap_send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        return send_message(_BackendWithCheapQueues(self), *args, **kwargs)  # type: ignore[arg-type]

    setattr(cheap_add_message, _MARK, True)
    Queue.add_message = cheap_add_message  # type: ignore[method-assign]
    SQSBackend._validate_message = cheap_validate  # type: ignore[method-assign]
    SQSBackend.send_message = cheap_send_message  # type: ignore[method-assign]
    Message.visible = property(lambda message: _now_ms() > message.visible_at)  # type: ignore[method-assign,assignment]
    Message.delayed = property(lambda message: _now_ms() < message.delayed_until)  # type: ignore[method-assign,assignment]


def _fix_cloudformation_tables() -> None:
    """A CloudFormation table with its TTL, point-in-time recovery and encryption (see the module docstring)."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.table import Table

    original = Table.create_from_cloudformation_json
    if getattr(original, _MARK, False):
        return

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kw: Any
    ) -> Any:
        properties = dict(cloudformation_json.get("Properties") or {})
        sse = properties.get("SSESpecification")
        if isinstance(sse, dict) and "SSEEnabled" in sse:
            enabled = sse["SSEEnabled"] in (True, "true", "True")
            properties["SSESpecification"] = {
                "Enabled": enabled,
                **{key: sse[key] for key in ("SSEType", "KMSMasterKeyId") if key in sse},
            }
        table = original.__func__(  # type: ignore[attr-defined]
            cls, resource_name, {**cloudformation_json, "Properties": properties}, account_id, region_name, **kw
        )
        backend = dynamodb_backends[account_id][region_name]
        ttl = properties.get("TimeToLiveSpecification") or {}
        if ttl.get("Enabled") in (True, "true", "True"):
            backend.update_time_to_live(table.name, {"AttributeName": ttl["AttributeName"], "Enabled": True})
        pitr = properties.get("PointInTimeRecoverySpecification") or {}
        if pitr.get("PointInTimeRecoveryEnabled") in (True, "true", "True"):
            backend.update_continuous_backups(table.name, {"PointInTimeRecoveryEnabled": True})
        return table

    from moto.cloudformation.models import Stack

    parse_template = Stack.parse_template

    def json_first(template: str) -> Any:
        try:
            return json.loads(template)
        except ValueError:
            return parse_template(template)

    Stack.parse_template = staticmethod(json_first)  # type: ignore[method-assign,assignment]

    setattr(create_from_cloudformation_json, _MARK, True)
    Table.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[method-assign,assignment]


def _speed_up_update_expressions() -> None:
    """Remember parsed UpdateExpressions; build each tree walker's node-type map once (module docstring)."""
    from moto.dynamodb.parsing import ast_nodes, expressions, validators  # every walker is defined in these

    del validators

    parser = expressions.UpdateExpressionParser
    if getattr(parser.make, _MARK, False):
        return
    make = functools.lru_cache(maxsize=512)(parser.make)
    setattr(make, _MARK, True)
    parser.make = staticmethod(make)  # type: ignore[method-assign,assignment]

    traverser = ast_nodes.DepthFirstTraverser

    def nodes_to_be_processed(self: Any) -> tuple[type, ...]:
        cached = self.__dict__.get("_account_sync_node_types")
        if cached is None:
            cached = self.__dict__["_account_sync_node_types"] = tuple(self._processing_map())
        return cached  # type: ignore[no-any-return]

    for subclass in _subclasses(traverser):
        if "_processing_map" in vars(subclass):
            original = vars(subclass)["_processing_map"]
            subclass._processing_map = _remembered(original)
    traverser.nodes_to_be_processed = nodes_to_be_processed  # type: ignore[method-assign]

    _project_once()
    _lex_conditions_once()

    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]


def _subclasses(cls: type) -> list[type]:
    found = []
    for subclass in cls.__subclasses__():
        found += [subclass, *_subclasses(subclass)]
    return found


def _remembered(processing_map: Any) -> Any:
    """A walker's `_processing_map`, built once per walker (it maps node types to the walker's bound methods)."""

    @functools.wraps(processing_map)
    def remembered(self: Any) -> Any:
        cached = self.__dict__.get("_account_sync_processing_map")
        if cached is None:
            cached = self.__dict__["_account_sync_processing_map"] = processing_map(self)
        return cached

    return remembered


def _lex_conditions_once() -> None:
    """`ConditionExpressionParser._lex_condition_expression` remembered per expression text (module docstring).
    A lexed token depends on the text alone; each call gets new nodes (new child lists), so no later step of one
    request can change what another is given; a text that does not lex raises every time (nothing is stored)."""
    from moto.dynamodb.comparisons import ConditionExpressionParser

    lex = ConditionExpressionParser._lex_condition_expression
    if getattr(lex, _MARK, False):
        return

    @functools.lru_cache(maxsize=512)
    def tokens(text: str) -> tuple[tuple[Any, Any, Any, Any], ...]:
        parser = ConditionExpressionParser.__new__(ConditionExpressionParser)
        parser.condition_expression = text
        return tuple((n.nonterminal, n.kind, n.text, n.value) for n in lex(parser))

    def lex_once(self: Any) -> Any:
        node = ConditionExpressionParser.Node
        return deque(node(*token, children=[]) for token in tokens(self.condition_expression))

    setattr(lex_once, _MARK, True)
    ConditionExpressionParser._lex_condition_expression = lex_once  # type: ignore[method-assign]


def _project_once() -> None:
    """`Item.project` converting the item once, for top-level names only (module docstring): each name then takes
    its own value from one conversion, which no other name can change."""
    from moto.dynamodb.models import dynamo_type

    item_class = dynamo_type.Item
    project = item_class.project

    def project_once(self: Any, projection_expressions: list[list[str]]) -> Any:
        names = [path[0] for path in projection_expressions if len(path) == 1 and not path[0].endswith("]")]
        if len(names) != len(projection_expressions):
            return project(self, projection_expressions)
        plain = self.to_regular_json()
        result = {name: plain[name] for name in names if name in plain}
        return item_class(
            hash_key=self.hash_key, range_key=self.range_key, attrs=dynamo_type.serializer.serialize(result)["M"]
        )

    item_class.project = project_once  # type: ignore[method-assign]
