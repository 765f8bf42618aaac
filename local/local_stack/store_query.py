"""`python -m local_stack store ...`: look at the store of the running local stack, as JSON.

    python -m local_stack store contact <contact id> [--limit 20]   the item, its account fields, its activities
    python -m local_stack store account <account id>                the item, its suppression records, live contacts
    python -m local_stack store contacts --account <id> [--page-size 50] [--after <contact id>]
    python -m local_stack store state                               watermarks, the fetch's lease, the last run

It reads `.local-stack/stack.json` (written by `up`), points boto3 and pynamodb at that stack's moto server with
fake credentials, binds the pynamodb models to its tables and reads them; it never writes. Items are printed as
DynamoDB holds them (the attribute names of docs/data-model.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from typing import Any

from local_stack.running import NoRunningStack, RunningStack, add_state_dir_option

CHANGE_DATA_VALUE = "Change Data Value"
SUPPRESSED = "Change Data Value Suppressed"


class NotFound(LookupError):
    pass


def add_command(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    add_state_dir_option(common)
    parser = subparsers.add_parser(
        "store",
        help="print what the store of the running local stack holds (JSON)",
        description="Read the store of the stack started by `python -m local_stack up`.",
    )
    queries = parser.add_subparsers(dest="query", required=True)

    contact = queries.add_parser("contact", parents=[common], help="a contact, its account fields and activities")
    contact.add_argument("contact_id")
    contact.add_argument("--limit", type=_positive, default=20, help="most activities shown, newest first (20)")
    contact.set_defaults(run=run, query_function=contact_view)

    account = queries.add_parser("account", parents=[common], help="an account, its suppressions, live contacts")
    account.add_argument("account_id")
    account.set_defaults(run=run, query_function=account_view)

    contacts = queries.add_parser("contacts", parents=[common], help="the contacts of an account, a page at a time")
    contacts.add_argument("--account", required=True, dest="account_id")
    contacts.add_argument("--page-size", type=_positive, default=50, help="contacts per page (50)")
    contacts.add_argument("--after", default=None, help="the `next` of the previous page")
    contacts.set_defaults(run=run, query_function=contacts_page)

    state = queries.add_parser("state", parents=[common], help="the sync state: watermarks, lease, last run")
    state.set_defaults(run=run, query_function=sync_state)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"a positive number, not {text}")
    return value


def run(args: argparse.Namespace) -> int:
    try:
        stack = RunningStack.connect(args.state_dir)
    except NoRunningStack as exc:
        raise SystemExit(f"error: {exc}") from None
    with stack.attached():
        try:
            view = args.query_function(args)
        except NotFound as exc:
            raise SystemExit(f"error: {exc.args[0]}") from None
    json.dump(view, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


def _plain(item: Any) -> dict[str, Any]:
    """An item as plain JSON (sets as lists)."""
    return item.to_simple_dict(force=True)


def contact_view(args: argparse.Namespace) -> dict[str, Any]:
    from account_sync.adapters.dynamodb_models import ActivityItem, ContactItem

    contact = _get(ContactItem, args.contact_id, "contact")
    newest_first = ActivityItem.query(
        args.contact_id, filter_condition=ActivityItem.activity_type == CHANGE_DATA_VALUE, scan_index_forward=False
    )
    shown = list(itertools.islice(newest_first, args.limit + 1))
    return {
        "contact": _plain(contact),
        "activities": [_plain(activity) for activity in shown[: args.limit]],
        "more_activities": len(shown) > args.limit,
    }


def account_view(args: argparse.Namespace) -> dict[str, Any]:
    from account_sync.adapters.dynamodb_models import AccountItem, ActivityItem, ContactItem

    account = _get(AccountItem, args.account_id, "account")
    suppressions = ActivityItem.query(
        args.account_id, filter_condition=ActivityItem.activity_type == SUPPRESSED, scan_index_forward=False
    )
    return {
        "account": _plain(account),
        "live_contacts": ContactItem.by_account.count(args.account_id),
        "suppressions": [_plain(record) for record in suppressions],
    }


def contacts_page(args: argparse.Namespace) -> dict[str, Any]:
    """One page of the account's live contacts (the `by_account` index), with their names (from the table: the
    index does not project them). `next` is the `--after` of the following page, null on the last one."""
    from account_sync.adapters.dynamodb_models import ContactItem

    start = None
    if args.after:
        start = {"account_id": {"S": args.account_id}, "contact_id": {"S": args.after}}
    members = ContactItem.by_account.query(args.account_id, last_evaluated_key=start, limit=args.page_size + 1)
    ids = [member.contact_id for member in members]
    page, more = ids[: args.page_size], len(ids) > args.page_size
    names = {contact.contact_id: contact for contact in ContactItem.batch_get(page)}
    return {
        "account_id": args.account_id,
        "contacts": [
            {
                "contact_id": contact_id,
                "first_name": names[contact_id].first_name if contact_id in names else None,
                "last_name": names[contact_id].last_name if contact_id in names else None,
            }
            for contact_id in page
        ],
        "next": page[-1] if more else None,
    }


def sync_state(args: argparse.Namespace) -> dict[str, Any]:
    from account_sync.adapters.dynamodb_models import SyncStateItem

    return {item.state_id: _plain(item) for item in sorted(SyncStateItem.scan(), key=lambda item: item.state_id)}


def _get(model: Any, key: str, what: str) -> Any:
    try:
        return model.get(key)
    except model.DoesNotExist:
        raise NotFound(f"no {what} {key} in {model.Meta.table_name}") from None
