"""`python -m local_stack up`, and the commands that use the stack it runs: `store`, `token`, `invoke --attach`.

One `up` (the small data set, a sync cycle every second, free ports, a temporary state dir) runs in a child
process for the module; the commands run in this process against it, as a person's second terminal would.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from account_sync_cli.__main__ import main as account_sync
from local_stack.__main__ import main
from local_stack.moto_server import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[3]
STARTUP_SECONDS = 90
API = "/services/data/v62.0"


class UpProcess:
    """`python -m local_stack up` in a child process (its own session, as a terminal's foreground job), with its
    console lines collected as they come."""

    def __init__(self, state_dir: Path, *options: str, sigint_ignored: bool = False) -> None:
        self.state_dir = state_dir
        # moto and the emulator bind free ports themselves (stack.json names them): a port found free here and
        # bound there could be taken in between by another test worker; the API's is the one still chosen here
        self.api_port = free_port()
        # SIGINT ignored here is inherited through exec: as a background job of a non-interactive shell starts it
        # (how CI may run the suite); no preexec_fn, which is unsafe beside the threads of an xdist worker
        previous_sigint = signal.signal(signal.SIGINT, signal.SIG_IGN) if sigint_ignored else None
        try:
            self.process = subprocess.Popen(  # noqa: S603 - this interpreter, the project's own module
                [
                    sys.executable,
                    "-m",
                    "local_stack",
                    "up",
                    "--moto-port",
                    "0",
                    "--salesforce-port",
                    "0",
                    "--api-port",
                    str(self.api_port),
                    "--state-dir",
                    str(state_dir),
                    *options,
                ],
                cwd=PROJECT_ROOT,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(["local", "layers/account_sync"])},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        finally:
            if previous_sigint is not None:
                signal.signal(signal.SIGINT, previous_sigint)
        self.lines: list[str] = []
        self._new_lines: queue.Queue[str] = queue.Queue()
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def moto_port(self) -> int:
        return int(urlsplit(json.loads((self.state_dir / "stack.json").read_text())["endpoint_url"]).port or 0)

    @property
    def salesforce_port(self) -> int:
        stack = json.loads((self.state_dir / "stack.json").read_text())
        return int(urlsplit(stack["salesforce"]["url"]).port or 0)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._new_lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = STARTUP_SECONDS, after: int = 0) -> re.Match[str]:
        """The first console line from line `after` on that matches `pattern`, waiting for it if need be."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines[after:]:
                match = re.search(pattern, line)
                if match:
                    return match
            after = max(after, len(self.lines))
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.process.poll() is not None and self._new_lines.empty()):
                raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines) + self._errors())
            with contextlib.suppress(queue.Empty):
                self.lines.append(self._new_lines.get(timeout=min(remaining, 0.5)))

    def interrupt(self) -> int:
        """Ctrl-C in the terminal: SIGINT to the whole process group (the moto process included)."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process.stderr is not None:
            self.stderr = self.process.stderr.read()

    def _errors(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return "\nstderr:\n" + self.process.stderr.read()


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    """A running `up`: the small data set, a cycle every second; its first cycle is done."""
    process = UpProcess(tmp_path_factory.mktemp("local-stack"), "--schedule-seconds", "1", "--seed", "small")
    try:
        process.wait_for(r"cycle 1: ")
        yield process
    finally:
        process.stop()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], up: UpProcess) -> Callable[..., Any]:
    """Run an `account-sync --local` command in this process against the running `up`; its JSON output."""

    def run(*args: str, _status: int = 0) -> Any:
        capsys.readouterr()
        assert account_sync(["--local", "--state-dir", str(up.state_dir), "--json", *args]) == _status
        return json.loads(capsys.readouterr().out)

    return run


def eventually(check: Callable[[], Any], timeout: float = 60) -> Any:
    """`check()`'s first truthy value, retried while the stack's next cycles run."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, "the stack did not get there in time"
            return value
        time.sleep(0.5)


