"""moto's UpdateItem, cheaper, same answers (a patch applied in moto's process, like `moto_fixes`).

Profiled in the moto server during the push bench's fan-out (`LOCAL_STACK_MOTO_PROFILE`, docs/decisions.md): of an
UpdateItem's time, about 40% is moto's UpdateExpression validator, a quarter of it `isinstance` checks against
moto's abstract node classes (a Python call each), and much of the rest three walks that depend on the expression
alone; then the deep copies of the item that only the return values and streams read. Here:

* the validator's walkers decide what to do with a node by its type, remembered per walker (moto asks
  `isinstance` against its ABCs at every node, twice; a node's class answers the same for all its nodes);
* the three checks that read only the expression, its names and the table's keys (one SET/REMOVE/ADD clause
  each, no overlapping paths, no key attribute updated) run once per expression tree, names and keys: they change
  nothing and either raise or pass, and the same inputs give the same answer; a failure is never remembered;
* with `ReturnValues` NONE the handler does not deep-copy the item as it was (only the returned attributes read
  that copy), and on a table without a stream the backend does not either (only the stream reads its copy);
* the validator's deep copy of the remembered tree (moto's validators replace its nodes, so each request needs its
  own) copies each node's attributes directly instead of through `copy`'s generic `__reduce_ex__` path, a third of
  an UpdateItem's CPU (profiled 2026-12-05): the same copy, node for node (`Node.__deepcopy__`).
"""

from __future__ import annotations

import functools
import threading
from types import MethodType
from typing import Any

_MARK = "_account_sync_update_speedup"
_REMEMBERED = 4096
_skip_copy = threading.local()  # `on`: the deep copy about to be made is read by nothing (see the docstring)


def apply_update_speedups() -> None:
    """Install the three patches (idempotent)."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser

    if getattr(DepthFirstTraverser.traverse_node_recursively, _MARK, False):
        return
    _walk_by_type()
    _check_each_expression_once()
    _copy_only_what_is_read()
    _copy_trees_directly()


def _walk_by_type() -> None:
    """`DepthFirstTraverser.traverse_node_recursively` as moto writes it, with each `isinstance` against moto's node
    classes answered from the node's type. Which processor a node type gets is remembered per walker class: every
    moto walker's map is a literal of its class (the same classes, in the same order, for every instance, each to a
    method of the walker), and each request makes new walkers; a map entry that is not a method of its walker is
    looked up per walker, as before."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node

    original = DepthFirstTraverser.traverse_node_recursively
    is_node: dict[type, bool] = {}
    by_class: dict[tuple[type, type], Any] = {}  # (walker class, node class) -> the method's function, or None
    per_walker = object()  # the entry's processor is not a method of the walker: found per walker

    def processor_of_map(walker: Any, kind: type) -> Any:
        found: dict[type, Any] = walker.__dict__.setdefault("_account_sync_processors", {})
        if kind not in found:
            # moto's `process`: the first class of the map the node is an instance of
            found[kind] = next(
                (processor for cls, processor in walker._processing_map().items() if issubclass(kind, cls)), None
            )
        return found[kind]

    def processor_for(walker: Any, kind: type) -> Any:
        key = (type(walker), kind)
        function = by_class.get(key, per_walker)
        if function is None:
            return None
        if function is not per_walker:
            return MethodType(function, walker)
        processor = processor_of_map(walker, kind)
        if key not in by_class:
            method = type(processor) is MethodType and processor.__self__ is walker
            by_class[key] = processor.__func__ if method else None if processor is None else per_walker
        return processor

    @functools.wraps(original)
    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        kind = type(node)
        node_kind = is_node.get(kind)
        if node_kind is None:
            node_kind = is_node[kind] = issubclass(kind, Node)
        if node_kind:
            parent_node = node.parent
            if node.children is not None:
                for i, child_node in enumerate(node.children):
                    self.pre_processing_of_child(node, i)
                    self.traverse_node_recursively(child_node, i)
            processor = processor_for(self, kind)
            if processor is not None:
                node = processor(node)
                node.parent = parent_node
                if parent_node:
                    parent_node.children[child_id] = node
        return node

    setattr(traverse_node_recursively, _MARK, True)
    DepthFirstTraverser.traverse_node_recursively = traverse_node_recursively  # type: ignore[method-assign]


