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
* A GetQueueAttributes (the local pollers ask it of every queue between receives) converts the name of each of a
  queue's twenty attributes from CamelCase, character by character, to find it: a tenth of the tests' CPU in moto.
  Here each name's conversion is remembered (a pure function of the name).

DynamoDB speed fixes, same behaviour (a conditional UpdateItem cost moto about 10 ms of CPU, which bounds
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
* moto parses a ConditionExpression twice per request (the handler checks it, the backend evaluates it); here the
  parsed condition is remembered per text and the names and values it refers to (`condition_key`): the fan-out
  writes all the contacts of an account change with one condition and the change's values.
* moto's JSON serializer walks every attribute value of a response through botocore's AttributeValue shape; an
  item whose values are already in their wire form is written as it is (a Scan or a BatchGetItem of contacts
  costs a fifth of what it did).
* A query on a KEYS_ONLY or INCLUDE index deep-copied every whole item of its page before projecting it; here the
  projection, which copies what it keeps, is the only copy.
* A new item (a PutItem, each entry of a BatchWriteItem) summed the sizes of all its attributes again for every
  attribute it added, to refuse an item over 400 KB; here it sums them once, and refuses the same items.
* A Query (on the table or an index) started from `all_items()`, the whole table sorted by its primary key,
  then kept the queried partition and sorted it again: about 7 s for a 100-contact account's index query on a
  202,000-contact table here, whatever the partition. Here it starts from only the items that can pass moto's own
  hash-key test (a base-table query: its partition, read from moto's dict of partitions; an index query: one
  unsorted walk comparing one attribute), in moto's order, and moto applies every rule of its own after that. It
  keeps no state (moto's items are read at each query), so no write path, table deletion, CloudFormation or
  restore can leave it behind. And moto sorts (a Query, a Scan) by comparing DynamoTypes, two Python calls and a
  cast per comparison; when each key position holds one of S, N or B, the cast values are compared instead, the
  same order. Measured in-process on 202,000 contacts (random ids, a 101,000-contact account, load ~4): an index
  query of a 100-contact account 6.9 s -> 0.11-0.14 s, a base-table query 6.5 s -> 0.01 s, the first 1 MB key
  page of the 101,000-contact account 10.1 s -> 5.9 s and its COUNT page 9.0 s -> 5.2 s (what remains is moto's
  per-item work on the page: sizing, projecting, serializing 19,000 items); on 10,400 contacts, a small
  account's query 0.1-0.3 s -> 0.01 s, the 5,200-contact account's key page ~0.9 s either way (page-bound).
  A Hypothesis test compares Query and Scan with moto's own after random writes
  (`test_local_moto_query_partition.py`). An index query is then handed only the items moto's walk appends and
  the one that ends its page (`moto_query_pages`: no sort of the partition, no skip of the items before the
  start key, no range test of the whole partition): a key page of a 100,000-contact account 1.3 s -> 0.33 s of
  CPU, a COUNT page 1.1 s -> 0.15 s, a segment's range query 0.3 s -> 0.15 s, and 2.0-2.4 s -> 0.16 s metered as
  on the moto server, where the capacity meter passes the query's arguments by position and the partition fix,
  reading them by name, did not apply (they are now bound to moto's signature) (`test_local_moto_query_pages.py`).
* An UpdateItem's validator, its expression-only checks, the deep copies nobody reads and the copy of the tree the
  validator works on: `moto_updates` (applied from here, proven by its own Hypothesis test).
* An attribute's size without rebuilding it level by level: `moto_sizes` (applied from here, with its own test).
* A request's wire-form AttributeValues taken as they are by the parser, a Query's or BatchGetItem's plain result
  copied without moto's generic conversion: `moto_wire` (applied from here, with its own test).
* moto's server lists its own package folder (a directory read and a stat per entry) to route every request;
  here the list is read once (the installed package does not change while it runs).

A KMS speed fix, same behaviour: moto gives every KMS key an RSA-2048 pair when it is created, a symmetric key too
(50 ms of CPU), and an encrypted table makes the account's `aws/dynamodb` key, so every test's stack paid it. A
symmetric key's pair is now made when Sign, Verify or GetPublicKey first uses it.

And two CloudFormation fixes (`template.create_resources` creates the template's tables through moto's
CloudFormation): moto 5.2.5 creates an `AWS::DynamoDB::Table` without its `TimeToLiveSpecification` and
`PointInTimeRecoverySpecification`, and reads `SSESpecification` with the API's key (`Enabled`) instead of the
template's (`SSEEnabled`): here the table gets all three, as CloudFormation gives them. And moto reads every
template body with PyYAML's pure-Python loader before it tries JSON; ours are JSON, which it now reads first (JSON
is YAML: the same data), a quarter of a second less for every stack a test creates.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from local_stack.moto_partner_buses import fix_partner_event_buses
from local_stack.moto_query_pages import page_walk
from local_stack.moto_updates import apply_update_speedups

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
    _generate_symmetric_keys_lazily()
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
    from moto.sqs import models as sqs_models
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
    sqs_models.camelcase_to_underscores = functools.lru_cache(maxsize=256)(sqs_models.camelcase_to_underscores)
    Queue.add_message = cheap_add_message  # type: ignore[method-assign]
    SQSBackend._validate_message = cheap_validate  # type: ignore[method-assign]
    SQSBackend.send_message = cheap_send_message  # type: ignore[method-assign]
    Message.visible = property(lambda message: _now_ms() > message.visible_at)  # type: ignore[method-assign,assignment]
    Message.delayed = property(lambda message: _now_ms() < message.delayed_until)  # type: ignore[method-assign,assignment]


class _KeyGeneratedOnUse:
    """A KMS key's RSA key pair, generated when something first uses it (see `_generate_symmetric_keys_lazily`)."""

    def __init__(self, generate: Callable[[str], Any], key_spec: str) -> None:
        self._generate = generate
        self._key_spec = key_spec
        self._key: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._key is None:
            self._key = self._generate(self._key_spec)
        return getattr(self._key, name)


def _generate_symmetric_keys_lazily() -> None:
    """moto gives every KMS key an RSA-2048 key pair at creation, a symmetric one too (50 ms of CPU): each
    encrypted table of a stack makes the account's `aws/dynamodb` key, so every test paid it. Only Sign, Verify
    and GetPublicKey use the pair: a symmetric key now makes it when one of them first asks, as before."""
    from moto.kms import models

    original = models.generate_private_key
    if getattr(original, _MARK, False):
        return
    asymmetric = {"RSA_2048", "RSA_3072", "RSA_4096", *models.KeySpec.ecc_key_specs()}

    def generate_private_key(key_spec: str) -> Any:
        return original(key_spec) if key_spec in asymmetric else _KeyGeneratedOnUse(original, key_spec)

    setattr(generate_private_key, _MARK, True)
    models.generate_private_key = generate_private_key


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
    _parse_conditions_once()
    _serialize_items_as_they_are()
    _project_index_results_uncopied()
    _size_new_items_once()
    _query_the_partition_only()
    apply_update_speedups()

    from local_stack.moto_sizes import apply_size_speedup  # imports moto: only once moto is patched
    from local_stack.moto_wire import apply_wire_speedups

    apply_size_speedup()
    apply_wire_speedups()

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
    """`Item.project` converting only the projected attributes, once, for top-level names only (module docstring):
    each name takes its own value as `Item.to_regular_json` gives it, which no other name can change."""
    from moto.dynamodb.models import dynamo_type

    item_class = dynamo_type.Item
    project = item_class.project

    def project_once(self: Any, projection_expressions: list[list[str]]) -> Any:
        names = [path[0] for path in projection_expressions if len(path) == 1 and not path[0].endswith("]")]
        if len(names) != len(projection_expressions):
            return project(self, projection_expressions)
        # Item.to_regular_json, for the projected names only (a keys-only index: two of a contact's attributes)
        result = {
            name: dynamo_type.deserializer.deserialize(self.attrs[name].to_regular_json())
            for name in names
            if name in self.attrs
        }
        return item_class(
            hash_key=self.hash_key, range_key=self.range_key, attrs=dynamo_type.serializer.serialize(result)["M"]
        )

    item_class.project = project_once  # type: ignore[method-assign]


_SCALARS = {"S": str, "N": str, "NULL": bool, "BOOL": bool}


def is_wire_attribute_value(value: Any) -> bool:
    """An AttributeValue that moto's serializer would write back unchanged: one type key, a string for S and N, a
    boolean for NULL and BOOL, strings for SS and NS, and the same for the members of M and L. Binary values (B,
    BS) are not: the serializer encodes them."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    scalar = _SCALARS.get(kind)
    if scalar is not None:
        return isinstance(inner, scalar)
    if kind in ("SS", "NS"):
        return isinstance(inner, list) and all(isinstance(member, str) for member in inner)
    if kind == "M":
        return isinstance(inner, dict) and all(
            isinstance(name, str) and is_wire_attribute_value(member) for name, member in inner.items()
        )
    if kind == "L":
        return isinstance(inner, list) and all(is_wire_attribute_value(member) for member in inner)
    return False


def _serialize_items_as_they_are() -> None:
    """moto's JSON response serializer walks every attribute of every item through botocore's AttributeValue
    shape, member by member (most of a Query's, a BatchGetItem's or a Scan's cost on the server): an item (an
    attribute map: an item, a key, a LastEvaluatedKey) whose every value is already in its wire form
    (`is_wire_attribute_value`) is written as it is, which is what that walk produces; anything else takes
    moto's path."""
    from moto.core.serialize import BaseJSONSerializer

    serialize_map = BaseJSONSerializer._serialize_type_map
    if getattr(serialize_map, _MARK, False):
        return

    @functools.wraps(serialize_map)
    def serialize_type_map(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        value_shape = shape.value
        if (
            getattr(value_shape, "name", None) == "AttributeValue"
            and self.operation_model.service_model.service_name in ("dynamodb", "dynamodbstreams")
            and isinstance(value, dict)
            and all(isinstance(name, str) and is_wire_attribute_value(item) for name, item in value.items())
        ):
            self._default_serialize(serialized, value, shape, key)
            return
        serialize_map(self, serialized, value, shape, key)

    setattr(serialize_type_map, _MARK, True)
    BaseJSONSerializer._serialize_type_map = serialize_type_map  # type: ignore[method-assign]


_PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")
_CONDITIONS_REMEMBERED = 4096


def condition_key(text: str, names: dict[str, str], values: dict[str, Any]) -> tuple[str, str] | None:
    """What a ConditionExpression's parse depends on: its text, and the names and values it refers to (a request's
    other values, e.g. the UpdateExpression's timestamp, are not part of it). None when a placeholder is missing or
    a value is not JSON: moto's own parse then says what is wrong, or parses it, every time."""
    used = set(_PLACEHOLDER.findall(text))
    if not all(p in names for p in used if p[0] == "#") or not all(p in values for p in used if p[0] == ":"):
        return None
    try:
        referred = json.dumps(
            [{p: names[p] for p in used if p[0] == "#"}, {p: values[p] for p in used if p[0] == ":"}], sort_keys=True
        )
    except (TypeError, ValueError):
        return None
    return text, referred


def _parse_conditions_once() -> None:
    """`ConditionExpressionParser.parse` remembered per `condition_key`: the fan-out writes the contacts of an
    account with one condition text and the same values (the change's), a thousand times over; moto parsed it on
    each request, twice (the handler checks it, the backend evaluates it), half of an UpdateItem's time. The parsed
    condition is only read afterwards (its `expr(item)` evaluates, it keeps no state), so one tree serves every
    request; the names and values the parse found are handed to each parser as moto's own parse sets them. A
    condition that does not parse raises every time (nothing is stored)."""
    from moto.dynamodb.comparisons import ConditionExpressionParser

    parse = ConditionExpressionParser.parse
    if getattr(parse, _MARK, False):
        return
    remembered: dict[tuple[str, str], tuple[Any, tuple[str, ...], tuple[str, ...]]] = {}

    @functools.wraps(parse)
    def parse_once(self: Any) -> Any:
        text = self.condition_expression
        key = (
            condition_key(text, self.expression_attribute_names or {}, self.expression_attribute_values or {})
            if text
            else None
        )
        if key is None:
            return parse(self)
        hit = remembered.get(key)
        if hit is None:
            op = parse(self)
            if len(remembered) >= _CONDITIONS_REMEMBERED:
                remembered.clear()
            remembered[key] = (op, tuple(self.expr_attr_names_found), tuple(self.expr_attr_values_found))
            return op
        op, names_found, values_found = hit
        self.expr_attr_names_found.extend(names_found)
        self.expr_attr_values_found.extend(values_found)
        return op

    setattr(parse_once, _MARK, True)
    ConditionExpressionParser.parse = parse_once  # type: ignore[method-assign]


_QUERY = threading.local()  # `projecting`: a query on a KEYS_ONLY or INCLUDE index is running on this thread


class _CopyForProjectedQueries:
    """moto's `copy` module as its table module sees it, except that a query on an index that projects (see
    `_project_index_results_uncopied`) gets its list of results back as a new list of the same items."""

    def __getattr__(self, name: str) -> Any:
        import copy

        return getattr(copy, name)

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        import copy

        if getattr(_QUERY, "projecting", False) and isinstance(value, list):
            return list(value)
        return copy.deepcopy(value, memo)


def _project_index_results_uncopied() -> None:
    """moto's query deep-copies every item of a page (up to 1 MB of whole items) before it projects them on the
    index; on a KEYS_ONLY or INCLUDE index the projection builds new items from copies of the projected
    attributes (`_project_once`), so the deep copy protects nothing and is most of the query's cost on the
    demo's 5,000-contact accounts (a planning page, a COUNT, a segment's range). Only those queries skip it; a
    query on the table or on an ALL index copies as moto does."""
    from moto.dynamodb.models import table as table_module

    query = table_module.Table.query
    if getattr(query, _MARK, False):
        return

    @functools.wraps(query)
    def query_projected_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[7] if len(args) > 7 else None)  # moto's backend passes it 8th
        index = next((i for i in self.all_indexes() if i.name == index_name), None) if index_name else None
        projection = (index.projection or {}).get("ProjectionType") if index is not None else None
        if projection not in ("KEYS_ONLY", "INCLUDE"):
            return query(self, *args, **kwargs)
        _QUERY.projecting = True
        try:
            return query(self, *args, **kwargs)
        finally:
            _QUERY.projecting = False

    setattr(query_projected_once, _MARK, True)
    table_module.Table.query = query_projected_once  # type: ignore[method-assign]
    table_module.copy = _CopyForProjectedQueries()  # type: ignore[assignment]


def _size_new_items_once() -> None:
    """`Item.__init__` checking the 400 KB limit once, on the whole item: moto's `LimitedSizeDict` sums every
    attribute already set on each insert (quadratic in the attributes), and raises when a partial sum passes the
    limit; sizes are never negative, so the whole item passes it exactly when one partial sum does."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models import dynamo_type

    item_class = dynamo_type.Item
    if getattr(item_class.__init__, _MARK, False):
        return

    def init_sized_once(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        converted = {key: dynamo_type.DynamoType(value) for key, value in attrs.items()}
        if sum(dynamo_type.bytesize(key) + value.size() for key, value in converted.items()) > 405000:
            raise ItemSizeTooLarge  # moto's limit (LimitedSizeDict)
        self.attrs = dynamo_type.LimitedSizeDict()
        dict.update(self.attrs, converted)  # the limit is checked: no sum per attribute

    setattr(init_sized_once, _MARK, True)
    item_class.__init__ = init_sized_once  # type: ignore[method-assign]


_PARTITION = threading.local()  # `table`, `keep`: the query running on this thread, and which items it can return


def _query_the_partition_only() -> None:
    """`Table.query` sorting only the items its key condition can match (module docstring). moto's query starts
    from `all_items()`, the whole table sorted by its primary key, then keeps the items of the queried partition
    and sorts them again: here, during a query, `all_items()` gives that same sorted list with only the items that
    can pass moto's own hash-key test (a base-table query reads its partition from moto's dict of partitions; an
    index query walks the items once, unsorted, comparing one attribute), in the same order. moto then applies
    every rule of its own (the same test again, range keys, sort, pages, LastEvaluatedKey, filters, errors)."""
    from moto.dynamodb.models import table as table_module

    table_class = table_module.Table
    query = table_class.query
    if getattr(query, _MARK + "_partition", False):
        return
    all_items = table_class.all_items

    signature = inspect.signature(query)  # moto's own (`functools.wraps` leads to it)

    @functools.wraps(query)
    def query_the_partition(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:
            return query(self, *args, **kwargs)  # moto's own error
        bound.apply_defaults()
        keep = _candidates(self, bound.arguments)
        if keep is None:
            return query(self, *args, **kwargs)
        _PARTITION.table, _PARTITION.keep = self, keep
        try:
            return query(self, *args, **kwargs)
        finally:
            _PARTITION.table = _PARTITION.keep = None

    @functools.wraps(all_items)
    def all_items_of_the_partition(self: Any) -> Any:
        if getattr(_PARTITION, "table", None) is self:
            keep, _PARTITION.table = _PARTITION.keep, None  # moto's query calls it once; the rest sees the table
            items = keep(self)
        else:
            items = [
                item
                for stored in self.items.values()
                for item in (stored.values() if self.range_key_attr else (stored,))
            ]
        # moto's order: by (hash_key, range_key), or hash_key alone (a DynamoType is always true)
        return _sorted_as_moto_sorts(
            items, [[x.hash_key] if x.range_key is None else [x.hash_key, x.range_key] for x in items]
        )

    sorted_items = table_class.sorted_items

    @functools.wraps(sorted_items)
    def sorted_items_by_cast_values(self: Any, hash_key_attrs: Any, range_key_attrs: Any, items: list[Any]) -> Any:
        names = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
        try:
            keys = [[x.attrs[name] for name in names] for x in items]
        except KeyError:
            return sorted_items(self, hash_key_attrs, range_key_attrs, items)  # moto raises it
        items[:] = _sorted_as_moto_sorts(items, keys)
        return items

    setattr(query_the_partition, _MARK + "_partition", True)
    table_class.query = query_the_partition  # type: ignore[method-assign]
    table_class.all_items = all_items_of_the_partition  # type: ignore[method-assign]
    table_class.sorted_items = sorted_items_by_cast_values  # type: ignore[method-assign]


def _sorted_as_moto_sorts(items: list[Any], keys: list[list[Any]]) -> list[Any]:
    """The items in the order of a stable sort by their keys (lists of DynamoTypes, compared as tuples), as moto
    sorts them. A DynamoType compares equal when its type and cast value do, less when its cast value does: when
    each position holds one scalar key type, comparing the cast values (str, bytes, Decimal: compared in C) is
    the same order, without two Python calls and a cast per comparison. Otherwise moto's own comparisons."""
    if not items:
        return []
    width = len(keys[0])
    types = [{key[i].type for key in keys} for i in range(width)] if all(len(key) == width for key in keys) else []
    if not types or any(len(kinds) != 1 or not kinds <= {"S", "N", "B"} for kinds in types):
        order = sorted(range(len(items)), key=lambda i: tuple(keys[i]))
    else:
        numbers = [i for i, kinds in enumerate(types) if kinds == {"N"}]
        cast = [[value.value for value in key] for key in keys]  # a string's (and binary's) cast value is its value
        for row in cast:
            for i in numbers:
                row[i] = Decimal(row[i])
        order = sorted(range(len(items)), key=lambda i: tuple(cast[i]))
    return [items[i] for i in order]


def _candidates(table: Any, given: dict[str, Any]) -> Any:
    """A function listing, unsorted, a superset of the items moto's query keeps by their hash key (each once), or
    None when the query must start from the whole table (an index query without a hash-key condition). For an
    index query whose page `moto_query_pages` can find, only what moto's walk looks at and acts on."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    hash_key = given.get("hash_key")
    index_name = given.get("index_name")
    if not index_name:
        if not isinstance(hash_key, DynamoType):
            return None

        def partition(self: Any) -> list[Any]:
            found = self.items.get(hash_key)  # DynamoType hashes as it compares (type, cast value): one partition
            if found is None:
                return []
            return list(found.values()) if self.range_key_attr else [found]

        return partition
    conditions = given.get("hash_key_conditions")
    if not conditions:
        return None
    name, expected = conditions[0]  # an item moto keeps matches every condition, this one included
    fast = expected.type == "S"  # a string's cast value is its value: compared without building it
    page = page_walk(table, given)
    in_range = _range_test(table, index_name, given)

    def matching(self: Any) -> list[Any]:
        found = []
        for stored in self.items.values():
            for item in stored.values() if self.range_key_attr else (stored,):
                value = item.attrs.get(name) if isinstance(item, Item) else None
                if value is None or value.type != expected.type:
                    continue
                if (value.value == expected.value) if fast else (value == expected):
                    found.append(item)
        walked = page(found) if page is not None else None
        if walked is not None:
            return walked
        kept = [item for item in found if in_range(item)] if in_range is not None else []
        if in_range is None or sum(item.size() for item in kept) > _NARROWED_BYTES:
            return found
        return kept

    return matching


# moto checks its 1 MB page against every item it walks, one that fails the range test too: an item left out before
# it walks could have ended a page early. It cannot while the items kept weigh at most this, since no item weighs
# more than DynamoDB's 400 KB (moto refuses larger ones): 500 KB + 400 KB < 1 MB.
_NARROWED_BYTES = 500_000


def _range_test(table: Any, index_name: str, given: dict[str, Any]) -> Any:
    """For an index query with a range-key condition, moto's own test of it (`DynamoType.compare` on the attribute
    moto compares), applied before moto sorts the partition: a segment's range query of a 100,000-contact account
    sorted and compared all 100,000 of its items to keep 500. An item moto keeps passes the same test, so the
    candidates are still a superset; moto applies it again (`_NARROWED_BYTES`: when they are the same pages).
    None: not narrowed (no such condition; a `Limit`, which moto judges at every item it walks, one that fails the
    test too, and then answers a LastEvaluatedKey; a legacy QueryFilter, whose every walked item moto counts; an
    ExclusiveStartKey, which moto compares with each item before it, and fails on when it lacks a key). Most
    queries take `moto_query_pages` first, which is exact in those cases too."""
    comparison, objects = given.get("range_comparison"), given.get("range_objs")
    if (
        not comparison
        or not objects
        or given.get("limit")
        or given.get("filter_kwargs")
        or given.get("exclusive_start_key") is not None  # moto compares it with every item it skips: it may raise
    ):
        return None
    conditions = given.get("range_key_conditions")
    if conditions:
        attribute = conditions[-1][0]  # moto compares the last range key of a multi-attribute key
    else:
        index = next((i for i in table.all_indexes() if i.name == index_name), None)
        ranges = [key["AttributeName"] for key in index.schema if key["KeyType"] == "RANGE"] if index else []
        if not ranges:
            return None  # moto's own error, or a table key acting as the range key
        attribute = ranges[0]

    def passes(item: Any) -> bool:
        value = item.attrs.get(attribute)
        return bool(value) and bool(value.compare(comparison, objects))

    return passes
