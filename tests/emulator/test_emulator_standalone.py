"""``python -m salesforce_emulator --state-dir DIR``: a separate process connects with DIR's files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from simple_salesforce import Salesforce

from .factories import JWT_BEARER, assertion

pytestmark = pytest.mark.integration
LOCAL = Path(__file__).resolve().parents[2] / "local"


def test_the_standalone_emulator_writes_what_another_process_needs_to_connect(tmp_path):
    # given the emulator started as its own process on a free port
    env = {**os.environ, "PYTHONPATH": str(LOCAL)}
    process = subprocess.Popen(  # noqa: S603 - runs this interpreter on the emulator module
        [sys.executable, "-m", "salesforce_emulator", "--port", "0", "--state-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        connection = json.loads((tmp_path / "connection.json").read_text())

        # when a client uses only the files in the state directory
        session = requests.Session()
        session.verify = connection["ca_bundle"]
        session.trust_env = False
        private_key = Path(connection["private_key_file"]).read_text()
        signed = assertion(
            private_key, iss=connection["consumer_key"], sub=connection["username"], aud=connection["audience"]
        )
        token = session.post(connection["token_url"], data={"grant_type": JWT_BEARER, "assertion": signed}).json()
        sf = Salesforce(
            instance_url=token["instance_url"], session_id=token["access_token"], session=session, version="62.0"
        )
        created = sf.Account.create({"Name": "From another process"})

        # then it is served over HTTPS at the printed URL
        assert banner.strip() == f"Salesforce emulator listening on {connection['instance_url']}"
        assert sf.query("SELECT Name FROM Account")["records"][0]["Name"] == "From another process"
        assert created["success"] is True
        assert (tmp_path / "ca.pem").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    assert process.returncode == 0


def test_a_restart_keeps_the_ca_and_the_connected_app(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(LOCAL)}
    seen = []
    for _ in range(2):
        process = subprocess.Popen(  # noqa: S603 - runs this interpreter on the emulator module
            [sys.executable, "-m", "salesforce_emulator", "--port", "0", "--state-dir", str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        process.stdout.readline()
        connection = json.loads((tmp_path / "connection.json").read_text())
        seen.append(
            ((tmp_path / "ca.pem").read_text(), connection["consumer_key"], (tmp_path / "client-cert.pem").read_text())
        )
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        time.sleep(0.05)

    assert seen[0] == seen[1]
