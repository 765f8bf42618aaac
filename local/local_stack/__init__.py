"""The embedded local AWS stack: template.yaml on moto, the Lambda functions in-process.

`template` reads template.yaml (cfn-lint's decoder) and creates its tables, queues and log groups as one moto
CloudFormation stack (the template is the single source of truth), `resources` is what that stack holds,
`triggers` the functions' SQS and schedule events, `moto_server` runs moto in server mode, `lambda_runtime` runs
the handlers the way Lambda does, `sqs_poller` emulates the SQS event source mappings, and `stack.LocalStack` ties
them together. `python -m local_stack` is the command line (`invoke` a function with an event file, without
Docker).
"""

from local_stack.lambda_runtime import FunctionSpec, InvocationResult, LambdaInvocationError, LambdaRuntime
from local_stack.moto_fixes import apply_moto_fixes
from local_stack.moto_server import MotoServer, fake_aws_env
from local_stack.resources import AwsClients, CreatedResource, Resources
from local_stack.sqs_poller import DrainResult, PollResult, SqsEventSourcePoller, drain
from local_stack.stack import LocalStack
from local_stack.template import Template, TemplateError, create_resources, function_environment, load_template
from local_stack.triggers import EventSource, ScheduleTarget, schedule_targets, sqs_event_sources

__all__ = [
    "AwsClients",
    "CreatedResource",
    "DrainResult",
    "EventSource",
    "FunctionSpec",
    "InvocationResult",
    "LambdaInvocationError",
    "LambdaRuntime",
    "LocalStack",
    "MotoServer",
    "PollResult",
    "Resources",
    "ScheduleTarget",
    "SqsEventSourcePoller",
    "Template",
    "TemplateError",
    "apply_moto_fixes",
    "create_resources",
    "drain",
    "fake_aws_env",
    "function_environment",
    "load_template",
    "schedule_targets",
    "sqs_event_sources",
]
