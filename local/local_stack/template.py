"""template.yaml as the single source of truth for every local and test resource, through libraries.

* cfn-lint's decoder reads the template (the short tags `!Ref`, `!Sub`... become their long form), and its
  `merge_globals` applies SAM's Globals to each function (SAM's rule: maps merge, lists add up, scalars and
  intrinsic functions are replaced).
* moto's CloudFormation creates the tables, queues and log groups: `create_stack` on whatever boto3 reaches (a
  moto server, or `moto.mock_aws()` in-process), with the stack's parameters, conditions and intrinsic functions
  evaluated by moto. The same stack's Outputs evaluate what the functions need and moto does not hold (each
  function's name and merged environment, each resource's `Ref` and attributes): one CreateStack, one
  DescribeStacks.

What stays here, because no library does it for a stack whose functions run in-process: the parameters'
validation (AllowedValues, AllowedPattern, Min/Max, which moto skips), the list of what moto creates and what is
only named (functions, layers, roles), and reading each function's handler, triggers and schedule. A function
variable that refers to a resource the local stack does not create (an SNS topic, say) is a `TemplateError`,
never a silently wrong value. moto's CloudFormation drops a table's TimeToLive, point-in-time recovery and
encryption: `moto_fixes` adds them back (in the server process as in-process).
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
import uuid
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_stack.lambda_runtime import FunctionSpec, handler_location

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = PROJECT_ROOT / "template.yaml"
REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
LOG_GROUP = "AWS::Logs::LogGroup"
FUNCTION = "AWS::Serverless::Function"
LAYER = "AWS::Serverless::LayerVersion"
ROLE = "AWS::IAM::Role"
EVENT_BUS = "AWS::Events::EventBus"

# What moto creates (type → the attributes `!GetAtt` may ask for); the functions' own resources are only named.
_CREATED = {
    TABLE: ("Arn", "StreamArn"),
    QUEUE: ("Arn", "QueueName"),  # and QueueUrl, its Ref
    LOG_GROUP: ("Arn",),
    EVENT_BUS: ("Arn", "Name"),  # the push path's partner bus, and its rule to the change-events queue (issue 13)
    "AWS::Events::Rule": ("Arn",),
}
_NAMED = {  # type → the property holding the name, the ARN's format
    FUNCTION: ("FunctionName", "arn:aws:lambda:{region}:{account}:function:{name}"),
    LAYER: ("LayerName", "arn:aws:lambda:{region}:{account}:layer:{name}:1"),
    ROLE: ("RoleName", "arn:aws:iam::{account}:role/{name}"),
}


class TemplateError(ValueError):
    """The template asks for something the local stack cannot do, or a parameter value is invalid."""


# --- reading -----------------------------------------------------------------------------------------------------


def parse_template(text: str) -> dict[str, Any]:
    """Template YAML (or JSON) text in the long form CloudFormation uses (cfn-lint's decoder)."""
    from cfnlint.decode import decode_str

    body, problems = decode_str(text)
    if problems or not isinstance(body, dict) or "Resources" not in body:
        raise TemplateError(f"not a CloudFormation template: {problems or 'no Resources'}")
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


def function_properties(template: TemplateLike, logical_id: str) -> dict[str, Any]:
    """A function's properties with the template's Globals merged in (cfn-lint's SAM rule), unresolved."""
    from cfnlint.template.transforms._sam_globals import merge_globals

    tpl = as_template(template)
    if logical_id not in tpl.resources or tpl.resource_type(logical_id) != FUNCTION:
        raise TemplateError(f"{logical_id} is not an {FUNCTION} of the template")
    one = {
        "Globals": copy.deepcopy(tpl.body.get("Globals")),
        "Resources": {logical_id: copy.deepcopy(tpl.resources[logical_id])},
    }
    return dict(merge_globals(one)["Resources"][logical_id].get("Properties") or {})


# --- parameters (moto takes any value: CloudFormation's checks are made here) ----------------------------------


def _scalar_string(value: Any) -> str:
    """How CloudFormation turns a YAML scalar into the string a resource sees."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise TemplateError(f"expected a string, got {type(value).__name__}: {value!r}")


def _as_number(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise TemplateError(f"parameter {name}={value!r} is not a number") from None


def _parameter_value(name: str, spec: Mapping[str, Any], raw: Any) -> str | list[str]:
    parameter_type = str(spec.get("Type", "String"))
    if parameter_type == "CommaDelimitedList" or parameter_type.startswith("List<"):
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


# --- what was created (or named) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedResource:
    """One template resource as the local stack holds it: what `!Ref` and `!GetAtt` return for it.

    `ref` is the table name, the queue URL, the log group, function or role name, or the layer version ARN;
    `attributes` holds `Arn`, `QueueName`, `QueueUrl`, `StreamArn`... `created` is False for resources that are
    only named (functions and layers run in-process, moto does not hold them).
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
    """Logical id → `CreatedResource`, with the parameter values and each function's resolved environment."""

    def __init__(
        self,
        entries: Mapping[str, CreatedResource],
        *,
        parameters: Mapping[str, str | list[str]],
        stack_name: str,
        account: str = DEFAULT_ACCOUNT_ID,
        region: str = REGION,
        environments: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._entries = dict(entries)
        self.parameters = dict(parameters)
        self.stack_name = stack_name
        self.account_id = account
        self.region = region
        self.environments = {lid: dict(env) for lid, env in (environments or {}).items()}

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


# --- creating: one CloudFormation stack on moto --------------------------------------------------------------------


class AwsClients:
    """The clients the local stack needs (CloudFormation to create, SQS for the triggers), each made when first
    used: a client costs botocore a read of its service model, and most callers need one or two."""

    def __init__(self, session: Any = None, **clients: Any) -> None:
        self._session = session
        self._clients = dict(clients)

    def _client(self, name: str) -> Any:
        if name not in self._clients:
            import boto3

            session = self._session or boto3.session.Session(region_name=REGION)
            self._clients[name] = session.client(name, region_name=REGION)
        return self._clients[name]

    @property
    def dynamodb(self) -> Any:
        return self._client("dynamodb")

    @property
    def sqs(self) -> Any:
        return self._client("sqs")

    @property
    def cloudformation(self) -> Any:
        return self._client("cloudformation")

    @property
    def events(self) -> Any:
        return self._client("events")

    @classmethod
    def from_any(cls, session_or_clients: Any = None) -> AwsClients:
        """Accept AwsClients, a mapping {"dynamodb": client, "sqs": client, ...}, a boto3 Session or None.

        Sessions (and None: boto3's default) make clients for us-east-1 that follow the environment, so
        `AWS_ENDPOINT_URL` sends them to a moto server, and under `mock_aws()` they stay in-process.
        """
        if isinstance(session_or_clients, AwsClients):
            return session_or_clients
        if isinstance(session_or_clients, Mapping):
            return cls(None, **session_or_clients)
        return cls(session_or_clients)


_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


def _references(value: Any) -> set[str]:
    """Names (parameters, pseudo parameters, logical ids) an expression refers to."""
    if isinstance(value, list):
        return set().union(*(_references(item) for item in value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found: set[str] = set()
    for key, argument in value.items():
        if key == "Ref" and isinstance(argument, str):
            found.add(argument)
        elif key == "Fn::GetAtt":
            found.add(str((argument.split(".", 1) if isinstance(argument, str) else argument)[0]))
        elif key == "Fn::Sub":
            text, variables = (argument[0], argument[1] or {}) if isinstance(argument, list) else (argument, {})
            names = {match.group(1).strip().split(".", 1)[0] for match in _SUB_VARIABLE.finditer(str(text))}
            found |= (names - set(variables)) | _references(list(variables.values()))
        else:
            found |= _references(argument)
    return found


class _Outputs:
    """Expressions for moto to evaluate, as stack Outputs (literals are turned into strings here)."""

    def __init__(self, tpl: Template, stack_resources: set[str]) -> None:
        self._tpl, self._stack_resources = tpl, stack_resources
        self.body: dict[str, Any] = {}
        self.literals: dict[str, str] = {}

    def add(self, value: Any, condition: str | None, where: str) -> str:
        key = f"O{len(self.body) + len(self.literals)}"
        if not isinstance(value, dict | list):
            self.literals[key] = _scalar_string(value)
            return key
        for name in _references(value):
            if name in self._tpl.resources and name not in self._stack_resources:
                kind = self._tpl.resource_type(name)
                raise TemplateError(f"{where}: {name} ({kind}) is not created by the local stack")
        self.body[key] = {"Value": value, **({"Condition": condition} if condition else {})}
        return key


def create_resources(
    template: TemplateLike = None,
    session_or_clients: Any = None,
    stage: str = "local",
    parameter_overrides: Mapping[str, Any] | None = None,
) -> Resources:
    """Create every table, queue and log group of the template as one moto CloudFormation stack; name the rest.

    Works against a moto server (clients that follow `AWS_ENDPOINT_URL`) and under `moto.mock_aws()`.
    """
    from botocore.exceptions import ClientError

    tpl = as_template(template)
    clients = AwsClients.from_any(session_or_clients)
    parameters = resolve_parameters(tpl, stage, parameter_overrides)
    stack_name = _stack_name(parameters, stage)
    created = {lid for lid, res in tpl.resources.items() if res.get("Type") in _CREATED}
    outputs = _Outputs(tpl, created)
    wanted: dict[str, tuple[str, dict[str, str]]] = {}  # logical id → (the ref's key, attribute → key)
    for lid in created:
        resource = tpl.resources[lid]
        condition, kind = resource.get("Condition"), resource["Type"]
        names = [
            name
            for name in _CREATED[kind]
            if name != "StreamArn" or "StreamSpecification" in resource.get("Properties", {})
        ]
        keys = {name: outputs.add({"Fn::GetAtt": [lid, name]}, condition, lid) for name in names}
        wanted[lid] = (outputs.add({"Ref": lid}, condition, lid), keys)
    named: dict[str, str] = {}  # logical id → the name's key
    environments: dict[str, dict[str, str]] = {}
    for lid, resource in tpl.resources.items():
        kind = resource.get("Type")
        if kind not in _NAMED:
            continue
        condition = resource.get("Condition")
        props = function_properties(tpl, lid) if kind == FUNCTION else resource.get("Properties") or {}
        default_name = {"Fn::Join": ["", [f"{stack_name}-{lid}"]]}  # CloudFormation's is longer, and random
        named[lid] = outputs.add(props.get(_NAMED[kind][0], default_name), condition, lid)
        if kind == FUNCTION:
            variables = (props.get("Environment") or {}).get("Variables") or {}
            environments[lid] = {
                str(name): outputs.add(value, condition, f"{lid}: environment variable {name}")
                for name, value in variables.items()
            }
    body = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": tpl.parameters,
        "Mappings": tpl.body.get("Mappings") or {},
        "Conditions": tpl.body.get("Conditions") or {},
        # a stack needs one resource: a template with no table or queue gets a handle that does nothing
        "Resources": {lid: tpl.resources[lid] for lid in created}
        or {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": outputs.body,
    }
    _create_partner_event_sources(tpl, clients, parameters)
    parameter_values = [
        {"ParameterKey": name, "ParameterValue": ",".join(value) if isinstance(value, list) else value}
        for name, value in parameters.items()
    ]
    try:
        with warnings.catch_warnings():  # in-process, moto warns that the placeholder handle is not modelled
            warnings.filterwarnings("ignore", "Tried to parse AWS::CloudFormation::WaitConditionHandle")
            clients.cloudformation.create_stack(
                StackName=stack_name,
                TemplateBody=json.dumps({key: value for key, value in body.items() if value}),
                Parameters=parameter_values,
            )
        (stack,) = clients.cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        raise TemplateError(f"moto's CloudFormation refused the stack {stack_name}: {error}") from error
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise TemplateError(f"stack {stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
    values = {**outputs.literals, **{o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}}
    account = stack["StackId"].split(":")[4]

    entries: dict[str, CreatedResource] = {}
    for lid, (ref_key, keys) in wanted.items():
        if ref_key in values:  # absent: its Condition is false
            attributes = {name: values[key] for name, key in keys.items() if key in values}
            if tpl.resource_type(lid) == QUEUE:
                attributes["QueueUrl"] = values[ref_key]
            entries[lid] = CreatedResource(lid, tpl.resource_type(lid), values[ref_key], attributes)
    for lid, name_key in named.items():
        if name_key not in values:  # its Condition is false
            continue
        name = values[name_key]
        kind = tpl.resource_type(lid)
        arn = _NAMED[kind][1].format(region=REGION, account=account, name=name)
        entries[lid] = CreatedResource(lid, kind, arn if kind == LAYER else name, {"Arn": arn}, created=False)
    resolved_environments = {
        lid: {name: values[key] for name, key in variables.items() if key in values}  # absent: AWS::NoValue
        for lid, variables in environments.items()
        if lid in entries
    }
    return Resources(
        entries,
        parameters=parameters,
        stack_name=stack_name,
        account=account,
        environments=resolved_environments,
    )


def _create_partner_event_sources(tpl: Template, clients: AwsClients, parameters: Mapping[str, Any]) -> None:
    """A bus named after a partner event source can only be made once the source exists. On AWS the partner creates
    it in the account (Salesforce, when an Event Relay is configured); here it is created as the partner would,
    before the stack (moto's `CreatePartnerEventSource`)."""
    conditions = tpl.body.get("Conditions") or {}
    for lid in tpl.logical_ids(EVENT_BUS):
        resource = tpl.resources[lid]
        condition = resource.get("Condition")
        source = (resource.get("Properties") or {}).get("EventSourceName")
        if source is None or (condition is not None and not _condition(condition, conditions, parameters, lid)):
            continue
        clients.events.create_partner_event_source(Name=_string(source, None, parameters, lid), Account=account_id())


# --- functions: environment, handlers, triggers --------------------------------------------------------------------


def _plain(
    value: Any,
    resources: Resources | None,
    parameters: Mapping[str, Any],
    where: str,
    conditions: Mapping[str, Any] | None = None,
) -> Any:
    """A property moto does not evaluate for us: a literal, a parameter's or a resource's Ref, a GetAtt, or an
    Fn::If on one of the template's `conditions` (over parameters)."""
    if isinstance(value, list):
        return [_plain(item, resources, parameters, where, conditions) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"} and value["Ref"] in parameters:
        return parameters[value["Ref"]]
    if set(value) == {"Ref"} and resources is not None and value["Ref"] in resources:
        return resources.ref(value["Ref"])
    if set(value) == {"Fn::If"} and isinstance(value["Fn::If"], list) and len(value["Fn::If"]) == 3:
        # e.g. the fetch's schedule, slower while the push path is on (a condition on parameters only)
        name, when_true, when_false = value["Fn::If"]
        chosen = when_true if _condition(name, conditions or {}, parameters, where) else when_false
        return _plain(chosen, resources, parameters, where, conditions)
    if set(value) == {"Fn::GetAtt"} and resources is not None:
        target = value["Fn::GetAtt"]
        logical_id, attribute = target.split(".", 1) if isinstance(target, str) else target
        if logical_id in resources:
            return resources.get_att(logical_id, attribute)
    if any(str(key).startswith("Fn::") or key == "Ref" for key in value):
        raise TemplateError(f"{where}: {value!r} cannot be resolved locally (a literal, a Ref or a GetAtt can)")
    return {key: _plain(item, resources, parameters, where, conditions) for key, item in value.items()}


def _condition(name: Any, conditions: Mapping[str, Any], parameters: Mapping[str, Any], where: str) -> bool:
    """A template condition made of Fn::Equals / Not / And / Or over parameters, as CloudFormation evaluates it."""
    if not isinstance(name, str) or name not in conditions:
        raise TemplateError(f"{where}: unknown condition {name!r}")
    return _truth(conditions[name], conditions, parameters, where)


def _truth(expression: Any, conditions: Mapping[str, Any], parameters: Mapping[str, Any], where: str) -> bool:
    if isinstance(expression, dict) and len(expression) == 1:
        ((key, argument),) = expression.items()
        if key == "Condition":
            return _condition(argument, conditions, parameters, where)
        if key == "Fn::Not":
            return not _truth(argument[0], conditions, parameters, where)
        if key == "Fn::And":
            return all(_truth(item, conditions, parameters, where) for item in argument)
        if key == "Fn::Or":
            return any(_truth(item, conditions, parameters, where) for item in argument)
        if key == "Fn::Equals":
            left, right = (_scalar_string(_plain(item, None, parameters, where)) for item in argument)
            return left == right
    raise TemplateError(f"{where}: condition {expression!r} cannot be evaluated locally")


def _string(value: Any, resources: Resources | None, parameters: Mapping[str, Any], where: str) -> str:
    return _scalar_string(_plain(value, resources, parameters, where))


def _parameters_of(tpl: Template, resources: Resources | None) -> Mapping[str, Any]:
    return resources.parameters if resources is not None else resolve_parameters(tpl)


def function_environment(template: TemplateLike, resources: Resources, logical_id: str) -> dict[str, str]:
    """Globals.Function.Environment.Variables merged with the function's own, resolved by moto at creation."""
    tpl = as_template(template)
    if logical_id not in resources.environments:
        function_properties(tpl, logical_id)  # a clear error for a logical id that is not a function
        raise TemplateError(f"{logical_id} is not a function of this local stack")
    return dict(resources.environments[logical_id])


def union_environment(template: TemplateLike, resources: Resources) -> dict[str, str]:
    """Every function's environment in one mapping (for code that runs outside an invocation: tests, demos).

    Where two functions give one variable different values, the first function in template order wins; each
    invocation still sees its own function's value (`lambda_runtime`).
    """
    tpl = as_template(template)
    union: dict[str, str] = {}
    for logical_id in tpl.logical_ids(FUNCTION):
        for name, value in resources.environments.get(logical_id, {}).items():
            union.setdefault(name, value)
    return union


def _layer_dirs(tpl: Template, layers: list[Any]) -> tuple[Path, ...]:
    """The layers of the template itself (a `Ref` to an `AWS::Serverless::LayerVersion`); others are not run."""
    return tuple(
        (tpl.base_dir / str(tpl.resources[layer["Ref"]]["Properties"]["ContentUri"])).resolve()
        for layer in layers
        if isinstance(layer, dict) and layer.get("Ref") in tpl.resources and tpl.resource_type(layer["Ref"]) == LAYER
    )


def lambda_functions(template: TemplateLike, resources: Resources) -> dict[str, FunctionSpec]:
    """Logical id → what the in-process runtime needs to run the function as Lambda would."""
    tpl = as_template(template)
    functions = {}
    for logical_id in tpl.logical_ids(FUNCTION):
        if logical_id not in resources:
            continue
        props = function_properties(tpl, logical_id)
        if "CodeUri" not in props or "Handler" not in props:
            raise TemplateError(f"{logical_id}: only functions with a local CodeUri and a Handler can run locally")

        def text(value: Any, name: str, lid: str = logical_id) -> str:
            return _string(value, resources, resources.parameters, f"{lid}.{name}")

        log_group = (props.get("LoggingConfig") or {}).get("LogGroup")
        functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            function_name=resources.ref(logical_id),
            code_dir=(tpl.base_dir / text(props["CodeUri"], "CodeUri")).resolve(),
            handler=text(props["Handler"], "Handler"),
            timeout=int(text(props.get("Timeout", 3), "Timeout")),
            memory_size=int(text(props.get("MemorySize", 128), "MemorySize")),
            runtime=text(props.get("Runtime", "python3.13"), "Runtime"),
            environment=function_environment(tpl, resources, logical_id),
            layer_dirs=_layer_dirs(tpl, list(props.get("Layers") or [])),
            region=resources.region,
            account_id=resources.account_id,
            log_group=text(log_group, "LogGroup") if log_group else None,
        )
    return functions


def _true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


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


def _events(tpl: Template, resources: Resources | None, types: tuple[str, ...]) -> Iterator[tuple[str, str, Any]]:
    """(function logical id, event name, event) for every event of one of `types`, Globals merged."""
    for logical_id in tpl.logical_ids(FUNCTION):
        if resources is not None and logical_id not in resources:
            continue
        condition = tpl.resources[logical_id].get("Condition")
        conditions = tpl.body.get("Conditions") or {}
        if (
            resources is None
            and condition
            and not _condition(condition, conditions, resolve_parameters(tpl), logical_id)
        ):
            continue  # not deployed with the default parameters (the push path, say)
        for event_name, event in (function_properties(tpl, logical_id).get("Events") or {}).items():
            if event.get("Type") in types:
                yield logical_id, event_name, event


def sqs_event_sources(template: TemplateLike = None, resources: Resources | None = None) -> list[EventSource]:
    """Every SQS trigger of every function, with Lambda's defaults (BatchSize 10, no batching window).

    Values given through parameters are resolved with `resources`' parameter values, or the defaults.
    """
    tpl = as_template(template)
    parameters = _parameters_of(tpl, resources)
    sources = []
    for logical_id, event_name, event in _events(tpl, resources, ("SQS",)):
        props = function_properties(tpl, logical_id)
        where = f"{logical_id}.{event_name}"
        event_props = _plain(
            {key: value for key, value in (event.get("Properties") or {}).items() if key != "Queue"},
            resources,
            parameters,
            where,
        )
        queue_logical_id = _queue_logical_id(event["Properties"]["Queue"])
        handler = _string(props["Handler"], resources, parameters, where)
        code_dir = (tpl.base_dir / _string(props["CodeUri"], resources, parameters, where)).resolve()
        handler_file, handler_function = handler_location(code_dir, handler)
        sources.append(
            EventSource(
                function_logical_id=logical_id,
                event_name=event_name,
                queue_logical_id=queue_logical_id,
                queue_arn=None if queue_logical_id else _string(event["Properties"]["Queue"], None, parameters, where),
                handler=handler,
                handler_file=handler_file,
                handler_function=handler_function,
                batch_size=int(event_props.get("BatchSize", 10)),
                maximum_batching_window_in_seconds=int(event_props.get("MaximumBatchingWindowInSeconds", 0)),
                function_response_types=tuple(event_props.get("FunctionResponseTypes", [])),
                function_timeout=int(_string(props.get("Timeout", 3), resources, parameters, where)),
                enabled=_true(event_props.get("Enabled", True)),
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
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": [f"arn:aws:events:{region}:{account}:rule/{self.function_logical_id}{self.event_name}"],
            "detail": {},
        }


def schedule_targets(template: TemplateLike = None, resources: Resources | None = None) -> list[ScheduleTarget]:
    """Every function with a Schedule or ScheduleV2 event, with its expression and input resolved."""
    tpl = as_template(template)
    parameters = _parameters_of(tpl, resources)
    targets = []
    for logical_id, event_name, event in _events(tpl, resources, ("Schedule", "ScheduleV2")):
        where = f"{logical_id}.{event_name}"
        props = _plain(event.get("Properties") or {}, resources, parameters, where, tpl.body.get("Conditions"))
        expression = props.get("Schedule") if event["Type"] == "Schedule" else props.get("ScheduleExpression")
        enabled = _true(props.get("Enabled", True)) and str(props.get("State", "ENABLED")).upper() == "ENABLED"
        raw_input = props.get("Input")
        targets.append(
            ScheduleTarget(
                function_logical_id=logical_id,
                event_name=event_name,
                event_type=str(event["Type"]),
                expression=str(expression),
                enabled=enabled,
                input=json.loads(raw_input) if isinstance(raw_input, str) else raw_input,
            )
        )
    return targets
