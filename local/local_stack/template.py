"""template.yaml as the single source of truth for every local and test resource, through libraries.

cfn-lint's decoder reads the template and its `merge_globals` applies SAM's Globals to each function. moto's
CloudFormation creates the resources of the types in `CREATED` as one stack, on whatever boto3 reaches (a moto
server, or `moto.mock_aws()` in-process), and evaluates every parameter, condition, mapping and intrinsic
function. The functions run in-process, so moto does not hold them: what the runtime reads of each (name, code,
handler, sizes, environment, SQS and schedule events) goes into the same stack as Outputs, read back at once.

By hand, as no library does it: CloudFormation's parameter checks (moto skips them) and those Outputs. A function
property that refers to a resource the stack does not create (an SNS topic, say) is a `TemplateError`, never a
wrong value. What the stack holds: `resources`; the functions' events: `triggers`; moto's gaps: `moto_fixes`; why
not aws-sam-translator: docs/decisions.md ("The embedded local stack").
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_stack.lambda_runtime import FunctionSpec
from local_stack.resources import REGION, AwsClients, CreatedResource, Resources

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = PROJECT_ROOT / "template.yaml"
TABLE, QUEUE, LOG_GROUP = "AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::Logs::LogGroup"
FUNCTION, LAYER, EVENT_BUS = "AWS::Serverless::Function", "AWS::Serverless::LayerVersion", "AWS::Events::EventBus"
# What moto creates, with the attributes read back for each (besides its Ref); a queue's URL is its Ref. The push
# path's partner bus and rule need `moto_partner_buses` (in `moto_fixes`) and their partner event source first.
CREATED: dict[str, tuple[str, ...]] = {
    TABLE: ("Arn", "StreamArn"),
    QUEUE: ("Arn", "QueueName"),
    LOG_GROUP: ("Arn",),
    EVENT_BUS: ("Arn", "Name"),
    "AWS::Events::Rule": ("Arn",),
}
_NOTHING = {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}  # a stack needs one resource
# What the runtime reads of a function (Globals merged), and the events it runs: moto evaluates them.
_FUNCTION_PROPERTIES = ("CodeUri", "Handler", "Timeout", "MemorySize", "Runtime", "LoggingConfig", "Environment")
_RUN_EVENTS = ("SQS", "Schedule", "ScheduleV2")


class TemplateError(ValueError):
    """The template asks for something the local stack cannot do, or a parameter value is invalid."""


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
    def resources(self) -> Mapping[str, Any]:
        return self.body.get("Resources") or {}

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
    if tpl.resources.get(logical_id, {}).get("Type") != FUNCTION:
        raise TemplateError(f"{logical_id} is not an {FUNCTION} of the template")
    one = copy.deepcopy({"Globals": tpl.body.get("Globals"), "Resources": {logical_id: tpl.resources[logical_id]}})
    return dict(merge_globals(one)["Resources"][logical_id].get("Properties") or {})


# --- parameters: CloudFormation checks the values, moto takes any ----------------------------------------------


def _text(value: Any) -> str:
    """How CloudFormation turns a YAML scalar into the string a resource sees."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise TemplateError(f"expected a string, got {type(value).__name__}: {value!r}")


