"""`account-sync store ...`: what the store holds, as JSON, read-only.

    account-sync store contact <contact id> [--limit 20]   the item, its account fields, its activities
    account-sync store account <account id>                the item, its suppression records, live contacts
    account-sync store contacts --account <id> [--page-size 50] [--after <contact id>]
    account-sync store state                               watermarks, the fetch's lease, the last run

The pynamodb models of the layer are bound to the deployment's tables and read; nothing is written. Items are
printed as DynamoDB holds them (the attribute names of docs/data-model.md).
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable
from typing import Any

from account_sync_cli.deployment import Deployment

CHANGE_DATA_VALUE = "Change Data Value"
SUPPRESSED = "Change Data Value Suppressed"


class NotFound(LookupError):
    pass


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


def _get(model: Any, key: str, what: str) -> Any:
    try:
        return model.get(key)
    except model.DoesNotExist:
        raise NotFound(f"no {what} {key} in {model.Meta.table_name}") from None


QUERIES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "contact": contact_view,
    "account": account_view,
    "contacts": contacts_page,
}


def query(deployment: Deployment, args: argparse.Namespace) -> dict[str, Any]:
    """Run the store query `args.query` against the deployment's tables."""
    from account_sync.adapters.dynamodb_models import bind_table_names

    with deployment.environment():
        bind_table_names(
            contacts=deployment.ref("ContactsTable"),
            accounts=deployment.ref("AccountsTable"),
            activities=deployment.ref("ActivitiesTable"),
            sync_state=deployment.ref("SyncStateTable"),
        )
        return QUERIES[args.query](args)


def add_queries(parser: argparse.ArgumentParser, positive: Callable[[str], int]) -> None:
    queries = parser.add_subparsers(dest="query", required=True)
    contact = queries.add_parser("contact", help="a contact, its account fields and activities")
    contact.add_argument("contact_id")
    contact.add_argument("--limit", type=positive, default=20, help="most activities shown, newest first (20)")
    account = queries.add_parser("account", help="an account, its suppressions, live contacts")
    account.add_argument("account_id")
    contacts = queries.add_parser("contacts", help="the contacts of an account, a page at a time")
    contacts.add_argument("--account", required=True, dest="account_id")
    contacts.add_argument("--page-size", type=positive, default=50, help="contacts per page (50)")
    contacts.add_argument("--after", default=None, help="the `next` of the previous page")
    queries.add_parser("state", help="the sync state: watermarks, lease, last run")
