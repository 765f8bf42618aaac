"""Expressions written once by pynamodb and sent many times with other values: the fan-out's contact writes of one
change share every name and every word of their expressions, and differ only in a few values (the revision as read,
the outbox entries' old values, the time). Building and serializing pynamodb's expression objects for each of them
cost 0.102 ms of the client's CPU a write; from a template, 0.020 ms (in-process, 9 synced fields; on Lambda the
fan-out's writes are CPU-bound, so this is its throughput: docs/decisions.md, Target 4, amended 2026-12-05). The
values filled per call are still serialized by the model's attributes, so pynamodb stays the one source of
attribute names and types."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pynamodb.attributes import Attribute
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.operand import Value
from pynamodb.expressions.update import Action, Update


def expressions(
    actions: Sequence[Action] = (),
    condition: Condition | None = None,
    *,
    key: Condition | None = None,
    filter: Condition | None = None,
) -> dict[str, Any]:
    """A boto3 call's expressions with their names and values, written by pynamodb's expression classes: the boto3
    calls take the same typed actions and conditions as the models' own calls."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    if actions:
        kwargs["UpdateExpression"] = Update(*actions).serialize(names, values)
    if condition is not None:
        kwargs["ConditionExpression"] = condition.serialize(names, values)
    if key is not None:
        kwargs["KeyConditionExpression"] = key.serialize(names, values)
    if filter is not None:
        kwargs["FilterExpression"] = filter.serialize(names, values)
    if names:
        kwargs["ExpressionAttributeNames"] = {placeholder: name for name, placeholder in names.items()}
    if values:
        kwargs["ExpressionAttributeValues"] = values
    return kwargs


class NotTemplatable(ValueError):
    """pynamodb would write another expression for these values than the template's: a SET of None is a REMOVE,
    and a one-entry map keyed by a DynamoDB type (`{"S": None}`) is taken for a value already serialized. The
    caller builds that request in full."""


# Actions and condition from a value per slot: pynamodb operands for a template, plain values for a write in full
Build = Callable[[Mapping[str, Any]], tuple[Sequence[Action], Condition | None]]


@dataclass(frozen=True)
class ExpressionTemplate:
    """An update's expressions serialized once, with named slots: the value placeholders of the operands given to
    `build`, which `fill` gives other values, serialized by the same attributes."""

    kwargs: Mapping[str, Any]  # the expressions, names and values of the build
    slots: Mapping[str, tuple[Attribute[Any] | None, tuple[str, ...]]]  # slot -> its attribute, value placeholders

    @classmethod
    def build(cls, make: Build, first: Mapping[str, tuple[Attribute[Any] | None, Any]]) -> ExpressionTemplate:
        """`make` builds the actions and condition from an operand per slot (`first`: the attribute that serializes
        it, as pynamodb's path would, and a value); the placeholders pynamodb gives those operands' values are the
        slots'. pynamodb never shares a value placeholder between operands, so an operand is found by identity."""
        operands = {name: Value(value, attribute=attribute) for name, (attribute, value) in first.items()}
        actions, condition = make(operands)
        kwargs = expressions(actions, condition)
        values = kwargs.get("ExpressionAttributeValues", {})
        slots = {}
        for name, operand in operands.items():
            placeholders = tuple(ph for ph, value in values.items() if value is operand.value)
            if not placeholders:
                raise NotTemplatable(f"slot {name} is not a value of the expressions built")
            slots[name] = (first[name][0], placeholders)
        return cls(kwargs, slots)

    def fill(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The expressions with these slots' values (the others as built); `NotTemplatable` where pynamodb would
        write another expression for a value."""
        filled = dict(self.kwargs["ExpressionAttributeValues"])
        for name, value in values.items():
            attribute, placeholders = self.slots[name]
            serialized = Value(value, attribute=attribute).value
            if None in serialized.values():  # what pynamodb's SET makes a REMOVE
                raise NotTemplatable(f"slot {name}: this value would change the expression itself")
            for placeholder in placeholders:
                filled[placeholder] = serialized
        return {**self.kwargs, "ExpressionAttributeValues": filled}
