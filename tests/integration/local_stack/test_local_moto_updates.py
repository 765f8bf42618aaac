"""moto's cheaper UpdateItem (`moto_updates`) answers as moto's own: the same attributes returned, the same errors
(messages included), the same items after random sequences of updates, valid and not, with every ReturnValues, with
and without a condition, and with one expression text meaning other attributes through other names (the table's key
among them). A table with a stream still gets its old images. The validator's copy of a tree (`copy_node`) is the
tree `copy.deepcopy` makes, node for node."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from local_stack.moto_updates import copy_node
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb import models, responses
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.parsing.validators import UpdateExpressionValidator

_TABLES = itertools.count()
# Texts the fan-out's kind of writes use, and texts moto refuses: two clauses of a kind, overlapping or repeated
# paths, a key attribute (through a name), an undefined name or value, a bad function.
_EXPRESSIONS = [
    "SET #a = :v",
    "SET #a = :v, #m.#k = :w",
    "SET #m = :map, #a = :v REMOVE #b",
    "SET #a = if_not_exists(#a, :zero) + :one",
    "SET #l = list_append(if_not_exists(#l, :empty), :list)",
    "REMOVE #b, #m.#k",
    "ADD #s :set",
    "DELETE #s :set",
    "SET #a = :v SET #b = :w",
    "SET #m = :map, #m.#k = :w",
    "SET #a = :v, #a = :w",
    "SET #a = :missing",
    "SET #undefined = :v",
    "SET #a = nope(:v)",
    "SET #m.#k = :w",
]
_NAMES = [
    {"#a": "a", "#b": "b", "#m": "m", "#k": "k", "#l": "l", "#s": "s"},
    {"#a": "pk", "#b": "b", "#m": "m", "#k": "k", "#l": "l", "#s": "s"},  # the key, through the same text
    {"#a": "b", "#b": "a", "#m": "m", "#k": "k", "#l": "l", "#s": "s"},  # #a and #b the same path as another
    {"#a": "a", "#b": "a", "#m": "m", "#k": "a", "#l": "m", "#s": "s"},
]
_CONDITIONS = [None, "attribute_exists(pk)", "attribute_not_exists(#a)", "#a = :v", "size(#m) > :zero"]
_RETURN_VALUES = [None, "NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW", "SOMETIMES"]

_update = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["p1", "p2", "p3"]),
        "expression": st.sampled_from(_EXPRESSIONS),
        "names": st.sampled_from(_NAMES),
        "condition": st.sampled_from(_CONDITIONS),
        "return_values": st.sampled_from(_RETURN_VALUES),
        "v": st.one_of(st.text(max_size=3), st.integers(-3, 3).map(str)),
        "on_failure": st.booleans(),
    }
)


def _values(update: dict[str, Any]) -> dict[str, Any]:
    v = update["v"]
    values: dict[str, Any] = {
        ":v": {"N": v} if v.lstrip("-").isdigit() else {"S": v},
        ":w": {"S": "w" + v},
        ":zero": {"N": "0"},
        ":one": {"N": "1"},
        ":map": {"M": {"k": {"S": v}, "x": {"L": [{"N": "1"}]}}},
        ":empty": {"L": []},
        ":list": {"L": [{"S": v}]},
        ":set": {"SS": ["x", "y" + v]},
    }
    used = update["expression"] + " " + (update["condition"] or "")
    return {name: value for name, value in values.items() if name in used}


def _names(update: dict[str, Any]) -> dict[str, str]:
    used = update["expression"] + " " + (update["condition"] or "")
    return {name: path for name, path in update["names"].items() if name in used}


def _answers(client: Any, table: str, updates: list[dict[str, Any]]) -> list[Any]:
    answers: list[Any] = []
    for update in updates:
        request: dict[str, Any] = {
            "TableName": table,
            "Key": {"pk": {"S": update["key"]}},
            "UpdateExpression": update["expression"],
        }
        if names := _names(update):
            request["ExpressionAttributeNames"] = names
        if values := _values(update):
            request["ExpressionAttributeValues"] = values
        if update["condition"]:
            request["ConditionExpression"] = update["condition"]
        if update["return_values"]:
            request["ReturnValues"] = update["return_values"]
        if update["on_failure"]:
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            answer = client.update_item(**request)
            answer.pop("ResponseMetadata")
            answers.append(answer)
        except ClientError as error:
            answers.append(("error", error.response["Error"], error.response.get("Item")))
        except Exception as crash:  # moto's own bugs (an undefined name in a path, a REMOVE of a set): for both
            answers.append(("crash", type(crash).__name__, str(crash)))
    items = client.scan(TableName=table)["Items"]
    client.delete_table(TableName=table)  # its name is the next run's (ConsumedCapacity names it)
    return [answers, sorted(items, key=lambda item: item["pk"]["S"])]


def _create(client: Any, stream: bool = False, name: str | None = None) -> str:
    name = name or f"updates{next(_TABLES)}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        **({"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}} if stream else {}),
    )
    client.put_item(TableName=name, Item={"pk": {"S": "p1"}, "a": {"N": "1"}, "m": {"M": {}}, "b": {"S": "b"}})
    return name


@pytest.fixture
def undone() -> Any:
    """A context in which moto's own UpdateItem runs (the patches of `moto_updates` and `moto_sizes` taken back)."""

    def context() -> pytest.MonkeyPatch:
        undo = pytest.MonkeyPatch()
        undo.setattr(
            DepthFirstTraverser, "traverse_node_recursively", DepthFirstTraverser.traverse_node_recursively.__wrapped__
        )
        undo.setattr(UpdateExpressionValidator, "validate", UpdateExpressionValidator.validate.__wrapped__)
        undo.setattr(responses, "copy", copy)
        undo.setattr(models, "copy", copy)
        undo.delattr(Node, "__deepcopy__")
        undo.setattr(DynamoType, "size", DynamoType.size.__wrapped__)
        return undo

    return context


