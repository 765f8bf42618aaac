"""template.yaml as the single source of truth for every local and test resource.

Reads the SAM template (with the CloudFormation short tags), resolves its parameters and intrinsic functions the
way CloudFormation would for a stack named `account-sync-<stage>`, and creates its DynamoDB tables and SQS queues
on whatever boto3 reaches: a moto server (an endpoint URL) or `moto.mock_aws()` in-process. Tests and the local
stack never hand-copy a key schema or a queue attribute: they call `create_resources`.

What is emulated: `AWS::DynamoDB::Table` and `AWS::SQS::Queue` are created; functions, layers, log groups and
IAM roles are only *named* (their `Ref` and `GetAtt ....Arn` resolve, for the functions' environment), because
the functions run in-process (`lambda_runtime`) and nothing checks permissions. Any other resource type (alarms,
for instance) is skipped; referring to one from a function's environment is a `TemplateError`, never a silently
wrong value.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from local_stack.lambda_runtime import FunctionSpec, handler_location

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = PROJECT_ROOT / "template.yaml"
REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
FUNCTION = "AWS::Serverless::Function"
LAYER = "AWS::Serverless::LayerVersion"
LOG_GROUP = "AWS::Logs::LogGroup"
ROLE = "AWS::IAM::Role"

# Resources that are only named (type → the property holding the name, the ARN's format).
_NAMED = {
    FUNCTION: ("FunctionName", "arn:aws:lambda:{region}:{account}:function:{name}"),
    LAYER: ("LayerName", "arn:aws:lambda:{region}:{account}:layer:{name}:1"),
    LOG_GROUP: ("LogGroupName", "arn:aws:logs:{region}:{account}:log-group:{name}:*"),
    ROLE: ("RoleName", "arn:aws:iam::{account}:role/{name}"),
}


class TemplateError(ValueError):
    """The template asks for something the local stack cannot do, or a parameter value is invalid."""


# --- YAML with the CloudFormation short tags ---------------------------------------------------------------


class _CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader plus `!Ref`, `!Sub`, `!GetAtt`... turned into their long form (`{"Fn::Sub": ...}`).

    Dates stay strings (`AWSTemplateFormatVersion: 2010-09-09` unquoted), as CloudFormation reads them.
    """


_CloudFormationLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_SHORT_FUNCTIONS = (
    "And",
    "Base64",
    "Cidr",
    "Equals",
    "FindInMap",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
)


def _node_value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]


def _long_form(key: str):  # type: ignore[no-untyped-def]
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value = _node_value(loader, node)
        if key == "Fn::GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {key: value}

    return construct


_CloudFormationLoader.add_constructor("!Ref", _long_form("Ref"))
_CloudFormationLoader.add_constructor("!Condition", _long_form("Condition"))
_CloudFormationLoader.add_constructor("!GetAtt", _long_form("Fn::GetAtt"))
for _name in _SHORT_FUNCTIONS:
    _CloudFormationLoader.add_constructor(f"!{_name}", _long_form(f"Fn::{_name}"))