def _number(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise TemplateError(f"parameter {name}={value!r} is not a number") from None


def _parameter_value(name: str, spec: Mapping[str, Any], raw: Any) -> str | list[str]:
    kind = str(spec.get("Type", "String"))
    if kind == "CommaDelimitedList" or kind.startswith("List<"):
        items = [_text(item) for item in raw] if isinstance(raw, list | tuple) else _text(raw).split(",")
        for item in items if "Number" in kind else []:
            _number(name, item)
        return items
    value = _text(raw)
    number = _number(name, value) if kind == "Number" else None
    allowed, pattern = spec.get("AllowedValues"), spec.get("AllowedPattern")
    for wrong, problem in (
        (allowed is not None and value not in [_text(item) for item in allowed], f"is not one of {allowed}"),
        (pattern is not None and re.fullmatch(str(pattern), value) is None, f"does not match {pattern!r}"),
        (len(value) < int(spec.get("MinLength", 0)), f"is shorter than {spec.get('MinLength')}"),
        (len(value) > int(spec.get("MaxLength", len(value))), f"is longer than {spec.get('MaxLength')}"),
        (number is not None and number < float(spec.get("MinValue", "-inf")), f"is below {spec.get('MinValue')}"),
        (number is not None and number > float(spec.get("MaxValue", "inf")), f"is above {spec.get('MaxValue')}"),
    ):
        if wrong:
            raise TemplateError(f"parameter {name}={value!r} {problem}")
    return value


def resolve_parameters(
    template: TemplateLike, stage: str | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, str | list[str]]:
    """Every declared parameter's value: its override, else its Default; validated like CloudFormation.
    `stage` is a shorthand for the `Stage` parameter."""
    declared = as_template(template).body.get("Parameters") or {}
    values = dict(overrides or {})
    if stage is not None and "Stage" in declared:
        if "Stage" in values and _text(values["Stage"]) != stage:
            raise TemplateError(f"stage {stage!r} and the Stage override {values['Stage']!r} disagree")
        values["Stage"] = stage
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise TemplateError(f"unknown parameters: {', '.join(unknown)}")
    missing = [name for name, spec in declared.items() if name not in values and "Default" not in spec]
    if missing:
        raise TemplateError(f"parameter {missing[0]} has no Default: pass it in parameter_overrides")
    return {
        name: _parameter_value(name, spec, values.get(name, spec.get("Default"))) for name, spec in declared.items()
    }


# --- creating: one CloudFormation stack on moto --------------------------------------------------------------------


def _references(value: Any) -> set[str]:
    """Names (parameters, pseudo parameters, logical ids) an expression refers to, so that moto is never asked
    for a resource it does not hold."""
    from cfnlint.helpers import REGEX_SUB_PARAMETERS  # here, not above: cfn-lint takes seconds to import (sympy)

    if isinstance(value, list):
        return set().union(*map(_references, value))
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
            names = {match.group(1).strip().split(".", 1)[0] for match in REGEX_SUB_PARAMETERS.finditer(str(text))}
            found |= (names - set(variables)) | _references(list(variables.values()))
        else:
            found |= _references(argument)
    return found


@dataclass(frozen=True)
class _Output:
    key: str  # the stack Output whose value stands here; absent when moto left it out (AWS::NoValue, a Condition)


class _Outputs:
    """Intrinsic functions for moto to evaluate, as the stack's Outputs."""

    def __init__(self, tpl: Template, created: set[str]) -> None:
        self._tpl, self._created, self.body = tpl, created, {}

    def defer(self, value: Any, condition: str | None, where: str) -> Any:
        """`value` with each intrinsic function in it replaced by the `_Output` that evaluates it."""
        from cfnlint.helpers import is_function

        if isinstance(value, list):
            return [self.defer(item, condition, where) for item in value]
        if not isinstance(value, dict):
            return value
        if is_function(value)[0] is None:
            return {key: self.defer(item, condition, f"{where}.{key}") for key, item in value.items()}
        for name in _references(value):
            if name in self._tpl.resources and name not in self._created:
                kind = self._tpl.resources[name].get("Type")
                raise TemplateError(f"{where}: {name} ({kind}) is not created by the local stack")
        key = f"O{len(self.body)}"
        self.body[key] = {"Value": value, **({"Condition": condition} if condition else {})}
        return _Output(key)


_ABSENT = object()


def _evaluated(value: Any, outputs: Mapping[str, str]) -> Any:
    """A deferred value with the stack's Outputs put in; what moto left out is left out (AWS::NoValue)."""
    if isinstance(value, _Output):
        return outputs.get(value.key, _ABSENT)
    if isinstance(value, list):
        return [item for item in (_evaluated(item, outputs) for item in value) if item is not _ABSENT]
    if isinstance(value, dict):
        pairs = ((key, _evaluated(item, outputs)) for key, item in value.items())
        return {key: item for key, item in pairs if item is not _ABSENT}
    return value


def create_resources(
    template: TemplateLike = None,
    session_or_clients: Any = None,
    stage: str = "local",
    parameter_overrides: Mapping[str, Any] | None = None,
) -> Resources:
    """Create the template's `CREATED` resources as one moto CloudFormation stack, and evaluate its functions'."""
    from botocore.exceptions import ClientError

    tpl = as_template(template)
    parameters = resolve_parameters(tpl, stage, parameter_overrides)
    stack_name = f"account-sync-{parameters.get('Stage', stage)}"
    created = {lid: res for lid, res in tpl.resources.items() if res.get("Type") in CREATED}
    outputs = _Outputs(tpl, set(created))
    read_back = {}
    for lid, res in created.items():
        streams = "StreamSpecification" in (res.get("Properties") or {})  # else a GetAtt StreamArn fails
        names = [name for name in CREATED[res["Type"]] if name != "StreamArn" or streams]
        expressions = {"ref": {"Ref": lid}, **{name: {"Fn::GetAtt": [lid, name]} for name in names}}
        read_back[lid] = outputs.defer(expressions, res.get("Condition"), lid)
    functions = {}
    for lid in tpl.logical_ids(FUNCTION):
        props, condition = function_properties(tpl, lid), tpl.resources[lid].get("Condition")
        wanted = {"FunctionName": f"{stack_name}-{lid}"}  # CloudFormation's default is longer, and random
        wanted |= {key: props[key] for key in ("FunctionName", *_FUNCTION_PROPERTIES) if key in props}
        wanted["Events"] = {name: e for name, e in (props.get("Events") or {}).items() if e.get("Type") in _RUN_EVENTS}
        deployed = outputs.defer({"Ref": "AWS::StackName"}, condition, lid) if condition else None
        functions[lid] = (outputs.defer(wanted, condition, lid), deployed)
    head = {
        "AWSTemplateFormatVersion": "2010-09-09",
        **{key: tpl.body[key] for key in ("Parameters", "Mappings", "Conditions") if tpl.body.get(key)},
    }
    body = {**head, "Resources": dict(created) or _NOTHING, **({"Outputs": outputs.body} if outputs.body else {})}
    values = [
        {"ParameterKey": k, "ParameterValue": ",".join(v) if isinstance(v, list) else v} for k, v in parameters.items()
    ]
    try:
        with warnings.catch_warnings():  # in-process, moto warns that the placeholder handle is not modelled
            warnings.filterwarnings("ignore", "Tried to parse AWS::CloudFormation::WaitConditionHandle")
            clients = AwsClients.from_any(session_or_clients)
            cloudformation = clients.cloudformation
            _create_partner_event_sources(tpl, clients, f"{stack_name}-partner-sources", head, values)
            cloudformation.create_stack(StackName=stack_name, TemplateBody=json.dumps(body), Parameters=values)
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        raise TemplateError(f"moto's CloudFormation refused the stack {stack_name}: {error}") from error
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise TemplateError(f"stack {stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
    evaluated = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs") or []}
    account = stack["StackId"].split(":")[4]
    entries: dict[str, CreatedResource] = {}
    for lid, deferred in read_back.items():
        attributes = _evaluated(deferred, evaluated)
        if "ref" in attributes:  # else its Condition is false
            ref = attributes.pop("ref")
            attributes |= {"QueueUrl": ref} if created[lid]["Type"] == QUEUE else {}
            entries[lid] = CreatedResource(lid, created[lid]["Type"], ref, attributes)
    function_props = {}
    for lid, (deferred, deployed) in functions.items():
        if deployed is None or deployed.key in evaluated:
            function_props[lid] = props = _evaluated(deferred, evaluated)
            variables = (props.get("Environment") or {}).get("Variables") or {}
            props["Environment"] = {"Variables": {str(key): _text(value) for key, value in variables.items()}}
            name = str(props["FunctionName"])
            arn = f"arn:aws:lambda:{REGION}:{account}:function:{name}"
            entries[lid] = CreatedResource(lid, FUNCTION, name, {"Arn": arn}, created=False)
    return Resources(entries, parameters=parameters, stack_name=stack_name, account=account, functions=function_props)


def _create_partner_event_sources(
    tpl: Template, clients: AwsClients, stack_name: str, head: Mapping[str, Any], values: list[dict[str, str]]
) -> None:
    """A bus named after a partner event source can only be made once the source exists. On AWS the partner creates
    it in the account (Salesforce, when an Event Relay is configured); here it is created as the partner would,
    before the stack, its name and Condition evaluated by moto in a throwaway stack of Outputs."""
    buses = [res for res in tpl.resources.values() if res.get("Type") == EVENT_BUS]
    sources = {
        f"S{number}": {
            "Value": bus["Properties"]["EventSourceName"],
            **{k: v for k, v in bus.items() if k == "Condition"},
        }
        for number, bus in enumerate(bus for bus in buses if "EventSourceName" in (bus.get("Properties") or {}))
    }
    if not sources:
        return
    template = json.dumps({**head, "Resources": _NOTHING, "Outputs": sources})
    clients.cloudformation.create_stack(StackName=stack_name, TemplateBody=template, Parameters=values)
    (stack,) = clients.cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    for output in stack.get("Outputs") or []:
        clients.events.create_partner_event_source(Name=output["OutputValue"], Account=stack["StackId"].split(":")[4])
    clients.cloudformation.delete_stack(StackName=stack_name)


# --- functions: environment and code (their events: `triggers`) -------------------------------------------------


def function_environment(template: TemplateLike, resources: Resources, logical_id: str) -> dict[str, str]:
    """Globals.Function.Environment.Variables merged with the function's own, evaluated by moto at creation."""
    if logical_id not in resources.functions:
        function_properties(template, logical_id)  # a clear error for a logical id that is not a function
        raise TemplateError(f"{logical_id} is not a function of this local stack")
    return resources.environments[logical_id]


def union_environment(template: TemplateLike, resources: Resources) -> dict[str, str]:
    """Every function's environment in one mapping (for code that runs outside an invocation: tests, demos).
    Where two functions disagree the first in template order wins; an invocation sees its own (`lambda_runtime`)."""
    union: dict[str, str] = {}
    for environment in resources.environments.values():
        for name, value in environment.items():
            union.setdefault(name, value)
    return union


def code_dir(tpl: Template, props: Mapping[str, Any], logical_id: str) -> Path:
    """The folder of a function's code (its CodeUri, relative to the template), where its Handler is looked up."""
    if "CodeUri" not in props or "Handler" not in props:
        raise TemplateError(f"{logical_id}: only functions with a local CodeUri and a Handler can run locally")
    return (tpl.base_dir / str(props["CodeUri"])).resolve()


def lambda_functions(template: TemplateLike, resources: Resources) -> dict[str, FunctionSpec]:
    """Logical id → what the in-process runtime needs to run the function as Lambda would."""
    tpl = as_template(template)
    specs = {}
    for lid, props in resources.functions.items():
        layers = function_properties(tpl, lid).get("Layers") or []  # the template's own layers run, others not
        refs = [layer.get("Ref") for layer in layers if isinstance(layer, dict)]
        log_group = (props.get("LoggingConfig") or {}).get("LogGroup")
        specs[lid] = FunctionSpec(
            logical_id=lid,
            function_name=resources.ref(lid),
            code_dir=code_dir(tpl, props, lid),
            handler=str(props["Handler"]),
            timeout=int(props.get("Timeout", 3)),
            memory_size=int(props.get("MemorySize", 128)),
            runtime=str(props.get("Runtime", "python3.13")),
            environment=resources.environments[lid],
            layer_dirs=tuple(
                (tpl.base_dir / str(tpl.resources[ref]["Properties"]["ContentUri"])).resolve()
                for ref in refs
                if tpl.resources.get(ref, {}).get("Type") == LAYER
            ),
            region=resources.region,
            account_id=resources.account_id,
            log_group=str(log_group) if log_group else None,
        )
    return specs
