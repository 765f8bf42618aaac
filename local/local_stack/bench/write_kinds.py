"""CPU per contact write by kind, in the moto server's process and in this one: what Target 4 (a)'s two sides pay
for a write, without the machine's load in the way (docs/decisions.md, Target 4, amended 2026-12-05).

    PYTHONPATH=local:layers/account_sync .venv/bin/python -m local_stack.bench.write_kinds [--contacts N] [--rounds R]

The benchmark's sandbox with one account of `--contacts` contacts, synced; then, `--rounds` times, each kind writes a
new version of the account onto every contact, one write after the other on one thread (moto serves one at a time
anyway), the contacts read first and not counted:
* `fan-out`: the store's adapter, as the fan-out writes (`write_change` with the contact as read);
* `bare loop`: Target 4's bare loop's UpdateItem with boto3 (`fan_out_costs.bare_contact_write`), the same item.
Each is measured in CPU seconds of both processes (`/proc/<pid>/stat`), divided by the writes, and the median over
the rounds is reported; the kinds alternate within a round, so that load drifts touch both.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from local_stack.bench.fan_out_costs import FanOutBench, Settings, SizeResults, _attribute, _later, bare_contact_write
from local_stack.bench.harness import process_cpu_seconds
from local_stack.bench.report import Results


class WriteKinds(FanOutBench):
    """The Target 4 benchmark's set-up, measuring the kinds of contact write instead of whole changes."""

    def __init__(self, settings: Settings, rounds: int) -> None:
        super().__init__(settings, open(os.devnull, "w"), lambda line: None)  # noqa: SIM115 (lives with the run)
        self.rounds = rounds
        self.per_write: dict[str, list[tuple[float, float]]] = {}  # kind -> (moto ms, here ms) per round

    def _measure_size(self, size: int) -> SizeResults:
        import boto3
        from account_sync.adapters.dynamodb import DynamoContactRepository
        from account_sync.adapters.dynamodb_models import bind_table_names
        from account_sync.domain.changes import AccountChange
        from account_sync.domain.fields import diff_fields
        from account_sync.domain.records import AccountVersion, SyncPath

        resources = self.sandbox.local.resources
        assert resources is not None
        bind_table_names(
            contacts=self.contacts_table,
            accounts=self.accounts_table,
            activities=resources.table_name("ActivitiesTable"),
            sync_state=resources.table_name("SyncStateTable"),
        )
        account_id, synced = self.accounts[size], self._synced_fields()
        stored = self._stored_account(account_id)
        stamp = stored["system_modstamp"]
        contacts, client = DynamoContactRepository(), boto3.client("dynamodb")
        for _ in range(self.rounds):
            for kind in ("fan-out", "bare loop"):
                stamp = _later(stamp)
                fields = {**stored["fields"], **self._next_values()}
                if kind == "fan-out":
                    version = AccountVersion(account_id, stamp, False, fields)
                    change = AccountChange.of_version(version, path=SyncPath.FETCH)
                    snapshots = list(contacts.members(account_id))

                    def fan_out_write(
                        contact: Any, change: AccountChange = change, fields: dict[str, Any] = fields
                    ) -> None:
                        changes = diff_fields(contact.account_fields, fields, synced)
                        if not contacts.write_change(contact.contact_id, change, changes, {}, as_read=contact):
                            raise RuntimeError(f"the fan-out's write of {contact.contact_id} did not land")

                    self._time(kind, fan_out_write, snapshots)
                else:
                    wire = {"M": {name: _attribute(value) for name, value in fields.items()}}
                    items = self._read_contacts(client, [c.contact_id for c in contacts.members(account_id)])

                    def bare_write(item: dict[str, Any], wire: dict[str, Any] = wire, stamp: str = stamp) -> None:
                        contact_id = item["contact_id"]["S"]
                        client.update_item(
                            **bare_contact_write(self.contacts_table, account_id, contact_id, item, wire, stamp)
                        )

                    self._time(kind, bare_write, list(items.values()))
        raise _Done

    def _time(self, kind: str, write: Callable[[Any], None], items: list[Any]) -> None:
        pid = self.sandbox.local.server.pid
        assert pid is not None, "the moto server runs in a process of its own in the benchmark's sandbox"
        moto, here = process_cpu_seconds(pid), time.process_time()
        for item in items:
            write(item)
        self.per_write.setdefault(kind, []).append(
            ((process_cpu_seconds(pid) - moto) / len(items) * 1000, (time.process_time() - here) / len(items) * 1000)
        )


class _Done(Exception):
    """The kinds are measured: the sandbox closes without the benchmark's report."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    bench = WriteKinds(Settings(sizes=[args.contacts], overhead_sizes=[], latency_size=-1), args.rounds)
    with contextlib.suppress(_Done):
        bench.run(Results())
    for kind, rounds in bench.per_write.items():
        moto, here = (statistics.median(values) for values in zip(*rounds, strict=True))
        each = ", ".join(f"{m:.2f}/{h:.2f}" for m, h in rounds)
        print(f"{kind}: moto {moto:.2f} ms, here {here:.2f} ms of CPU a write (median; rounds, moto/here: {each})")
    print(f"{args.contacts:,} contacts, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
