"""template.yaml as plain data, read by cfn-lint's decoder (the project pins cfn-lint for `make lint`).

The short-form tags become their long form (`!Ref X` -> `{"Ref": "X"}`, `!GetAtt A.B` ->
`{"Fn::GetAtt": ["A", "B"]}`), which is what CloudFormation itself sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cfnlint.decode import decode

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    template, problems = decode(str(path))
    assert not problems and template is not None, f"{path} does not decode: {problems}"
    return template
