"""CPU per contact write on the local stack, per process: what bounds `make demo`'s cycle 2 and Target 7's freshness.

    PYTHONPATH=local:layers/account_sync .venv/bin/python -m local_stack.bench.write_cpu [--contacts 1000] [--changes 6]

The push bench's loop (`push_freshness`): an account of `--contacts` contacts synced by a poll, then `--changes`
changes of its Name by push, each drained (the push function, the fan-out's conditional contact writes, the activity
log). Each change is measured in CPU seconds, not wall time (two other sessions share this machine's cores): the moto
server's process (`/proc/<pid>/stat`) and this one (the functions, the emulator and the pollers), each divided by the
contacts written. The median change is reported. `LOCAL_STACK_MOTO_PROFILE=<file>` profiles the moto side meanwhile
(`moto_profile`); py-spy on this process profiles the functions' side.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
from contextlib import redirect_stdout

from local_stack.bench.harness import process_cpu_seconds
from local_stack.bench.push_freshness import _push_one_change, _push_sandbox, _synced_account


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=6)
    parser.add_argument("--functions-log", default=os.devnull, help="where the functions' output goes")
    args = parser.parse_args(argv)
    with open(args.functions_log, "w") as log, _push_sandbox() as sandbox:
        pid = sandbox.local.server.pid
        if pid is None:
            raise RuntimeError("the moto server does not run in a process of its own")
        with redirect_stdout(log):
            account = _synced_account(sandbox, args.contacts)
        moto, functions, lags = [], [], []
        for n in range(args.changes):
            moto_before, own_before = process_cpu_seconds(pid), own_cpu_seconds()
            with redirect_stdout(log):
                lags.append(_push_one_change(sandbox, account, n))
            moto.append((process_cpu_seconds(pid) - moto_before) / args.contacts * 1000)
            functions.append((own_cpu_seconds() - own_before) / args.contacts * 1000)
            print(f"change {n + 1}: moto {moto[-1]:.2f} ms, functions {functions[-1]:.2f} ms a write; {lags[-1]:.2f} s")
    print(
        f"median over {args.changes} changes of {args.contacts:,} contacts: moto {statistics.median(moto):.2f} ms, "
        f"functions {statistics.median(functions):.2f} ms of CPU a contact write; "
        f"freshness {statistics.median(lags):.2f} s (load {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