@settings(
    max_examples=60,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: a failure is printed as found
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(updates=st.lists(_update, min_size=1, max_size=12))
def test_an_update_answers_as_moto_s_own_update(aws, undone, updates) -> None:
    client = aws.client("dynamodb")
    table = _create(client)
    patched = _answers(client, table, updates)
    undo = undone()
    try:
        original = _answers(client, _create(client, name=table), updates)
    finally:
        undo.undo()
    assert patched == original


def test_the_same_text_is_refused_through_names_that_reach_the_key_after_it_passed(aws) -> None:
    client = aws.client("dynamodb")
    table = _create(client)
    request = {"TableName": table, "Key": {"pk": {"S": "p1"}}, "UpdateExpression": "SET #a = :v"}
    values = {":v": {"S": "x"}}
    for _ in range(2):
        client.update_item(**request, ExpressionAttributeNames={"#a": "a"}, ExpressionAttributeValues=values)
        with pytest.raises(ClientError, match="Cannot update attribute pk"):
            client.update_item(**request, ExpressionAttributeNames={"#a": "pk"}, ExpressionAttributeValues=values)


def test_a_table_with_a_stream_still_records_the_old_image(aws) -> None:
    client = aws.client("dynamodb")
    table = _create(client, stream=True)
    client.update_item(
        TableName=table,
        Key={"pk": {"S": "p1"}},
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": "a"},
        ExpressionAttributeValues={":v": {"N": "2"}},
    )
    # moto's stream records, as its backend holds them (the old image is the backend's copy of the item)
    backend = models.dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    records = [record.record["dynamodb"] for record in backend.get_table(table).stream_shard.items]
    modified = [r for r in records if "OldImage" in r]
    assert [(m["OldImage"]["a"], m["NewImage"]["a"]) for m in modified] == [({"N": "1"}, {"N": "2"})]


def _shape(node: Any, seen: dict[int, int]) -> Any:
    """A node as data: its class, its attributes, and which node of the walk each `parent` is."""
    if not isinstance(node, Node):
        return node if type(node) is not list else [_shape(member, seen) for member in node]
    seen.setdefault(id(node), len(seen))
    return (
        type(node).__name__,
        {
            name: ("parent", seen.get(id(value))) if name == "parent" else _shape(value, seen)
            for name, value in sorted(vars(node).items())
        },
    )


def _objects(node: Any) -> list[int]:
    if isinstance(node, Node):
        lists = [id(node.children)] if node.children is not None else []
        return [id(node), *lists, *(i for child in node.children or [] for i in _objects(child))]
    return []


@pytest.mark.parametrize("text", [t for t in _EXPRESSIONS if "nope" not in t])
def test_a_tree_is_copied_as_deepcopy_copies_it(text: str) -> None:
    tree = UpdateExpressionParser.make(text)
    with pytest.MonkeyPatch.context() as undo:
        undo.delattr(Node, "__deepcopy__")
        reference = copy.deepcopy(tree)
    copied = copy_node(tree, {})
    assert _shape(copied, {}) == _shape(reference, {}) == _shape(tree, {})
    assert not set(_objects(copied)) & set(_objects(tree))  # nothing shared with the remembered tree
    assert copy.deepcopy(tree).__class__ is tree.__class__  # and deepcopy takes this path
    for child in copied.children:
        assert child.parent is copied