def _check_each_expression_once() -> None:
    """`UpdateExpressionValidator.validate` skipping the expression-only checks for an expression tree, names and
    table keys that passed them before. moto parses a text into one remembered tree (`moto_fixes`), so the tree
    stands for its text; the validator walks a deep copy of it."""
    from moto.dynamodb.parsing.validators import (
        ActionCountValidator,
        OverlappingPathsValidator,
        UpdateExpressionValidator,
        UpdateHashRangeKeyValidator,
    )

    expression_only = (ActionCountValidator, OverlappingPathsValidator, UpdateHashRangeKeyValidator)
    passed: dict[int, tuple[Any, set[Any]]] = {}  # id(tree) -> (tree, {(names, keys)}): the tree is kept alive
    init = UpdateExpressionValidator.__init__
    validate_all = UpdateExpressionValidator.validate

    @functools.wraps(init)
    def remember_tree(self: Any, expression: Any, *args: Any, **kwargs: Any) -> None:
        init(self, expression, *args, **kwargs)
        self._account_sync_tree = expression

    @functools.wraps(validate_all)
    def validate(self: Any) -> Any:
        tree = self._account_sync_tree
        key = (tuple(sorted((self.expression_attribute_names or {}).items())), tuple(self.table.table_key_attrs))
        seen = passed.get(id(tree))
        known = seen is not None and seen[0] is tree and key in seen[1]
        n = self.node_to_validate
        for processor in self.processors:
            if isinstance(processor, expression_only):
                if known:
                    continue
            elif not known:  # the expression-only checks (moto runs them first) all passed
                known = True
                if seen is None or seen[0] is not tree:
                    if len(passed) >= _REMEMBERED:
                        passed.clear()
                    seen = passed[id(tree)] = (tree, set())
                seen[1].add(key)
            n = processor.traverse(n)
        return n

    UpdateExpressionValidator.__init__ = remember_tree  # type: ignore[method-assign]
    UpdateExpressionValidator.validate = validate  # type: ignore[method-assign]


class _CopyUnlessUnread:
    """The `copy` module as a moto module sees it, except that `deepcopy` gives None while `_skip_copy.on` says
    its copy is read by nothing."""

    def __getattr__(self, name: str) -> Any:
        import copy

        return getattr(copy, name)

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        import copy

        if getattr(_skip_copy, "on", False):
            _skip_copy.on = False  # the one copy of the call it was set for
            return None
        return copy.deepcopy(value, memo)


def _copy_only_what_is_read() -> None:
    from moto.dynamodb import models, responses

    handler_update = responses.DynamoHandler.update_item
    backend_update = models.DynamoDBBackend.update_item

    @functools.wraps(handler_update)
    def update_item(self: Any) -> Any:
        # the handler's copy of the item as it was: read only for ReturnValues other than NONE
        _skip_copy.on = self.body.get("ReturnValues", "NONE") == "NONE"
        try:
            return handler_update(self)
        finally:
            _skip_copy.on = False

    @functools.wraps(backend_update)
    def backend_update_item(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
        # the backend's copy (`orig_item`): read only by the table's stream
        _skip_copy.on = self.get_table(table_name).stream_shard is None
        try:
            return backend_update(self, table_name, *args, **kwargs)
        finally:
            _skip_copy.on = False

    responses.DynamoHandler.update_item = update_item  # type: ignore[method-assign]
    models.DynamoDBBackend.update_item = backend_update_item  # type: ignore[method-assign]
    responses.copy = _CopyUnlessUnread()  # type: ignore[assignment]
    models.copy = _CopyUnlessUnread()  # type: ignore[assignment]


_ATOMIC = frozenset({str, int, bool, float, type(None)})  # what `copy.deepcopy` returns as it is


def copy_node(node: Any, memo: dict[int, Any]) -> Any:
    """`copy.deepcopy` of an expression tree's node, as `copy` makes it (`copyreg.__newobj__` then the node's
    `__dict__` deep-copied, the node and each list registered in `memo` before their contents, so that a child's
    `parent` is the new parent), without the generic `__reduce_ex__` path: a node's attributes are atoms, lists of
    atoms and nodes, and nodes; anything else is left to `copy.deepcopy`."""
    import copy

    kind = type(node)
    new = kind.__new__(kind)
    memo[id(node)] = new
    state = {}
    for name, value in node.__dict__.items():
        if type(value) in _ATOMIC:
            state[name] = value
        elif type(value) is list and id(value) not in memo:
            copied: list[Any] = []
            memo[id(value)] = copied
            for member in value:
                if type(member) in _ATOMIC:
                    copied.append(member)
                elif getattr(type(member), "__deepcopy__", None) is copy_node and id(member) not in memo:
                    copied.append(copy_node(member, memo))  # what `copy.deepcopy` would call
                else:
                    copied.append(copy.deepcopy(member, memo))
            state[name] = copied
        else:
            state[name] = copy.deepcopy(value, memo)
    new.__dict__.update(state)
    return new


def _copy_trees_directly() -> None:
    """moto's AST nodes copied by `copy_node` (`Validator.__init__` deep-copies the remembered tree per request)."""
    from moto.dynamodb.parsing.ast_nodes import Node

    Node.__deepcopy__ = copy_node  # type: ignore[attr-defined]