def parse_template(text: str) -> dict[str, Any]:
    """Parse template YAML (or JSON) text into the long form CloudFormation uses."""
    body = yaml.load(text, Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(body, dict) or "Resources" not in body:
        raise TemplateError("not a CloudFormation template: no Resources")
    return body


@dataclass(frozen=True)
class Template:
    """A parsed template and where it lives (CodeUri and ContentUri are relative to its folder)."""

    body: Mapping[str, Any]
    path: Path = DEFAULT_TEMPLATE

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def parameters(self) -> Mapping[str, Any]:
        return self.body.get("Parameters") or {}

    @property
    def resources(self) -> Mapping[str, Any]:
        return self.body.get("Resources") or {}

    @property
    def function_globals(self) -> Mapping[str, Any]:
        return (self.body.get("Globals") or {}).get("Function") or {}

    def resource_type(self, logical_id: str) -> str:
        return str(self.resources[logical_id].get("Type", ""))

    def logical_ids(self, resource_type: str) -> list[str]:
        return [lid for lid, res in self.resources.items() if res.get("Type") == resource_type]


def load_template(path: str | Path | None = None) -> Template:
    """Read a template file; by default the project's `template.yaml`."""
    template_path = Path(path) if path is not None else DEFAULT_TEMPLATE
    return Template(parse_template(template_path.read_text(encoding="utf-8")), template_path.resolve())


TemplateLike = Template | str | Path | Mapping[str, Any] | None


def as_template(template: TemplateLike) -> Template:
    """Accept a `Template`, a path, an already parsed body (relative to the project root) or None (default)."""
    if isinstance(template, Template):
        return template
    if template is None or isinstance(template, str | Path):
        return load_template(template)
    return Template(template, DEFAULT_TEMPLATE)


# --- parameters and pseudo parameters ----------------------------------------------------------------------


def _is_list_type(parameter_type: str) -> bool:
    return parameter_type == "CommaDelimitedList" or parameter_type.startswith("List<")


def _scalar_string(value: Any) -> str:
    """How CloudFormation turns a YAML scalar into the string a resource sees."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    raise TemplateError(f"expected a string, got {type(value).__name__}: {value!r}")


def _parameter_value(name: str, spec: Mapping[str, Any], raw: Any) -> str | list[str]:
    parameter_type = str(spec.get("Type", "String"))
    if _is_list_type(parameter_type):
        items = [_scalar_string(item) for item in raw] if isinstance(raw, list | tuple) else str(raw).split(",")
        if "Number" in parameter_type:
            for item in items:
                _as_number(name, item)
        return items
    if parameter_type.startswith("AWS::SSM::Parameter"):
        raise TemplateError(f"parameter {name}: SSM parameter types are not emulated, pass a value instead")
    value = _scalar_string(raw)
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [_scalar_string(item) for item in allowed]:
        raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(str(pattern), value) is None:
        raise TemplateError(f"parameter {name}={value!r} does not match {pattern!r}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        raise TemplateError(f"parameter {name}={value!r} is shorter than {spec['MinLength']}")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        raise TemplateError(f"parameter {name}={value!r} is longer than {spec['MaxLength']}")
    if parameter_type == "Number":
        number = _as_number(name, value)
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise TemplateError(f"parameter {name}={value} is below {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise TemplateError(f"parameter {name}={value} is above {spec['MaxValue']}")
    return value


def _as_number(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise TemplateError(f"parameter {name}={value!r} is not a number") from None


def resolve_parameters(
    template: TemplateLike, stage: str | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, str | list[str]]:
    """Every declared parameter's value: its override, else its Default; validated like CloudFormation.

    `stage` is a shorthand for the `Stage` parameter.
    """
    tpl = as_template(template)
    declared = tpl.parameters
    values_in = dict(overrides or {})
    if stage is not None and "Stage" in declared:
        if "Stage" in values_in and _scalar_string(values_in["Stage"]) != stage:
            raise TemplateError(f"stage {stage!r} and the Stage override {values_in['Stage']!r} disagree")
        values_in["Stage"] = stage
    unknown = sorted(set(values_in) - set(declared))
    if unknown:
        raise TemplateError(f"unknown parameters: {', '.join(unknown)}")
    resolved: dict[str, str | list[str]] = {}
    for name, spec in declared.items():
        if name in values_in:
            raw = values_in[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            raise TemplateError(f"parameter {name} has no Default: pass it in parameter_overrides")
        resolved[name] = _parameter_value(name, spec, raw)
    return resolved


def account_id() -> str:
    """The account moto puts in its ARNs (moto honours MOTO_ACCOUNT_ID)."""
    return os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)


def _stack_name(parameters: Mapping[str, Any], stage: str | None) -> str:
    return f"account-sync-{parameters.get('Stage', stage or 'local')}"


def _pseudo_parameters(stack_name: str, account: str) -> dict[str, Any]:
    return {
        "AWS::AccountId": account,
        "AWS::NotificationARNs": [],
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{account}:stack/{stack_name}/"
        "00000000-0000-0000-0000-000000000000",
        "AWS::StackName": stack_name,
        "AWS::URLSuffix": "amazonaws.com",
    }


# --- the resources created (or named) ----------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedResource:
    """One template resource as the local stack holds it: what `!Ref` and `!GetAtt` return for it.

    `ref` is the table name, the queue URL, the function name or the layer version ARN; `attributes` holds
    `Arn`, `QueueName`, `QueueUrl`, `StreamArn`... `created` is False for resources that are only named
    (functions and layers run in-process, moto does not hold them).
    """

    logical_id: str
    resource_type: str
    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    created: bool = True

    @property
    def arn(self) -> str:
        return self.attributes["Arn"]


class Resources(Mapping[str, CreatedResource]):
    """Logical id → `CreatedResource`, with the parameter values the resources were created with."""

    def __init__(
        self,
        entries: Mapping[str, CreatedResource],
        *,
        parameters: Mapping[str, str | list[str]],
        stack_name: str,
        account: str = DEFAULT_ACCOUNT_ID,
        region: str = REGION,
    ) -> None:
        self._entries = dict(entries)
        self.parameters = dict(parameters)
        self.stack_name = stack_name
        self.account_id = account
        self.region = region

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

    def ref(self, logical_id: str) -> str:
        return self[logical_id].ref

    def get_att(self, logical_id: str, attribute: str) -> str:
        resource = self[logical_id]
        try:
            return resource.attributes[attribute]
        except KeyError:
            raise TemplateError(f"{logical_id} ({resource.resource_type}) has no attribute {attribute}") from None

    def table_name(self, logical_id: str) -> str:
        return self._typed(logical_id, TABLE).ref

    def queue_url(self, logical_id: str) -> str:
        return self._typed(logical_id, QUEUE).ref

    def queue_arn(self, logical_id: str) -> str:
        return self._typed(logical_id, QUEUE).arn

    def of_type(self, resource_type: str) -> dict[str, CreatedResource]:
        return {lid: res for lid, res in self._entries.items() if res.resource_type == resource_type}

    def refs(self) -> dict[str, str]:
        """Logical id → table name / queue URL / function name, e.g. to print what a stack holds."""
        return {lid: res.ref for lid, res in self._entries.items()}

    def _typed(self, logical_id: str, resource_type: str) -> CreatedResource:
        resource = self[logical_id]
        if resource.resource_type != resource_type:
            raise TemplateError(f"{logical_id} is a {resource.resource_type}, not a {resource_type}")
        return resource


# --- intrinsic functions --------------------------------------------------------------------------------------

_NO_VALUE: Any = object()  # AWS::NoValue: the key or list item disappears
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class _Resolver:
    """Evaluates Ref, GetAtt, Sub, Join, If... against parameters and the resources known so far."""

    def __init__(
        self,
        template: Template,
        parameters: Mapping[str, Any],
        pseudo: Mapping[str, Any],
        resources: Mapping[str, CreatedResource],
    ) -> None:
        self._template = template
        self._parameters = parameters
        self._pseudo = pseudo
        self._resources = resources  # a live dict while resources are being created
        self._conditions: dict[str, bool] = {}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, argument),) = value.items()
                if key == "Ref":
                    return self._ref(argument)
                if isinstance(key, str) and key.startswith("Fn::"):
                    return self._function(key[4:], argument)
            resolved = {key: self.resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not _NO_VALUE}
        if isinstance(value, list):
            return [item for item in (self.resolve(entry) for entry in value) if item is not _NO_VALUE]
        return value

    def string(self, value: Any) -> str:
        resolved = self.resolve(value)
        if isinstance(resolved, list):
            raise TemplateError(f"{value!r} resolves to a list where a string is needed (use !Join)")
        return _scalar_string(resolved)

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self._template.body.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = self._truth(conditions[name])
        return self._conditions[name]

    def included(self, resource: Mapping[str, Any]) -> bool:
        name = resource.get("Condition")
        return True if name is None else self.condition(str(name))

    def _truth(self, expression: Any) -> bool:
        if isinstance(expression, dict) and set(expression) == {"Condition"}:
            return self.condition(str(expression["Condition"]))
        value = self.resolve(expression)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise TemplateError(f"condition {expression!r} is not a boolean")

    def _ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"Ref takes a name, not {name!r}")
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self._parameters:
            return self._parameters[name]
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._resources:
            return self._resources[name].ref
        return self._not_available(name)

    def _get_att(self, argument: Any) -> str:
        target = argument.split(".", 1) if isinstance(argument, str) else list(argument)
        if len(target) != 2:
            raise TemplateError(f"GetAtt needs a resource and an attribute: {argument!r}")
        logical_id, attribute = str(target[0]), self.string(target[1])
        if logical_id not in self._resources:
            return self._not_available(logical_id)
        resource = self._resources[logical_id]
        if attribute not in resource.attributes:
            raise TemplateError(f"{logical_id} ({resource.resource_type}) has no attribute {attribute} locally")
        return resource.attributes[attribute]

    def _not_available(self, name: str) -> Any:
        if name in self._template.resources:
            raise TemplateError(f"{name} ({self._template.resource_type(name)}) is not created by the local stack")
        raise TemplateError(f"unknown parameter or resource {name}")

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self.resolve(v) for k, v in (argument[1] or {}).items()}
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            name = name.strip()
            if name in variables:
                return _scalar_string(variables[name])
            if name in self._parameters or name in self._pseudo or name in self._resources:
                value = self._ref(name)
                if isinstance(value, list):
                    raise TemplateError(f"Sub: ${{{name}}} is a list")
                return _scalar_string(value)
            if "." in name:
                return self._get_att(name)
            return _scalar_string(self._not_available(name))

        return _SUB_VARIABLE.sub(replace, str(text))

    def _function(self, name: str, argument: Any) -> Any:
        if name == "GetAtt":
            return self._get_att(argument)
        if name == "Sub":
            return self._sub(argument)
        if name == "Join":
            delimiter, items = argument
            resolved = self.resolve(items)
            return str(delimiter).join(_scalar_string(item) for item in resolved)
        if name == "Select":
            index, items = argument
            return self.resolve(items)[int(self.string(index))]
        if name == "Split":
            delimiter, source = argument
            return self.string(source).split(str(delimiter))
        if name == "If":
            condition_name, when_true, when_false = argument
            return self.resolve(when_true if self.condition(str(condition_name)) else when_false)
        if name == "Equals":
            left, right = (self.resolve(item) for item in argument)
            return _comparable(left) == _comparable(right)
        if name == "And":
            return all(self._truth(item) for item in argument)
        if name == "Or":
            return any(self._truth(item) for item in argument)
        if name == "Not":
            return not self._truth(argument[0])
        if name == "FindInMap":
            map_name, top_key, second_key = (self.string(item) for item in argument[:3])
            try:
                return self._template.body["Mappings"][map_name][top_key][second_key]
            except KeyError:
                raise TemplateError(f"FindInMap: no {map_name}/{top_key}/{second_key}") from None
        if name == "Base64":
            return base64.b64encode(self.string(argument).encode()).decode()
        if name == "GetAZs":
            return [f"{REGION}a", f"{REGION}b", f"{REGION}c"]
        if name == "ToJsonString":
            return json.dumps(self.resolve(argument), separators=(",", ":"))
        if name == "Length":
            return len(self.resolve(argument))
        raise TemplateError(f"Fn::{name} is not supported by the local stack")


def _comparable(value: Any) -> Any:
    return _scalar_string(value) if isinstance(value, str | int | float | bool) else value


def _references(value: Any) -> set[str]:
    """Logical ids (and parameter names) a property value refers to."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                found.add(argument)
            elif key == "Fn::GetAtt":
                target = argument.split(".", 1) if isinstance(argument, str) else argument
                found.add(str(target[0]))
            elif key == "Fn::Sub":
                text, variables = (argument[0], argument[1] or {}) if isinstance(argument, list) else (argument, {})
                for match in _SUB_VARIABLE.finditer(str(text)):
                    name = match.group(1).strip()
                    if not name.startswith("!") and name not in variables:
                        found.add(name.split(".", 1)[0])
                found |= _references(variables)
            else:
                found |= _references(argument)
    elif isinstance(value, list):
        for item in value:
            found |= _references(item)
    return found


def _creation_order(template: Template, logical_ids: list[str]) -> list[str]:
    """Dependencies first (a dead-letter queue before the queue whose RedrivePolicy names it)."""
    wanted = set(logical_ids)
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(logical_id: str, path: tuple[str, ...]) -> None:
        if state.get(logical_id) == "done":
            return
        if state.get(logical_id) == "visiting":
            raise TemplateError(f"circular dependency: {' -> '.join((*path, logical_id))}")
        state[logical_id] = "visiting"
        resource = template.resources[logical_id]
        depends_on = resource.get("DependsOn") or []
        depends = _references(resource.get("Properties") or {}) | set(
            [depends_on] if isinstance(depends_on, str) else depends_on
        )
        for dependency in sorted(depends & wanted):
            visit(dependency, (*path, logical_id))
        state[logical_id] = "done"
        order.append(logical_id)

    for logical_id in logical_ids:
        visit(logical_id, ())
    return order


# --- creating tables and queues ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsClients:
    """The two clients resource creation needs."""

    dynamodb: Any
    sqs: Any

    @classmethod
    def from_any(cls, session_or_clients: Any = None) -> AwsClients:
        """Accept AwsClients, a mapping {"dynamodb": client, "sqs": client}, a boto3 Session or None.

        Sessions (and None: boto3's default) make clients for us-east-1 that follow the environment, so
        `AWS_ENDPOINT_URL` sends them to a moto server, and under `mock_aws()` they stay in-process.
        """
        if isinstance(session_or_clients, AwsClients):
            return session_or_clients
        if isinstance(session_or_clients, Mapping):
            return cls(dynamodb=session_or_clients["dynamodb"], sqs=session_or_clients["sqs"])
        session = session_or_clients
        if session is None:
            import boto3

            session = boto3.session.Session(region_name=REGION)
        return cls(
            dynamodb=session.client("dynamodb", region_name=REGION),
            sqs=session.client("sqs", region_name=REGION),
        )


def _true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _numbers(values: Mapping[str, Any]) -> dict[str, int]:
    return {key: int(value) for key, value in values.items()}


_TABLE_PROPERTIES_NOT_EMULATED = (
    "ContributorInsightsSpecification",
    "ImportSourceSpecification",
    "KinesisStreamSpecification",
    "ResourcePolicy",
    "WarmThroughput",
)


def _index(index: Mapping[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "IndexName": index["IndexName"],
        "KeySchema": index["KeySchema"],
        "Projection": index["Projection"],
    }
    if "ProvisionedThroughput" in index:
        request["ProvisionedThroughput"] = _numbers(index["ProvisionedThroughput"])
    if "OnDemandThroughput" in index:
        request["OnDemandThroughput"] = _numbers(index["OnDemandThroughput"])
    return request


def _create_table(clients: AwsClients, logical_id: str, props: Mapping[str, Any], stack_name: str) -> CreatedResource:
    name = str(props.get("TableName") or f"{stack_name}-{logical_id}")
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in props:
        request["ProvisionedThroughput"] = _numbers(props["ProvisionedThroughput"])
    if "OnDemandThroughput" in props:
        request["OnDemandThroughput"] = _numbers(props["OnDemandThroughput"])
    if props.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = [_index(index) for index in props["GlobalSecondaryIndexes"]]
    if props.get("LocalSecondaryIndexes"):
        request["LocalSecondaryIndexes"] = [_index(index) for index in props["LocalSecondaryIndexes"]]
    if "StreamSpecification" in props:
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": props["StreamSpecification"]["StreamViewType"],
        }
    if "SSESpecification" in props:
        sse = props["SSESpecification"]
        request["SSESpecification"] = {"Enabled": _true(sse.get("SSEEnabled", False))}
        for key in ("SSEType", "KMSMasterKeyId"):
            if key in sse:
                request["SSESpecification"][key] = sse[key]
    if "TableClass" in props:
        request["TableClass"] = props["TableClass"]
    if "DeletionProtectionEnabled" in props:
        request["DeletionProtectionEnabled"] = _true(props["DeletionProtectionEnabled"])
    if props.get("Tags"):
        request["Tags"] = [{"Key": str(tag["Key"]), "Value": str(tag["Value"])} for tag in props["Tags"]]
    ignored = [key for key in _TABLE_PROPERTIES_NOT_EMULATED if key in props]
    if ignored:
        logger.debug("%s: %s not emulated locally", logical_id, ", ".join(ignored))

    clients.dynamodb.create_table(**request)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and _true(ttl.get("Enabled", False)):
        clients.dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
        )
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr and _true(pitr.get("PointInTimeRecoveryEnabled", False)):
        clients.dynamodb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    table = clients.dynamodb.describe_table(TableName=name)["Table"]
    attributes = {"Arn": table["TableArn"]}
    if table.get("LatestStreamArn"):
        attributes["StreamArn"] = table["LatestStreamArn"]
    return CreatedResource(logical_id, TABLE, name, attributes)


