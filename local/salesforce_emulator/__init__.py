"""A local Salesforce REST API emulator, served over HTTPS, for tests, the demo and the local stack.

The real ``simple_salesforce.Salesforce`` client talks to it unchanged: exchange a JWT (signed with the
key of ``generate_client_keypair()``) at ``emu.token_url``, then build the client with
``instance_url=emu.url``, the access token as ``session_id`` and a ``requests.Session`` whose
``verify`` is ``emu.ca_bundle``.

Modules: ``emulator`` (the facade), ``server`` (HTTPS transport), ``routes`` (REST resources and their
JSON shapes, with references to Salesforce's documentation), ``soql`` (tokenizer, parser, evaluator),
``store`` (records, validation, transactions), ``cursors`` (query locators), ``auth`` (JWT bearer
flow), ``faults`` (fault switches, API usage), ``certificates`` (CA, server and client keys),
``schema`` (objects and describe), ``clock`` and ``values``.
"""

from .certificates import generate_client_keypair
from .clock import Clock
from .emulator import SalesforceEmulator
from .errors import SalesforceApiError
from .values import format_datetime, parse_datetime

__all__ = [
    "Clock",
    "SalesforceApiError",
    "SalesforceEmulator",
    "format_datetime",
    "generate_client_keypair",
    "parse_datetime",
]