class LocalSalesforce:
    """The running stack's Salesforce, through its REST API, with a token from `python -m local_stack token`."""

    def __init__(self, stack_file: dict[str, Any], token: str) -> None:
        self.url = stack_file["salesforce"]["url"]
        self.session = requests.Session()
        self.session.verify = stack_file["salesforce"]["ca_bundle"]
        self.session.trust_env = False
        self.session.headers["Authorization"] = f"Bearer {token}"

    def account_id(self, name: str) -> str:
        response = self.session.get(
            f"{self.url}{API}/query",
            params={"q": f"SELECT Id FROM Account WHERE Name = '{name}'"},  # noqa: S608 - a name of the data set
        )
        response.raise_for_status()
        return str(response.json()["records"][0]["Id"])

    def update_account(self, account_id: str, values: dict[str, Any]) -> None:
        response = self.session.patch(f"{self.url}{API}/sobjects/Account/{account_id}", json=values)
        assert response.status_code == 204, response.text


def _stack_file(up: UpProcess) -> dict[str, Any]:
    return json.loads((up.state_dir / "stack.json").read_text())


@pytest.fixture
def salesforce(up: UpProcess, capsys: pytest.CaptureFixture[str]) -> LocalSalesforce:
    capsys.readouterr()
    assert main(["token", "--quiet", "--state-dir", str(up.state_dir)]) == 0
    token = capsys.readouterr().out.strip()
    return LocalSalesforce(_stack_file(up), token)


def test_up_writes_the_stack_file_and_syncs_the_seeded_data_on_its_schedule(up):
    # given a running `up` (the fixture)
    # when its schedule has fired twice
    seeded = up.wait_for(r"Salesforce seeded: (\d+) accounts, (\d+) contacts")
    first = up.wait_for(
        r"cycle 1: queued (\d+) accounts, (\d+) contacts; applied (\d+) messages.*?(\d+) Salesforce API"
    )
    up.wait_for(r"cycle 2: ")
    # then every cycle printed its line, the first one queued the whole data set
    assert first.group(1, 2) == seeded.group(1, 2)
    assert int(first.group(3)) > 0 and int(first.group(4)) > 0
    # and stack.json describes the stack and the emulator, whose keys are kept in the state dir
    stack = _stack_file(up)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", stack["endpoint_url"]) and up.moto_port > 0
    assert stack["stage"] == "local"
    assert stack["parameter_overrides"]["ActivityThreshold"] == "50"
    assert stack["resources"]["ContactsTable"]["type"] == "AWS::DynamoDB::Table"
    assert stack["resources"]["ContactsTable"]["ref"] == "account-sync-local-contacts"
    assert stack["resources"]["AccountChangesQueue"]["attributes"]["Arn"].endswith("account-changes.fifo")
    salesforce_dir = up.state_dir.resolve() / "salesforce"
    assert re.fullmatch(r"https://localhost:\d+", stack["salesforce"]["url"]) and up.salesforce_port > 0
    assert stack["salesforce"]["ca_bundle"] == str(salesforce_dir / "ca.pem")
    assert stack["salesforce"]["connection_file"] == str(salesforce_dir / "connection.json")
    assert stack["function_env"]["SALESFORCE_CA_BUNDLE"] == str(salesforce_dir / "ca.pem")
    assert {"ca.pem", "client-key.pem", "client-cert.pem", "connection.json"} <= {
        path.name for path in salesforce_dir.iterdir()
    }


def test_a_change_made_with_the_token_reaches_the_store_with_its_activities_newest_first(up, cli, salesforce):
    # given a small account of the data set (activities logged) and one of its contacts
    account_id = salesforce.account_id("Account 005")
    contact_id = cli("store", "contacts", "--account", account_id)["contacts"][0]["contact_id"]
    before = cli("store", "contact", contact_id)["contact"]["account_fields"]
    # when Salesforce changes the account twice, through its REST API, and the next cycles run
    salesforce.update_account(account_id, {"Industry": "Shipbuilding"})
    eventually(lambda: cli("store", "contact", contact_id)["contact"]["account_fields"]["Industry"] == "Shipbuilding")
    salesforce.update_account(account_id, {"Rating": "Lukewarm"})
    view = eventually(
        lambda: (found := cli("store", "contact", contact_id)) and len(found["activities"]) == 2 and found
    )
    # then the contact holds the new values and its activities say what changed, newest first
    assert view["contact"]["account_id"] == account_id
    assert view["contact"]["account_fields_source"] == "salesforce"
    changes = [(a["attribute_name"], a.get("old_value"), a["new_value"]) for a in view["activities"]]  # blank: absent
    assert changes == [("Rating", before["Rating"], "Lukewarm"), ("Industry", before["Industry"], "Shipbuilding")]
    assert {a["activity_type"] for a in view["activities"]} == {"Change Data Value"}
    assert view["more_activities"] is False
    limited = cli("store", "contact", contact_id, "--limit", "1")
    assert [a["attribute_name"] for a in limited["activities"]] == ["Rating"]
    assert limited["more_activities"] is True