_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)


def _queue_attribute(value: Any) -> str:
    if isinstance(value, dict):
        policy = dict(value)
        if "maxReceiveCount" in policy:
            policy["maxReceiveCount"] = int(policy["maxReceiveCount"])
        return json.dumps(policy)
    return _scalar_string(value)


def _create_queue(clients: AwsClients, logical_id: str, props: Mapping[str, Any], stack_name: str) -> CreatedResource:
    fifo = _true(props.get("FifoQueue", False))
    name = str(props.get("QueueName") or f"{stack_name}-{logical_id}" + (".fifo" if fifo else ""))
    attributes = {key: _queue_attribute(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
    if not fifo:
        attributes.pop("FifoQueue", None)  # SQS accepts FifoQueue only as "true"
    request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if props.get("Tags"):
        request["tags"] = {str(tag["Key"]): str(tag["Value"]) for tag in props["Tags"]}
    url = clients.sqs.create_queue(**request)["QueueUrl"]
    arn = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return CreatedResource(logical_id, QUEUE, url, {"Arn": arn, "QueueName": name, "QueueUrl": url})


_CREATORS = {TABLE: _create_table, QUEUE: _create_queue}


def _named_resource(
    resolver: _Resolver, logical_id: str, resource: Mapping[str, Any], stack_name: str, account: str
) -> CreatedResource:
    """What `!Ref` and `!GetAtt ....Arn` give for a resource that moto does not hold (the functions run here)."""
    resource_type = str(resource.get("Type"))
    props = resource.get("Properties") or {}
    name_property, arn_format = _NAMED[resource_type]
    name = resolver.string(props[name_property]) if name_property in props else f"{stack_name}-{logical_id}"
    arn = arn_format.format(region=REGION, account=account, name=name)
    ref = arn if resource_type == LAYER else name
    return CreatedResource(logical_id, resource_type, ref, {"Arn": arn}, created=False)


def create_resources(
    template: TemplateLike = None,
    session_or_clients: Any = None,
    stage: str = "local",
    parameter_overrides: Mapping[str, Any] | None = None,
) -> Resources:
    """Create every table and queue of the template, exactly as it declares them, and name the rest.

    Works against a moto server (clients that follow `AWS_ENDPOINT_URL`) and under `moto.mock_aws()`.
    Queues that others refer to (dead-letter queues) are created first, so a RedrivePolicy holds the real ARN.
    """
    tpl = as_template(template)
    clients = AwsClients.from_any(session_or_clients)
    parameters = resolve_parameters(tpl, stage, parameter_overrides)
    stack_name = _stack_name(parameters, stage)
    account = account_id()
    entries: dict[str, CreatedResource] = {}
    resolver = _Resolver(tpl, parameters, _pseudo_parameters(stack_name, account), entries)

    creatable = [lid for lid, res in tpl.resources.items() if res.get("Type") in _CREATORS and resolver.included(res)]
    for logical_id in _creation_order(tpl, creatable):
        resource = tpl.resources[logical_id]
        properties = resolver.resolve(resource.get("Properties") or {})
        entries[logical_id] = _CREATORS[resource["Type"]](clients, logical_id, properties, stack_name)
        logger.debug("created %s: %s", logical_id, entries[logical_id].ref)
    for logical_id, resource in tpl.resources.items():
        if resource.get("Type") in _NAMED and resolver.included(resource):
            entries[logical_id] = _named_resource(resolver, logical_id, resource, stack_name, account)
    skipped = sorted(set(tpl.resources) - set(entries))
    if skipped:
        logger.debug("not emulated locally: %s", ", ".join(skipped))
    return Resources(entries, parameters=parameters, stack_name=stack_name, account=account)


# --- functions: environment, handlers, triggers ----------------------------------------------------------------


def _merge_globals(global_value: Any, own_value: Any) -> Any:
    """SAM's Globals rule: maps merge, lists add up (globals first), scalars are overridden."""
    if isinstance(global_value, dict) and isinstance(own_value, dict):
        merged = dict(global_value)
        for key, value in own_value.items():
            merged[key] = _merge_globals(global_value[key], value) if key in global_value else value
        return merged
    if isinstance(global_value, list) and isinstance(own_value, list):
        return [*global_value, *own_value]
    return own_value


def function_properties(template: TemplateLike, logical_id: str) -> dict[str, Any]:
    """A function's properties with the template's Globals applied (unresolved)."""
    tpl = as_template(template)
    if logical_id not in tpl.resources or tpl.resource_type(logical_id) != FUNCTION:
        raise TemplateError(f"{logical_id} is not an {FUNCTION} of the template")
    own = tpl.resources[logical_id].get("Properties") or {}
    return _merge_globals(dict(tpl.function_globals), dict(own))


def _resolver_for(tpl: Template, resources: Resources | None) -> _Resolver:
    if resources is None:
        parameters = resolve_parameters(tpl)
        return _Resolver(tpl, parameters, _pseudo_parameters(_stack_name(parameters, None), account_id()), {})
    pseudo = _pseudo_parameters(resources.stack_name, resources.account_id)
    return _Resolver(tpl, resources.parameters, pseudo, resources)


def function_environment(template: TemplateLike, resources: Resources, logical_id: str) -> dict[str, str]:
    """Globals.Function.Environment.Variables merged with the function's own, every value resolved.

    Ref of a table → its name, Ref of a queue → its URL, GetAtt Queue.Arn / Queue.QueueName, Sub, Join...
    """
    tpl = as_template(template)
    variables = (function_properties(tpl, logical_id).get("Environment") or {}).get("Variables") or {}
    resolver = _resolver_for(tpl, resources)
    environment: dict[str, str] = {}
    for name, value in variables.items():
        resolved = resolver.resolve(value)
        if resolved is _NO_VALUE:
            continue
        if isinstance(resolved, list | dict):
            raise TemplateError(f"{logical_id}: environment variable {name} is not a string: {resolved!r}")
        environment[str(name)] = _scalar_string(resolved)
    return environment


def union_environment(template: TemplateLike, resources: Resources) -> dict[str, str]:
    """Every function's environment in one mapping (for code that runs outside an invocation: tests, demos).

    Where two functions give one variable different values, the first function in template order wins and a
    warning says so; each invocation still sees its own function's value (`lambda_runtime`).
    """
    tpl = as_template(template)
    union: dict[str, str] = {}
    for logical_id in tpl.logical_ids(FUNCTION):
        if logical_id not in resources:
            continue
        for name, value in function_environment(tpl, resources, logical_id).items():
            if name in union and union[name] != value:
                logger.warning("%s: %s=%r differs from another function's %r", logical_id, name, value, union[name])
                continue
            union[name] = value
    return union


def _layer_dirs(tpl: Template, layers: list[Any]) -> tuple[Path, ...]:
    dirs = []
    for layer in layers:
        if isinstance(layer, dict) and isinstance(layer.get("Ref"), str) and layer["Ref"] in tpl.resources:
            layer_resource = tpl.resources[layer["Ref"]]
            if layer_resource.get("Type") == LAYER:
                dirs.append((tpl.base_dir / str(layer_resource["Properties"]["ContentUri"])).resolve())
                continue
        logger.debug("layer %r is not part of the template: not emulated", layer)
    return tuple(dirs)


def lambda_functions(template: TemplateLike, resources: Resources) -> dict[str, FunctionSpec]:
    """Logical id → what the in-process runtime needs to run the function as Lambda would."""
    tpl = as_template(template)
    resolver = _resolver_for(tpl, resources)
    functions = {}
    for logical_id in tpl.logical_ids(FUNCTION):
        if logical_id not in resources:
            continue
        props = function_properties(tpl, logical_id)
        if "CodeUri" not in props or "Handler" not in props:
            raise TemplateError(f"{logical_id}: only functions with a local CodeUri and a Handler can run locally")
        log_group = (props.get("LoggingConfig") or {}).get("LogGroup")
        functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            function_name=resources.ref(logical_id),
            code_dir=(tpl.base_dir / resolver.string(props["CodeUri"])).resolve(),
            handler=resolver.string(props["Handler"]),
            timeout=int(resolver.string(props.get("Timeout", 3))),
            memory_size=int(resolver.string(props.get("MemorySize", 128))),
            runtime=resolver.string(props.get("Runtime", "python3.13")),
            environment=function_environment(tpl, resources, logical_id),
            layer_dirs=_layer_dirs(tpl, list(props.get("Layers") or [])),
            region=resources.region,
            account_id=resources.account_id,
            log_group=resolver.string(log_group) if log_group else None,
        )
    return functions


@dataclass(frozen=True)
class EventSource:
    """One `Type: SQS` event of a function: what Lambda's event source mapping would be."""

    function_logical_id: str
    event_name: str
    queue_logical_id: str | None  # None when the queue is not a resource of the template
    queue_arn: str | None  # the literal ARN in that case
    handler: str
    handler_file: Path
    handler_function: str
    batch_size: int
    maximum_batching_window_in_seconds: int
    function_response_types: tuple[str, ...]
    function_timeout: int
    enabled: bool = True

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types


def _queue_logical_id(queue: Any) -> str | None:
    if isinstance(queue, dict):
        if "Fn::GetAtt" in queue:
            target = queue["Fn::GetAtt"]
            return str((target.split(".", 1) if isinstance(target, str) else target)[0])
        if isinstance(queue.get("Ref"), str):
            return str(queue["Ref"])
    return None


def _code_location(tpl: Template, resolver: _Resolver, props: Mapping[str, Any]) -> tuple[str, Path, str]:
    handler = resolver.string(props["Handler"])
    code_dir = (tpl.base_dir / resolver.string(props["CodeUri"])).resolve()
    handler_file, handler_function = handler_location(code_dir, handler)
    return handler, handler_file, handler_function


def sqs_event_sources(template: TemplateLike = None, resources: Resources | None = None) -> list[EventSource]:
    """Every SQS trigger of every function, with Lambda's defaults (BatchSize 10, no batching window).

    Values given through parameters are resolved with `resources`' parameter values, or the defaults.
    """
    tpl = as_template(template)
    resolver = _resolver_for(tpl, resources)
    sources = []
    for logical_id in tpl.logical_ids(FUNCTION):
        props = function_properties(tpl, logical_id)
        for event_name, event in (props.get("Events") or {}).items():
            if event.get("Type") != "SQS":
                continue
            event_props = event.get("Properties") or {}
            queue_logical_id = _queue_logical_id(event_props["Queue"])
            handler, handler_file, handler_function = _code_location(tpl, resolver, props)
            sources.append(
                EventSource(
                    function_logical_id=logical_id,
                    event_name=event_name,
                    queue_logical_id=queue_logical_id,
                    queue_arn=None if queue_logical_id else resolver.string(event_props["Queue"]),
                    handler=handler,
                    handler_file=handler_file,
                    handler_function=handler_function,
                    batch_size=int(resolver.string(event_props.get("BatchSize", 10))),
                    maximum_batching_window_in_seconds=int(
                        resolver.string(event_props.get("MaximumBatchingWindowInSeconds", 0))
                    ),
                    function_response_types=tuple(resolver.resolve(event_props.get("FunctionResponseTypes", []))),
                    function_timeout=int(resolver.string(props.get("Timeout", 3))),
                    enabled=_true(resolver.resolve(event_props.get("Enabled", True))),
                )
            )
    return sources


@dataclass(frozen=True)
class ScheduleTarget:
    """A function's `Schedule` (EventBridge rule) or `ScheduleV2` (EventBridge Scheduler) event."""

    function_logical_id: str
    event_name: str
    event_type: str  # "Schedule" or "ScheduleV2"
    expression: str
    enabled: bool
    input: Any = None  # the parsed Input, if the template gives one

    def event(self, *, account: str = DEFAULT_ACCOUNT_ID, region: str = REGION) -> Any:
        """The event the function receives when the schedule fires.

        ScheduleV2 delivers its Input, or an empty JSON object; a Schedule rule delivers its Input, or the
        "Scheduled Event" envelope.
        """
        if self.input is not None:
            return self.input
        if self.event_type == "ScheduleV2":
            return {}
        import datetime
        import uuid

        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": now,
            "region": region,
            "resources": [f"arn:aws:events:{region}:{account}:rule/{self.function_logical_id}{self.event_name}"],
            "detail": {},
        }


def schedule_targets(template: TemplateLike = None, resources: Resources | None = None) -> list[ScheduleTarget]:
    """Every function with a Schedule or ScheduleV2 event, with its expression and input resolved."""
    tpl = as_template(template)
    resolver = _resolver_for(tpl, resources)
    targets = []
    for logical_id in tpl.logical_ids(FUNCTION):
        for event_name, event in (function_properties(tpl, logical_id).get("Events") or {}).items():
            event_type = event.get("Type")
            if event_type not in ("Schedule", "ScheduleV2"):
                continue
            props = resolver.resolve(event.get("Properties") or {})
            expression = props.get("Schedule") if event_type == "Schedule" else props.get("ScheduleExpression")
            state = str(props.get("State", "ENABLED")).upper()
            enabled = _true(props.get("Enabled", True)) and state == "ENABLED"
            raw_input = props.get("Input")
            targets.append(
                ScheduleTarget(
                    function_logical_id=logical_id,
                    event_name=event_name,
                    event_type=event_type,
                    expression=str(expression),
                    enabled=enabled,
                    input=json.loads(raw_input) if isinstance(raw_input, str) else raw_input,
                )
            )
    return targets
