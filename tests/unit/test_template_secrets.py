"""No environment variable of the template holds a secret: the functions get the *name* of the Salesforce secret
and read the key from Secrets Manager at run time (cached by Powertools), never from their configuration.

An environment variable is readable by anyone with `lambda:GetFunctionConfiguration`, shows in the console and
in `sam local` output, and outlives a rotation; a secret there is a leak waiting to happen.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support.cfn_template import load_template

SECRET_WORDS = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|CREDENTIAL|API_?KEY|CONSUMER_KEY|SESSION", re.I)
# A variable may say *where* a secret is: its name, ARN or endpoint.
LOCATORS = re.compile(r"_(NAME|ARN|URL)$")
LOOKS_SECRET = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),  # a JWT
    re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"),  # an AWS access key id
    re.compile(r"00D[A-Za-z0-9]{12,15}![A-Za-z0-9._]{20,}"),  # a Salesforce session id
    re.compile(r"[A-Za-z0-9+/=_-]{40,}"),  # any long random-looking string
]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def environments(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each function's variables, Globals included, and the Globals themselves."""
    global_vars = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    result = {"Globals": dict(global_vars)}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            own = resource["Properties"].get("Environment", {}).get("Variables", {})
            result[logical_id] = {**global_vars, **own}
    return result


def references(value: Any) -> set[str]:
    """Parameters and resources a value refers to (Ref, GetAtt, ${X} in Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0])
            elif key == "Fn::Sub" and isinstance(inner, str):
                found |= {name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", inner)}
            found |= references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= references(inner)
    return found


def literals(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, inner in value.items() if key not in ("Ref", "Fn::GetAtt") for text in literals(inner)]
    if isinstance(value, list):
        return [text for inner in value for text in literals(inner)]
    return [str(value)]


def test_no_variable_is_named_as_a_secret_unless_it_only_locates_one(template):
    for owner, variables in environments(template).items():
        for name in variables:
            assert not SECRET_WORDS.search(name) or LOCATORS.search(name), f"{owner}: {name}"


def test_no_variable_takes_a_secret_parameter(template):
    parameters = template["Parameters"]
    for owner, variables in environments(template).items():
        for name, value in variables.items():
            for ref in references(value) & set(parameters):
                assert not parameters[ref].get("NoEcho"), f"{owner}: {name} takes the NoEcho parameter {ref}"
                assert not SECRET_WORDS.search(ref) or re.search(r"(Name|Arn|Url)$", ref), f"{owner}: {name} <- {ref}"


def test_no_variable_or_parameter_default_looks_like_a_credential(template):
    texts = [text for variables in environments(template).values() for v in variables.values() for text in literals(v)]
    texts += [str(p.get("Default", "")) for p in template["Parameters"].values()]
    for text in texts:
        for pattern in LOOKS_SECRET:
            assert not pattern.search(text), f"{text!r} looks like a credential ({pattern.pattern})"


def test_the_salesforce_key_is_reached_through_secrets_manager_by_name(template):
    fetch = environments(template)["FetchChangesFunction"]
    assert fetch["SALESFORCE_SECRET_NAME"] == {"Ref": "SalesforceSecretName"}
    assert "NoEcho" not in template["Parameters"]["SalesforceSecretName"]  # a name, shown freely
    # and the template itself carries no secret value for anything
    properties = json.dumps([resource.get("Properties", {}) for resource in template["Resources"].values()])
    assert not re.search(r'"(SecretString|Password|MasterUserPassword|PrivateKey)"', properties)