def test_store_account_shows_the_suppression_and_live_contacts_of_the_account_above_the_threshold(up, cli, salesforce):
    # given the account with one contact more than the threshold
    account_id = up.wait_for(r"(\w+): 51 contacts \(activities suppressed\)").group(1)
    # when Salesforce changes it and the next cycle runs
    salesforce.update_account(account_id, {"Industry": "Shipbuilding"})
    view = eventually(
        lambda: (
            (found := cli("store", "account", account_id))["account"]["fields"]["Industry"] == "Shipbuilding"
            and found["suppressions"]
            and found["suppressions"][0]["system_modstamp"] == found["account"]["system_modstamp"]
            and found
        )
    )
    # then the account item, its suppression record (the newest first) and its live contact count are shown
    assert view["account"]["activity_logging"] == "suppressed"
    assert view["live_contacts"] == 51
    suppression = view["suppressions"][0]
    assert suppression["activity_type"] == "Change Data Value Suppressed"
    assert (suppression["contacts_counted"], suppression["threshold"]) == (51, 50)
    assert suppression["changed_fields"] == ["Industry"]


def test_store_contacts_pages_through_an_account(up, cli):
    # given the account with 51 contacts
    account_id = up.wait_for(r"(\w+): 51 contacts").group(1)
    # when its contacts are listed 20 at a time, each page starting after the previous one's `next`
    pages = [cli("store", "contacts", "--account", account_id, "--page-size", "20")]
    while pages[-1]["next"]:
        pages.append(
            cli("store", "contacts", "--account", account_id, "--page-size", "20", "--after", pages[-1]["next"])
        )
    # then three pages hold every contact once, with their names
    assert [len(page["contacts"]) for page in pages] == [20, 20, 11]
    contacts = [contact for page in pages for contact in page["contacts"]]
    assert len({contact["contact_id"] for contact in contacts}) == 51
    assert all(contact["first_name"] and contact["last_name"].startswith("Contact ") for contact in contacts)


