"""`make demo`: a real sync, end to end, on this machine.

The same handlers that run in Lambda, on the embedded local stack (moto in server mode, the functions
in-process, the SQS triggers emulated) and the local Salesforce emulator over HTTPS. The story is a list of
sections (`SECTIONS`), each a function of the `Demo` it shares with the others:

1. load a data set into Salesforce: 40 accounts and about 10,400 contacts, among them one account with exactly
   the activity threshold of contacts (5000) and one with one more;
2. seed the store with the two large accounts as the initial sync writes them (`local_stack.seed`: their 10,001
   contacts in bulk, not one conditional write each; `--no-seed` syncs them too);
3. run the initial sync (the fetch reads the whole org; the fan-out writes every other account, and finds the
   seeded ones already applied);
4. change things: account fields updated in Salesforce (the two large accounts among them), a contact moved to
   another account, an account deleted, and a local edit of an account field in the store;
5. run the next sync, which overwrites the local edit and shows the threshold rule on 5,000 and 5,001 contacts;
6. check the store against Salesforce;
7. show the push path (`demo_push`): a change arriving by Change Data Capture through moto's EventBridge, and the
   poll repairing a gap the push path could not see;
8. print a summary (exit 1 if a check fails), then `account-sync status`.

A section that checks something adds a `Check` to `Demo.checks`; they are printed together. `--scale small` runs
the same story in seconds with a threshold of 50 (the integration tests use it).
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from local_stack.demo_push import PUSH_DEMO_CONTACTS, quiet_relay, show_push_and_gap_repair
from local_stack.sandbox import CycleResult, SyncSandbox
from local_stack.seed import seed_initial_sync
from local_stack.sqs_poller import DrainResult

INDUSTRIES = ["Energy", "Retail", "Banking", "Healthcare", "Manufacturing", "Media", "Technology", "Education"]
COUNTRIES = [("France", "Lyon"), ("Germany", "Berlin"), ("Spain", "Madrid"), ("Italy", "Milan"), ("Japan", "Osaka")]
RATINGS = ["Hot", "Warm", "Cold", None]
FIRST_NAMES = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis"]


@dataclass(frozen=True)
class Scale:
    accounts: int
    threshold: int
    small_account_contacts: tuple[int, int]
    updated_accounts: int


SCALES = {
    # Every rule needs only the two large accounts (5,000 and 5,001 contacts) and a dozen small ones: more small
    # accounts only add moto writes (docs/decisions.md, "make demo"). `--scale large` (300 accounts, ~20,000
    # contacts) is the heavier run.
    "full": Scale(accounts=40, threshold=5000, small_account_contacts=(5, 15), updated_accounts=12),
    "large": Scale(accounts=300, threshold=5000, small_account_contacts=(20, 50), updated_accounts=25),
    "small": Scale(accounts=12, threshold=50, small_account_contacts=(2, 8), updated_accounts=4),
}


@dataclass
class Story:
    """What the demo did to Salesforce and the store, so that the checks can say what must follow."""

    at_threshold: str = ""
    above_threshold: str = ""
    updated: dict[str, dict[str, Any]] = field(default_factory=dict)
    moved_contact: str = ""
    moved_from: str = ""
    moved_to: str = ""
    deleted_account: str = ""
    edited_account: str = ""
    edited_field: str = "Rating"
    edited_value: str = "Edited in the store"


class Console:
    """What a person watching reads (the functions' own output goes to their log file).

    Progress rewrites one line on a terminal (a carriage return); into a file or a pipe it writes a whole line
    every `log_interval` seconds instead, so that a log never holds lines glued together by carriage returns.
    """

    def __init__(self, out: TextIO, log_interval: float = 10.0) -> None:
        self.out = out
        self.started = time.monotonic()
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.log_interval = log_interval
        self._progress_shown = False
        self._last_progress = 0.0

    def say(self, text: str = "") -> None:
        if self._progress_shown and self.tty:
            print(file=self.out)  # end the line the progress kept rewriting
        self._progress_shown = False
        print(text, file=self.out, flush=True)

    def step(self, text: str) -> None:
        self.say(f"\n[{time.monotonic() - self.started:6.1f}s] {text}")

    def line(self, text: str) -> None:
        self.say(f"          {text}")

    def progress(self, drained: DrainResult) -> None:
        text = (
            f"          … {drained.succeeded:>7,} messages applied, {drained.failed} retried, "
            f"{drained.invocations:,} invocations"
        )
        if self.tty:
            print(f"\r{text}", end="", file=self.out, flush=True)
            self._progress_shown = True
        elif time.monotonic() - self._last_progress >= self.log_interval:
            self._last_progress = time.monotonic()
            print(text, file=self.out, flush=True)


def load_salesforce(sandbox: SyncSandbox, scale: Scale, rng: random.Random, story: Story) -> tuple[int, int]:
    salesforce = sandbox.salesforce
    accounts = []
    for n in range(scale.accounts):
        country, city = rng.choice(COUNTRIES)
        accounts.append(
            {
                "Name": f"Account {n:03d}",
                "Industry": rng.choice(INDUSTRIES),
                "Type": rng.choice(["Customer - Direct", "Customer - Channel", "Prospect"]),
                "BillingCountry": country,
                "BillingCity": city,
                "AnnualRevenue": float(rng.randrange(100, 100_000) * 1000),
                "NumberOfEmployees": rng.randrange(5, 20_000),
                "Rating": rng.choice(RATINGS),
            }
        )
    accounts[0]["Name"] = "Globex (exactly the threshold of contacts)"
    accounts[1]["Name"] = "Initech (one contact above the threshold)"
    ids = salesforce.bulk_create("Account", accounts)
    story.at_threshold, story.above_threshold = ids[0], ids[1]
    sizes = [scale.threshold, scale.threshold + 1] + [rng.randint(*scale.small_account_contacts) for _ in ids[2:]]
    contacts = []
    for account_id, size in zip(ids, sizes, strict=True):
        for _ in range(size):
            number = len(contacts)
            contacts.append(
                {
                    "AccountId": account_id,
                    "FirstName": rng.choice(FIRST_NAMES),
                    "LastName": f"Contact {number:05d}",
                    "Email": f"contact{number:05d}@example.com",
                }
            )
    salesforce.bulk_create("Contact", contacts)
    return len(ids), len(contacts)


def change_salesforce_and_store(sandbox: SyncSandbox, scale: Scale, rng: random.Random, story: Story) -> None:
    from account_sync.contracts import LocalEditMessage
    from account_sync.domain.records import LocalEdit
    from account_sync.domain.timestamps import utc_now
    from account_sync.settings import load_settings
    from account_sync.wiring import build_change_publisher

    salesforce = sandbox.salesforce
    accounts = [a for a in salesforce.records("Account")]
    small = [a["Id"] for a in accounts if a["Id"] not in (story.at_threshold, story.above_threshold)]
    story.edited_account = small[0]
    story.deleted_account = small[-1]
    story.moved_from, story.moved_to = small[1], small[2]

    # A local edit in the store, through one contact (SPEC R3), queued like the API does.
    through = next(c["Id"] for c in salesforce.records("Contact") if c["AccountId"] == story.edited_account)
    build_change_publisher(load_settings()).publish(
        [
            LocalEditMessage(
                LocalEdit(
                    edit_id=uuid.uuid4().hex,
                    contact_id=through,
                    account_id=story.edited_account,
                    field=story.edited_field,
                    value=story.edited_value,
                    edited_at=utc_now(),
                )
            )
        ]
    )
    sandbox.drain()

    # Then, in Salesforce: field updates (the two large accounts, the edited one and a few more) ...
    for account_id in [
        story.at_threshold,
        story.above_threshold,
        story.edited_account,
        *small[3 : scale.updated_accounts],
    ]:
        current = salesforce.get("Account", account_id)
        assert current is not None
        change = {"Industry": rng.choice([i for i in INDUSTRIES if i != current["Industry"]])}
        if account_id == story.edited_account:
            change = {"NumberOfEmployees": int(current["NumberOfEmployees"]) + 1}
        salesforce.update("Account", account_id, change)
        story.updated[account_id] = change
    # ... a contact that changes account, and an account deleted (its contacts go with it).
    story.moved_contact = next(c["Id"] for c in salesforce.records("Contact") if c["AccountId"] == story.moved_from)
    salesforce.update("Contact", story.moved_contact, {"AccountId": story.moved_to})
    salesforce.delete("Account", story.deleted_account)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def check_store(sandbox: SyncSandbox, scale: Scale, story: Story, synced_fields: list[str]) -> tuple[list[Check], dict]:
    from account_sync.adapters.dynamodb_models import AccountItem, ActivityItem, ContactItem
    from account_sync.domain.fields import canonical_value

    salesforce = sandbox.salesforce
    sf_accounts = {a["Id"]: a for a in salesforce.records("Account", include_deleted=True)}
    sf_contacts = {c["Id"]: c for c in salesforce.records("Contact", include_deleted=True)}
    # Only what the checks read (a projection): moto's response serialiser is most of a Scan's cost on its side.
    contacts = {
        item.contact_id: item
        for item in ContactItem.scan(
            attributes_to_get=["contact_id", "account_id", "account_fields", "is_deleted", "account_fields_source"]
        )
    }
    accounts = {item.account_id: item for item in AccountItem.scan(attributes_to_get=["account_id", "is_deleted"])}
    activities = list(
        ActivityItem.scan(
            attributes_to_get=[
                "subject_id",
                "activity_key",
                "activity_type",
                "source",
                "account_id",
                "reason",
                "contacts_counted",
                "threshold",
                "changed_fields",
            ]
        )
    )
    cdv = [a for a in activities if a.activity_type == "Change Data Value"]
    suppressed = [a for a in activities if a.activity_type == "Change Data Value Suppressed"]
    checks: list[Check] = []

    def expect(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, ok, detail))

    live = [c for c in sf_contacts.values() if not c["IsDeleted"]]
    expected_fields = {
        account_id: {f: canonical_value(account[f]) for f in synced_fields}
        for account_id, account in sf_accounts.items()
    }

    def holds_its_account(contact: dict) -> bool:
        item = contacts.get(contact["Id"])
        if item is None or item.account_id != contact["AccountId"]:
            return False
        stored = item.account_fields.as_dict()
        return {f: canonical_value(stored.get(f)) for f in synced_fields} == expected_fields[contact["AccountId"]]

    mismatched = [c["Id"] for c in live if not holds_its_account(c)]
    expect(
        "every live contact holds its account's Salesforce values",
        not mismatched,
        f"{len(live) - len(mismatched):,} of {len(live):,} contacts match"
        + (f"; first wrong: {mismatched[0]}" if mismatched else ""),
    )
    deleted_contacts = [c["Id"] for c in sf_contacts.values() if c["IsDeleted"]]
    expect(
        "the deleted account is flagged, and so are its contacts",
        accounts[story.deleted_account].is_deleted
        and all(contacts[c].is_deleted and contacts[c].account_id is None for c in deleted_contacts)
        and not any(c.account_id == story.deleted_account for c in contacts.values()),
        f"account {story.deleted_account} is_deleted; {len(deleted_contacts)} contacts flagged is_deleted",
    )
    moved = contacts[story.moved_contact]
    expect(
        "the moved contact took its new account's fields",
        moved.account_id == story.moved_to
        and moved.account_fields.as_dict()["Name"] == sf_accounts[story.moved_to]["Name"],
        f"{story.moved_contact}: {story.moved_from} → {story.moved_to}",
    )
    edited = [c for c in contacts.values() if c.account_id == story.edited_account]
    local_activities = [a for a in cdv if a.source == "local"]
    expect(
        "the local edit reached every contact, then the next Salesforce update overwrote it",
        len(local_activities) == len(edited)
        and all(c.account_fields_source == "salesforce" for c in edited)
        and all(c.account_fields.as_dict().get(story.edited_field) != story.edited_value for c in edited),
        f"{len(local_activities)} local activities on {len(edited)} contacts; "
        f"{story.edited_field} is Salesforce's again",
    )

    per_account = Counter(a.account_id for a in cdv if a.source == "salesforce")
    at_threshold = sum(1 for c in live if c["AccountId"] == story.at_threshold)
    expected_at = at_threshold * len(story.updated[story.at_threshold])
    expect(
        f"an account with exactly {scale.threshold:,} contacts logs its activities",
        at_threshold == scale.threshold and per_account[story.at_threshold] == expected_at,
        f"{per_account[story.at_threshold]:,} Change Data Value activities for {at_threshold:,} contacts",
    )
    above = sum(1 for c in live if c["AccountId"] == story.above_threshold)
    suppressed_here = [s for s in suppressed if s.account_id == story.above_threshold]
    expect(
        f"an account with {scale.threshold + 1:,} contacts is synced without activities, and that is recorded",
        above == scale.threshold + 1 and per_account[story.above_threshold] == 0 and len(suppressed_here) == 1,
        f"0 activities, {len(suppressed_here)} suppression record "
        f"({suppressed_here[0].reason if suppressed_here else '-'})",
    )
    members = Counter(c["AccountId"] for c in live)
    expected_small = sum(
        members[account_id] * (len(change) + (1 if account_id == story.edited_account else 0))  # local value too
        for account_id, change in story.updated.items()
        if account_id not in (story.at_threshold, story.above_threshold)
    )
    actual_small = sum(
        n for a, n in per_account.items() if a in story.updated and a not in (story.at_threshold, story.above_threshold)
    )
    expect(
        "one activity per contact and changed field for every updated account",
        actual_small == expected_small,
        f"{actual_small:,} activities, {expected_small:,} implied by the changes",
    )
    figures = {
        "accounts": len([a for a in accounts.values() if not a.is_deleted]),
        "contacts": len([c for c in contacts.values() if not c.is_deleted]),
        "activities": len(cdv),
        "suppressed": suppressed,
    }
    return checks, figures


def dead_letters(sandbox: SyncSandbox) -> int:
    import boto3

    sqs = boto3.client("sqs")
    total = 0
    resources = sandbox.local.resources
    for logical_id in ("AccountChangesDeadLetterQueue", "ActivityDeadLetterQueue", "ChangeEventsDeadLetterQueue"):
        if logical_id not in resources:  # type: ignore[operator]
            continue  # the push path's, where it is off
        url = resources.queue_url(logical_id)  # type: ignore[union-attr]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        total += int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    return total


@dataclass
class Demo:
    """What the sections share: the running sandbox, the data set's scale and story, what the cycles did, and the
    checks to print."""

    sandbox: SyncSandbox
    scale: Scale
    rng: random.Random
    console: Console
    seed: bool = True
    story: Story = field(default_factory=Story)
    synced_fields: list[str] = field(default_factory=list)
    cycles: list[CycleResult] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def section_load_salesforce(demo: Demo) -> None:
    n_accounts, n_contacts = load_salesforce(demo.sandbox, demo.scale, demo.rng, demo.story)
    threshold = demo.scale.threshold
    demo.console.line(
        f"{n_accounts:,} accounts and {n_contacts:,} contacts; {threshold:,} contacts on the first "
        f"account, {threshold + 1:,} on the second (activity threshold: {threshold:,})"
    )


def section_seed(demo: Demo) -> None:
    """The two large accounts' first load, written as the initial sync writes it (`local_stack.seed`)."""
    if not demo.seed:
        demo.console.line("not seeded (--no-seed): the initial sync writes every contact")
        return
    salesforce, story = demo.sandbox.salesforce, demo.story
    large = {story.at_threshold, story.above_threshold}
    started = time.monotonic()
    seeded = seed_initial_sync(
        [a for a in salesforce.records("Account") if a["Id"] in large],
        [c for c in salesforce.records("Contact") if c["AccountId"] in large],
        demo.synced_fields,
        threshold=demo.scale.threshold,
        segment_size=int(demo.sandbox.local.resources.parameters["FanOutSegmentSize"]),  # type: ignore[union-attr]
    )
    demo.console.line(
        f"{seeded.accounts} accounts and {seeded.contacts:,} contacts written as the initial sync writes them, "
        f"in {seeded.requests:,} requests and {time.monotonic() - started:.1f}s (the sync's way: "
        f"{2 * seeded.contacts:,}, a read and a conditional write per contact)"
    )


def _cycle(demo: Demo) -> None:
    """One scheduled sync: the fetch, then the triggers until the queues are idle."""
    console = demo.console
    cycle = demo.sandbox.run_cycle(on_progress=console.progress)
    demo.cycles.append(cycle)
    queued = cycle.fetch["queued"]
    console.line(
        f"fetch queued {queued['Account']:,} account and {queued['Contact']:,} contact changes "
        f"with {cycle.salesforce_calls} Salesforce API calls"
    )
    console.line(
        f"triggers applied {cycle.drain.succeeded:,} messages in {cycle.drain.invocations:,} invocations "
        f"({cycle.drain.failed} retried, {cycle.drain.moved_to_dlq} to a dead-letter queue) in {cycle.seconds:.1f}s"
    )


def section_change(demo: Demo) -> None:
    story, console = demo.story, demo.console
    change_salesforce_and_store(demo.sandbox, demo.scale, demo.rng, story)
    console.line(f"store: {story.edited_field} edited locally on account {story.edited_account} (every contact)")
    console.line(f"Salesforce: {len(story.updated)} accounts updated, including both large ones")
    console.line(f"Salesforce: contact {story.moved_contact} moved from {story.moved_from} to {story.moved_to}")
    console.line(f"Salesforce: account {story.deleted_account} deleted (its contacts with it)")


def section_push(demo: Demo) -> None:
    """A change by push and a gap the poll repairs, on an account of its own (`local_stack.demo_push`)."""
    demo.checks += [Check(*check) for check in show_push_and_gap_repair(demo.sandbox, demo.console).checks]


def section_check(demo: Demo) -> None:
    checks, demo.figures = check_store(demo.sandbox, demo.scale, demo.story, demo.synced_fields)
    dlq = dead_letters(demo.sandbox)
    checks.append(Check("nothing in the dead-letter queues", dlq == 0, f"{dlq} messages"))
    demo.checks = checks + demo.checks  # the store's checks first, then any a section added
    for check in demo.checks:
        demo.console.line(f"{'✓' if check.ok else '✗'} {check.name}: {check.detail}")


Section = tuple[str, Callable[[Demo], None]]

# The story, in order; a section is a title and a function of the `Demo` (add one here to tell more).
SECTIONS: list[Section] = [
    ("Loading Salesforce", section_load_salesforce),
    ("Seeding the store: the two large accounts as the initial sync writes them", section_seed),
    ("Sync cycle 1: the initial sync", _cycle),
    ("Changing things", section_change),
    ("Sync cycle 2: the changes", _cycle),
    ("Checking the store against Salesforce", section_check),
    (f"Push: Change Data Capture through Event Relay, one account of {PUSH_DEMO_CONTACTS} contacts", section_push),
]


def summarize(demo: Demo, log_path: Path) -> None:
    console, figures, stack = demo.console, demo.figures, demo.sandbox.local
    used, limit = demo.sandbox.salesforce.api_usage
    calls = [cycle.salesforce_calls for cycle in demo.cycles]
    console.say("\nSummary")
    console.say(f"  accounts synced ............ {figures['accounts']:,} (and 1 deleted)")
    console.say(f"  contacts synced ............ {figures['contacts']:,}")
    console.say(f"  activities written ......... {figures['activities']:,} Change Data Value")
    for record in figures["suppressed"]:
        console.say(
            f"  activity suppressed ........ account {record.account_id}: {record.contacts_counted:,} contacts "
            f"> threshold {record.threshold:,} (fields {', '.join(record.changed_fields)})"
        )
    console.say(
        f"  Salesforce API calls ....... {sum(calls)} ({' + '.join(map(str, calls))}; {used:,} of the daily "
        f"{limit:,} used)"
    )
    console.say(f"  time ....................... {time.monotonic() - console.started:.1f}s")
    console.say(f"  functions' logs ............ {log_path}")
    from account_sync_cli import status as operator_view  # the operator's view of this stack (issue 12)
    from account_sync_cli.deployment import Deployment

    here = Deployment("demo stack", stack.resources.refs(), stack.resources.region, stack.endpoint_url, local=True)
    console.say("\nThe operator's view: account-sync status")
    for line in operator_view.render(operator_view.status(here)):
        console.say(f"  {line}")


DEFAULT_FUNCTIONS_LOG = Path(".local-stack") / "demo-functions.log"


def main(argv: list[str] | None = None) -> int:
    """The console gets the story; the functions' own output (their CloudWatch logs: JSON log lines and EMF
    metrics) goes to `--functions-log` (`.local-stack/demo-functions.log`; a test gives its own, so that it never
    overwrites a developer's, nor two runs write one file)."""
    from contextlib import redirect_stdout

    args = _parser().parse_args(argv)
    log_path = Path(args.functions_log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    console_stream = sys.stdout
    with log_path.open("w") as function_logs, redirect_stdout(function_logs):
        return _run(args, console_stream, log_path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-seed", dest="seed_store", action="store_false", help="sync the large accounts in cycle 1 too (slow)"
    )
    parser.add_argument("--functions-log", default=str(DEFAULT_FUNCTIONS_LOG), help="the functions' own output")
    return parser


def _run(args: argparse.Namespace, out: TextIO, log_path: Path) -> int:
    logging.basicConfig(level=logging.ERROR)
    console = Console(out)

    console.step("Starting the local stack: moto server, Salesforce emulator (HTTPS), template.yaml resources")
    # The cycles run back to back, seconds apart, not 5 minutes apart, and the data set is loaded a moment before
    # the first: any overlap would re-read (harmlessly, but slowly on moto) every change of the previous cycle.
    # The overlap itself is proven by the fetch's integration tests (a late-committing transaction).
    scale = SCALES[args.scale]
    overrides = {"ActivityThreshold": scale.threshold, "LogLevel": "ERROR", "LookbackSeconds": 0}
    with SyncSandbox(parameter_overrides=overrides, push=True) as sandbox:
        quiet_relay(sandbox)  # the push section's alone (demo_push)
        stack = sandbox.local
        console.line(f"AWS (moto) at {stack.endpoint_url}; Salesforce at {sandbox.salesforce.url}")
        synced = stack.resources.parameters["SyncedAccountFields"]  # type: ignore[union-attr]
        demo = Demo(sandbox, scale, random.Random(args.seed), console, seed=args.seed_store)
        demo.synced_fields = str(synced).split(",") if isinstance(synced, str) else list(synced)
        for title, section in SECTIONS:
            console.step(title)
            section(demo)
        summarize(demo, log_path)
        failed = [c for c in demo.checks if not c.ok]
        console.say(f"\n{'All checks passed.' if not failed else f'{len(failed)} check(s) failed.'}")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
