"""Convert Person (SPEC R5): what one conversion creates in Salesforce, and the key that makes it happen once.

The only Salesforce write of the system. It is made safe to retry by Salesforce itself: the Account, the Contact
and the Opportunity are each *upserted* by the external id `Account_Sync_Key__c`, whose value is derived from the
person id alone. A retry (after a timeout, a lost answer, a crash before the store was linked) upserts the same
three records again: it can never create a second account for one person.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from account_sync.domain.fields import FieldValue

EXTERNAL_ID_FIELD = "Account_Sync_Key__c"
_KEY_PREFIX = "person-"


def conversion_key(person_id: str) -> str:
    """The external id of the three records of a person's conversion: the same for every attempt.

    A hash, not the id itself: it is part of a URL path (`/sobjects/Account/Account_Sync_Key__c/<key>`), where a
    `.` or `/` of a store id would change the meaning of the request.
    """
    if not person_id:
        raise ValueError("a conversion needs a person id")
    return _KEY_PREFIX + hashlib.sha256(person_id.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class ConversionOrder:
    """The three records to upsert, each by `key`. Contact and Opportunity get `AccountId` from the account."""

    key: str
    account: Mapping[str, FieldValue]
    contact: Mapping[str, FieldValue]
    opportunity: Mapping[str, FieldValue]


@dataclass(frozen=True)
class ConvertedRecords:
    """The Salesforce records of a conversion. `created` is False when they already existed (a retry)."""

    account_id: str
    contact_id: str
    opportunity_id: str
    created: bool = True


@dataclass(frozen=True)
class PersonConversion:
    """How a person of the store is linked to the records its conversion created."""

    person_id: str
    conversion_key: str
    account_id: str
    contact_id: str
    opportunity_id: str
    converted_at: str
    converted_by: str | None = None