def test_store_state_shows_the_watermarks_the_lease_and_the_last_run(cli):
    # given a stack that has run its cycles; when the sync state is read
    state = cli("store", "state")
    # then it holds the watermarks of both objects and of their sweeps with their last run, the fetch's lease, and
    # the API usage the last run saw, the synced field list and the drift check's clock (issue 12)
    streams = ("Account", "Contact", "Account.sweep", "Contact.sweep")
    expected = {*(f"watermark#{stream}" for stream in streams), "lease#fetch", "usage#salesforce"}
    assert set(state) - {"watermark#Account.resync"} == expected | {"fields#account", "drift#sample"}
    assert state["fields#account"]["synced_fields"]
    for stream in streams:
        item = state[f"watermark#{stream}"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", item["watermark"])
        assert item["last_run"]["run_id"]
    assert state["lease#fetch"]["owner"]
    assert 0 < state["usage#salesforce"]["api_used"] < state["usage#salesforce"]["api_limit"]


def test_invoke_attach_runs_a_function_against_the_running_store(up, cli, capsys):
    # given the fan-out's event file, whose account the data set does not have
    event = str(PROJECT_ROOT / "events" / "fan_out_account_change.json")
    # when the fan-out is invoked with it, attached to the running stack
    capsys.readouterr()
    assert main(["invoke", "fan_out", "-e", event, "--attach", "--state-dir", str(up.state_dir)]) == 0
    response = json.loads(capsys.readouterr().out)
    # then it answered as Lambda would and what it wrote stays in the running stack's store
    assert response == {"batchItemFailures": []}
    account = cli("store", "account", "001000000000000001")["account"]
    assert account["fields"]["Name"] == "Acme Energy"
    # and the fetch reaches the local Salesforce with the running stack's settings (the stack's own cycle, every
    # second, may hold the fetch's lease at that moment: then the invocation is skipped and tried again)
    command = ["invoke", "fetch_changes", "-e", "events/fetch_schedule.json", "--attach"]
    command += ["--state-dir", str(up.state_dir)]
    outcomes = []
    while len(outcomes) < 20 and "completed" not in outcomes:
        assert main(command) == 0
        outcomes.append(json.loads(capsys.readouterr().out)["outcome"])
        time.sleep(0.1)
    assert outcomes[-1] == "completed" and set(outcomes[:-1]) <= {"skipped_another_run_active"}


def test_dead_letters_of_the_running_stack_are_listed_without_values_and_redriven_once(up, cli):
    # given a dead letter on the running stack's account-changes dead-letter queue, as its fan-out sets one aside
    from account_sync_cli.deployment import Deployment

    deployment = Deployment.from_local(up.state_dir)
    sqs = deployment.client("sqs")
    body = json.dumps({"type": "account_change", "schema": 1, "version": {"account_id": "001", "fields": {}}})
    body = body.replace('"fields": {}', '"fields": {"Industry": "Secret Value"}')
    sent = sqs.send_message(
        QueueUrl=deployment.ref("AccountChangesDeadLetterQueue"),
        MessageBody=body,
        MessageGroupId="001000000000000999",
        MessageDeduplicationId="dead-letter-of-the-cli-test",
        MessageAttributes={"reason": {"DataType": "String", "StringValue": "malformed: version.system_modstamp"}},
    )["MessageId"]
    # when an operator lists them through account-sync --local: it is shown by id, kind and reason, not by value
    listed = cli("dlq", "list", "--queue", "changes", _status=1)
    (letter,) = [item for item in listed["dead_letters"]["changes"] if item["message_id"] == sent]
    assert (letter["kind"], letter["reason"]) == ("account_change", "malformed: version.system_modstamp")
    assert "Secret Value" not in json.dumps(listed)
    # and a dry run moves nothing; a redrive of that one moves it once (the running fan-out then applies it, or sets
    # it aside again: malformed), and a second redrive finds nothing to move
    assert cli("dlq", "redrive", "--queue", "changes", "--id", sent, "--dry-run")["would_move_ids"] == [sent]
    assert cli("dlq", "redrive", "--queue", "changes", "--id", sent)["moved_ids"] == [sent]
    assert cli("dlq", "redrive", "--queue", "changes", "--id", sent, _status=1)["not_found"] == [sent]


def test_resync_and_drift_run_the_running_stacks_fetch(up, salesforce, capsys):
    # given an account of the running stack's data set
    account_id = salesforce.account_id("Account 007")
    options = ["--local", "--state-dir", str(up.state_dir), "--json"]

    def operator(*command: str) -> tuple[int, Any]:
        """The command, again while the stack's own cycle (every second) holds the fetch's lease."""
        for _ in range(40):
            capsys.readouterr()
            status = account_sync([*options, *command])
            out = capsys.readouterr().out
            if out:
                return status, json.loads(out)
            time.sleep(0.2)
        raise AssertionError("the fetch's lease was never free")

    # when the operator resyncs it, then it is read again through the stack's fetch function
    status, summary = operator("resync", "--account", account_id)
    assert status == 0 and summary["done"] is True and summary["accounts_queued"] == 1
    # and a drift check compares the first accounts of Salesforce with the store
    status, found = operator("drift")
    assert status in (0, 1) and found["checked"] > 0


def test_token_prints_an_export_line_and_a_curl_example(up, capsys):
    capsys.readouterr()
    assert main(["token", "--state-dir", str(up.state_dir)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^export TOKEN='?00D\w+!", out, re.MULTILINE)
    assert "curl --cacert" in out and '-H "Authorization: Bearer $TOKEN"' in out
    assert re.search(rf"-X PATCH .* https://localhost:{up.salesforce_port}{API}/sobjects/Account/001\w+", out)


def test_the_commands_say_clearly_when_no_stack_runs(tmp_path, capsys):
    # given no stack.json; then every command says so
    for command in (["token"], ["invoke", "fan_out", "--attach"]):
        with pytest.raises(SystemExit, match=r"no local stack: .*stack\.json does not exist"):
            main([*command, "--state-dir", str(tmp_path)])
    operator = ["--local", "--state-dir", str(tmp_path), "store", "state"]
    assert account_sync(operator) == 2
    assert re.search(r"no local stack: .*stack\.json does not exist", capsys.readouterr().err)
    # given a stack.json whose stack stopped, or whose endpoint nothing answers, or is not local
    stack_file = tmp_path / "stack.json"
    port = free_port()
    stack_file.write_text(json.dumps({"endpoint_url": f"http://127.0.0.1:{port}", "stopped_at": "2026-11-27T21:00"}))
    with pytest.raises(SystemExit, match="stopped at 2026-11-27T21:00"):
        main(["token", "--state-dir", str(tmp_path)])
    assert account_sync(operator) == 2
    assert "stopped at 2026-11-27T21:00" in capsys.readouterr().err
    stack_file.write_text(json.dumps({"endpoint_url": f"http://127.0.0.1:{port}", "pid": os.getpid()}))
    with pytest.raises(SystemExit, match=f"does not answer at http://127.0.0.1:{port}"):
        main(["token", "--state-dir", str(tmp_path)])
    assert account_sync(operator) == 2
    assert f"does not answer at http://127.0.0.1:{port}" in capsys.readouterr().err
    stack_file.write_text(json.dumps({"endpoint_url": "https://dynamodb.us-east-1.amazonaws.com"}))
    with pytest.raises(SystemExit, match="not a local moto server"):
        main(["token", "--state-dir", str(tmp_path)])
    assert account_sync(operator) == 2
    assert "not a local moto server" in capsys.readouterr().err


def test_ctrl_c_stops_the_stack_and_its_moto_process_and_leaves_the_files(tmp_path):
    # given a running `up` without data, started with SIGINT ignored (as a background job of a script starts it)
    process = UpProcess(tmp_path, "--seed", "none", "--schedule-seconds", "1", sigint_ignored=True)
    try:
        process.wait_for(r"cycle 1: queued 0 accounts, 0 contacts")
        assert _listening(process.moto_port)
        # when Ctrl-C is pressed in its terminal
        status = process.interrupt()
        # then it stopped cleanly, the moto process with it, and its files stay, saying it stopped
        assert status == 0
        process.wait_for(r"stopped; the files stay in ", timeout=5)
        assert not _listening(process.moto_port)
        assert not _listening(process.salesforce_port)
        assert json.loads((tmp_path / "stack.json").read_text())["stopped_at"]
        assert (tmp_path / "salesforce" / "ca.pem").is_file()
        with pytest.raises(SystemExit, match="stopped at"):
            main(["token", "--state-dir", str(tmp_path)])
    finally:
        process.stop()
    assert "Traceback" not in process.stderr


def test_the_sandbox_keeps_its_ca_and_connected_app_key_in_its_state_dir(tmp_path):
    from aws_lambda_powertools.utilities import parameters
    from local_stack.sandbox import SyncSandbox

    parameters.clear_caches()  # a secret (another key) cached by an earlier test's functions in this process
    # given a sandbox that ran once with a state dir (moto in this process: the state dir is what is tested, and
    # a moto process costs seconds to start)
    with SyncSandbox(state_dir=tmp_path, separate_process=False):
        first = {name: (tmp_path / name).read_text() for name in ("ca.pem", "client-key.pem", "client-cert.pem")}
    # when another one starts with the same state dir
    with SyncSandbox(state_dir=tmp_path, separate_process=False) as sandbox:
        # then it serves with the same CA and logs in with the same connected-app key
        assert {name: (tmp_path / name).read_text() for name in first} == first
        assert sandbox.run_cycle().fetch["outcome"] == "completed"
        assert json.loads((tmp_path / "connection.json").read_text())["private_key_file"] == str(
            tmp_path / "client-key.pem"
        )


def test_up_flags_turn_on_dynamodb_throttling_and_index_lag_in_the_functions_process():
    # given `up` asked for a throttled table and a lagging index
    from local_stack import up as up_command
    from local_stack.__main__ import build_parser
    from local_stack.dynamodb_throttling import DynamoThrottle, IndexLag

    args = build_parser().parse_args(
        ["up", "--throttle-table-writes", "200", "--throttle-partition-writes", "50", "--index-lag-seconds", "5"]
    )
    # when it installs its injectors
    injectors = up_command._make_harsh(args)
    try:
        # then DynamoDB is metered per table and per partition key, and the index lags, as asked
        throttle, lag = injectors
        assert isinstance(throttle, DynamoThrottle) and isinstance(lag, IndexLag)
        assert (throttle.table_writes, throttle.partition_writes, throttle.table_reads) == (200, 50, None)
        assert lag.seconds == 5
        assert "killed at the timeout" in up_command._harshness_line(args)
    finally:
        for injector in injectors:
            injector.uninstall()
    # and nothing is metered without the flags
    assert up_command._make_harsh(build_parser().parse_args(["up"])) == []
    with pytest.raises(SystemExit):
        build_parser().parse_args(["up", "--throttle-table-writes", "0"])
