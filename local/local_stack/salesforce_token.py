"""`python -m local_stack token`: an access token for the running stack's Salesforce emulator, and a curl line.

The token comes from the emulator's token endpoint by the JWT bearer flow, with the connected app's key that
`up` keeps in `.local-stack/salesforce/` (the same authenticator the fetch function uses). With it, a person
changes data in the local Salesforce, and the next sync cycle brings the change to the store:

    export TOKEN=$(python -m local_stack token --quiet)
    curl --cacert .local-stack/salesforce/ca.pem -H "Authorization: Bearer $TOKEN" \\
      -H 'Content-Type: application/json' -X PATCH -d '{"Industry":"Retail"}' \\
      https://localhost:8443/services/data/v62.0/sobjects/Account/<id>
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from local_stack.running import DEFAULT_STATE_DIR, NoRunningStack, RunningStack, add_state_dir_option, shown_path


def add_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "token",
        help="an access token for the local Salesforce of the running stack, and an example curl line",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print the token only")
    add_state_dir_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        stack = RunningStack.connect(args.state_dir)
    except NoRunningStack as exc:
        raise SystemExit(f"error: {exc}") from None
    connection = _connection(stack)
    session = _session(connection["ca_bundle"])
    token = access_token(connection, session)
    if args.quiet:
        print(token)
        return 0
    version = str(stack.description["parameters"].get("SalesforceApiVersion", "62.0"))
    base = f"{connection['instance_url']}/services/data/v{version}"
    account_id = _some_account_id(session, base, token) or "<account id>"
    ca_bundle = shlex.quote(shown_path(connection["ca_bundle"]))
    print(f"export TOKEN={shlex.quote(token)}")
    print(f"# An access token of the local Salesforce ({connection['username']}), valid for 2 hours. For example:")
    print(
        f"curl --cacert {ca_bundle} -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n"
        f'  -X PATCH -d \'{{"Industry":"Retail"}}\' {base}/sobjects/Account/{account_id}'
    )
    print(f'curl --cacert {ca_bundle} -H "Authorization: Bearer $TOKEN" {base}/sobjects/Account/{account_id}')
    state = "" if args.state_dir == DEFAULT_STATE_DIR else f" --state-dir {shlex.quote(str(args.state_dir))}"
    print(f"# the next sync cycle brings it to the store: account-sync --local{state} store account {account_id}")
    return 0


def _connection(stack: RunningStack) -> dict[str, Any]:
    path = Path(stack.salesforce["connection_file"])
    try:
        connection = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot read the emulator's connection file {path}: {exc}") from None
    if not connection.get("private_key_file"):
        raise SystemExit(f"error: {path} names no connected-app key")
    return dict(connection)


def _session(ca_bundle: str) -> Any:
    import requests

    session = requests.Session()
    session.verify = ca_bundle  # the emulator's own CA: verification stays on
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
    return session


def access_token(connection: dict[str, Any], session: Any) -> str:
    """A token from the emulator's token endpoint (JWT bearer flow with the connected app's key)."""
    from account_sync.adapters.salesforce_auth import JwtBearerAuthenticator, SalesforceCredentials
    from account_sync.ports import SalesforceAuthError, TransientError

    credentials = SalesforceCredentials(
        consumer_key=connection["consumer_key"],
        username=connection["username"],
        private_key=Path(connection["private_key_file"]).read_text(encoding="utf-8"),
        audience=connection.get("audience") or "https://login.salesforce.com",
    )
    authenticator = JwtBearerAuthenticator(lambda: credentials, connection["token_url"], session)
    try:
        return authenticator.token().access_token
    except (SalesforceAuthError, TransientError) as exc:
        raise SystemExit(f"error: no token from {connection['token_url']}: {exc}") from None


def _some_account_id(session: Any, base: str, token: str) -> str | None:
    """An Account to put in the example (one API call), or None."""
    import requests

    try:
        response = session.get(
            f"{base}/query",
            params={"q": "SELECT Id FROM Account ORDER BY Name LIMIT 1"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        records = response.json().get("records") if response.ok else None
    except (requests.RequestException, ValueError):
        return None
    return str(records[0]["Id"]) if records else None
