"""Convert Person (SPEC R5): a person of the store who is not a Salesforce contact becomes one, with a new Account
and a new Opportunity. The one exception to "nothing is written to Salesforce" (R1) - a narrow, dangerous tool:
only an explicit request runs it, nothing converts people implicitly.

1. The store says whether the person may be converted: it exists, it is not a Salesforce contact, and it is not
   linked to an earlier conversion (then the answer names that conversion's records).
2. One Salesforce call creates the three records, all or none, each upserted by the conversion key derived from
   the person id (`domain.conversion`): a retry - after a timeout, a lost answer, a failed link - finds and
   returns the same records instead of creating others.
3. One conditional write links the person to them. If it fails, Salesforce holds the records and the person is
   not linked: nothing is half-linked, and the same request again links it (step 2 creates nothing new).

The Contact also reaches the store through the fetch, as an item of its own under its Salesforce Id; the person
item is never made a member of the account (docs/data-model.md: Convert Person), so the two never compete.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from account_sync.domain.conversion import ConversionOrder, PersonConversion, conversion_key
from account_sync.domain.fields import FieldValue
from account_sync.ports import ContactLookup, PersonConverter, PersonLinks, StoredContact
from account_sync.services.refusals import Conflict, InvalidRequest, NotFound


@dataclass(frozen=True)
class ConversionRequest:
    """What the caller decides: the new account's and opportunity's fields; the contact's fields default to the
    person's (`contact` overrides them)."""

    account: Mapping[str, FieldValue]
    opportunity: Mapping[str, FieldValue]
    contact: Mapping[str, FieldValue] = field(default_factory=dict)


@dataclass(frozen=True)
class ConversionResult:
    conversion: PersonConversion
    created: bool  # False: Salesforce already held the records (a retry of an earlier attempt)


class PersonStore(ContactLookup, PersonLinks, Protocol):
    """The contacts table, as Convert Person reads and links it."""


class PersonConversions:
    def __init__(self, people: PersonStore, converter: PersonConverter, now: Callable[[], str]) -> None:
        self._people = people
        self._converter = converter
        self._now = now

    def convert(self, person_id: str, request: ConversionRequest, requested_by: str | None = None) -> ConversionResult:
        person = self._people.get_contact(person_id)
        if person is None:
            raise NotFound("PERSON_NOT_FOUND", f"no person {person_id} in the store")
        _refuse_if_a_contact(person)
        contact = {**_person_values(person), **request.contact}
        if not contact.get("LastName"):
            raise InvalidRequest(
                "CONTACT_LAST_NAME_REQUIRED",
                f"person {person_id} has no last name, which a Salesforce Contact needs: give contact.LastName",
            )
        order = ConversionOrder(
            key=conversion_key(person_id),
            account=dict(request.account),
            contact={name: value for name, value in contact.items() if value is not None},
            opportunity=dict(request.opportunity),
        )
        records = self._converter.convert(order)
        conversion = PersonConversion(
            person_id=person_id,
            conversion_key=order.key,
            account_id=records.account_id,
            contact_id=records.contact_id,
            opportunity_id=records.opportunity_id,
            converted_at=self._now(),
            converted_by=requested_by,
        )
        if self._people.link_conversion(conversion):
            return ConversionResult(conversion, records.created)
        # Someone else got there first: the same request sent twice at once, or the person changed meanwhile.
        current = self._people.get_contact(person_id)
        if current is None:
            raise NotFound("PERSON_NOT_FOUND", f"person {person_id} left the store during its conversion")
        if current.conversion is not None and current.conversion.contact_id == records.contact_id:
            return ConversionResult(current.conversion, created=False)
        _refuse_if_a_contact(current)
        raise Conflict("CONVERSION_CONFLICT", f"person {person_id} changed during its conversion: send it again")


def _refuse_if_a_contact(person: StoredContact) -> None:
    if person.conversion is not None:
        done = person.conversion
        raise Conflict(
            "ALREADY_A_CONTACT",
            f"person {person.contact_id} was converted at {done.converted_at}: it is Salesforce contact "
            f"{done.contact_id}",
            details={
                "contact_id": done.contact_id,
                "account_id": done.account_id,
                "opportunity_id": done.opportunity_id,
                "converted_at": done.converted_at,
            },
        )
    if person.is_salesforce_contact:
        raise Conflict("ALREADY_A_CONTACT", f"{person.contact_id} is already a Salesforce contact")


def _person_values(person: StoredContact) -> dict[str, FieldValue]:
    return {"FirstName": person.first_name, "LastName": person.last_name, "Email": person.email}
