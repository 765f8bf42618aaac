"""``python -m salesforce_emulator --port 8443 --state-dir DIR``: run the emulator standalone.

DIR receives ``ca.pem`` (the CA to trust), ``client-key.pem`` / ``client-cert.pem`` (the connected
app's key pair, kept across runs) and ``connection.json`` (instance and token URLs, consumer key,
username, file paths), so another process can log in with the JWT bearer flow and connect.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
from pathlib import Path

from .emulator import SalesforceEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m salesforce_emulator", description="Run the Salesforce REST API emulator over HTTPS."
    )
    parser.add_argument("--port", type=int, default=8443, help="0 picks a free port (default 8443)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--state-dir", required=True, type=Path, help="where to write keys and connection.json")
    parser.add_argument("--username", default=None, help="the integration user (default: kept, or sync@example.com)")
    parser.add_argument("--page-size", type=int, default=2000)
    parser.add_argument("--api-limit", type=int, default=100_000)
    args = parser.parse_args(argv)

    state: Path = args.state_dir
    state.mkdir(parents=True, exist_ok=True)
    previous = _previous_connection(state)
    key_file, cert_file = state / "client-key.pem", state / "client-cert.pem"
    reuse_keys = key_file.exists() and cert_file.exists()
    emulator = SalesforceEmulator(
        consumer_key=previous.get("consumer_key"),
        username=args.username or previous.get("username") or "sync@example.com",
        client_certificate_pem=cert_file.read_text() if reuse_keys else None,
        page_size=args.page_size,
        api_limit=args.api_limit,
        host=args.host,
        port=args.port,
        state_dir=state,
    )
    if reuse_keys:
        emulator.client_private_key_pem = key_file.read_text()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with emulator:
        print(f"Salesforce emulator listening on {emulator.url}", flush=True)
        print(f"connection details: {state / 'connection.json'}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    return 0


def _previous_connection(state: Path) -> dict:
    try:
        return json.loads((state / "connection.json").read_text())
    except (OSError, ValueError):
        return {}


if __name__ == "__main__":
    raise SystemExit(main())
