"""The objects the emulator knows (Account, Contact, Opportunity) and their describe shapes.

``OBJECTS`` is the standard org. Each emulator serves its own ``Schema``: the standard org, or that org as a test
set it up differently (a custom field an admin has not created yet, or created without "External ID").
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any

STRING_TYPES = frozenset({"string", "picklist", "email", "phone", "url", "textarea"})
SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "double": "xsd:double",
    "currency": "xsd:double",
    "int": "xsd:int",
    "boolean": "xsd:boolean",
    "datetime": "xsd:dateTime",
    "date": "xsd:date",
}
SYSTEM_FIELDS = ("CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted")
DEFAULT_OWNER_PREFIX = "005"


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    type: str
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    unique: bool = False
    defaulted_on_create: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist: tuple[str, ...] = ()
    precision: int = 0
    scale: int = 0
    digits: int = 0
    name_field: bool = False

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    @property
    def required_on_create(self) -> bool:
        return self.createable and not self.nillable and not self.defaulted_on_create

    @property
    def is_text(self) -> bool:
        return self.type in STRING_TYPES

    @property
    def filterable(self) -> bool:
        return self.type != "textarea"

    @property
    def soap_type(self) -> str:
        return SOAP_TYPES.get(self.type, "xsd:string")

    def describe(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "soapType": self.soap_type,
            "length": self.length,
            "byteLength": self.length * 3,
            "precision": self.precision,
            "scale": self.scale,
            "digits": self.digits,
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "externalId": self.external_id,
            "unique": self.unique,
            "idLookup": self.name == "Id" or self.external_id,
            "custom": self.custom,
            "calculated": False,
            "caseSensitive": False,
            "defaultedOnCreate": self.defaulted_on_create,
            "nameField": self.name_field,
            "filterable": self.filterable,
            "sortable": self.filterable,
            "groupable": self.filterable and self.type not in ("double", "currency", "datetime"),
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": value, "validFor": None, "value": value}
                for value in self.picklist
            ],
        }


@dataclass(frozen=True)
class SObject:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: tuple[Field, ...]
    by_lower_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_lower_name", {f.name.lower(): f for f in self.fields})

    def field(self, name: str) -> Field | None:
        return self.by_lower_name.get(name.lower())

    def urls(self, version: str) -> dict:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "sobject": base,
            "describe": f"{base}/describe",
            "rowTemplate": f"{base}/{{ID}}",
        }

    def summary(self, version: str) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": False,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "undeletable": True,
            "queryable": True,
            "retrieveable": True,
            "searchable": True,
            "replicateable": True,
            "layoutable": True,
            "urls": self.urls(version),
        }

    def describe(self, version: str) -> dict:
        return {
            **self.summary(version),
            "fields": [f.describe() for f in self.fields],
            "childRelationships": [
                {"childSObject": child.name, "field": "AccountId", "relationshipName": plural}
                for child, plural in ((CONTACT, "Contacts"), (OPPORTUNITY, "Opportunities"))
                if self.name == ACCOUNT.name
            ],
            "recordTypeInfos": [],
        }


def _system_fields() -> tuple[Field, ...]:
    def read_only(name: str, label: str, kind: str) -> Field:
        return Field(name, label, kind, createable=False, updateable=False, nillable=False, defaulted_on_create=True)

    return (
        read_only("CreatedDate", "Created Date", "datetime"),
        read_only("LastModifiedDate", "Last Modified Date", "datetime"),
        read_only("SystemModstamp", "System Modstamp", "datetime"),
        read_only("IsDeleted", "Deleted", "boolean"),
    )


def _id_field() -> Field:
    return Field(
        "Id", "Record ID", "id", 18, nillable=False, createable=False, updateable=False, defaulted_on_create=True
    )


def _sync_key() -> Field:
    return Field("Account_Sync_Key__c", "Account Sync Key", "string", 255, external_id=True, unique=True)


def _account_lookup(label: str) -> Field:
    return Field("AccountId", label, "reference", 18, reference_to=("Account",), relationship_name="Account")


INDUSTRIES = (
    "Agriculture", "Apparel", "Banking", "Biotechnology", "Chemicals", "Communications", "Construction",
    "Consulting", "Education", "Electronics", "Energy", "Engineering", "Entertainment", "Environmental",
    "Finance", "Food & Beverage", "Government", "Healthcare", "Hospitality", "Insurance", "Machinery",
    "Manufacturing", "Media", "Not For Profit", "Other", "Recreation", "Retail", "Shipping", "Technology",
    "Telecommunications", "Transportation", "Utilities",
)  # fmt: skip
STAGES = (
    "Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
    "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost",
)  # fmt: skip

ACCOUNT = SObject(
    "Account",
    "Account",
    "Accounts",
    "001",
    (
        _id_field(),
        Field("Name", "Account Name", "string", 255, nillable=False, name_field=True),
        Field(
            "Type",
            "Account Type",
            "picklist",
            255,
            picklist=("Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other"),
        ),
        Field("Industry", "Industry", "picklist", 255, picklist=INDUSTRIES),
        Field("BillingCity", "Billing City", "string", 40),
        Field("BillingCountry", "Billing Country", "string", 80),
        Field("AnnualRevenue", "Annual Revenue", "currency", precision=18, scale=0),
        Field("NumberOfEmployees", "Employees", "int", digits=8),
        Field("Rating", "Account Rating", "picklist", 255, picklist=("Hot", "Warm", "Cold")),
        Field(
            "OwnerId",
            "Owner ID",
            "reference",
            18,
            nillable=False,
            defaulted_on_create=True,
            reference_to=("User",),
            relationship_name="Owner",
        ),
        Field("Website", "Website", "url", 255),
        Field("Phone", "Account Phone", "phone", 40),
        Field("Description", "Account Description", "textarea", 32000),
        _sync_key(),
        *_system_fields(),
    ),
)

CONTACT = SObject(
    "Contact",
    "Contact",
    "Contacts",
    "003",
    (
        _id_field(),
        _account_lookup("Account ID"),
        Field("FirstName", "First Name", "string", 40),
        Field("LastName", "Last Name", "string", 80, nillable=False),
        Field(
            "Name",
            "Full Name",
            "string",
            121,
            createable=False,
            updateable=False,
            nillable=False,
            defaulted_on_create=True,
            name_field=True,
        ),
        Field("Email", "Email", "email", 80),
        Field("Phone", "Business Phone", "phone", 40),
        Field("Title", "Title", "string", 128),
        _sync_key(),
        *_system_fields(),
    ),
)

OPPORTUNITY = SObject(
    "Opportunity",
    "Opportunity",
    "Opportunities",
    "006",
    (
        _id_field(),
        Field("Name", "Name", "string", 120, nillable=False, name_field=True),
        _account_lookup("Account ID"),
        Field("StageName", "Stage", "picklist", 255, nillable=False, picklist=STAGES),
        Field("CloseDate", "Close Date", "date", nillable=False),
        Field("Amount", "Amount", "currency", precision=18, scale=2),
        _sync_key(),
        *_system_fields(),
    ),
)

OBJECTS: dict[str, SObject] = {obj.name: obj for obj in (ACCOUNT, CONTACT, OPPORTUNITY)}
_BY_LOWER = {name.lower(): obj for name, obj in OBJECTS.items()}
CHILDREN_OF = {"Account": (CONTACT, OPPORTUNITY)}


def find_object(name: str) -> SObject | None:
    return _BY_LOWER.get(name.lower())


class Schema:
    """The objects one emulator serves: the standard ``OBJECTS``, with the custom fields a test removed or changed.

    What the REST API sees follows it (describe, SOQL, record bodies, upsert by external id); the records keep
    their values, so a field put back shows them again, as a field restored from Salesforce's recycle bin does.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, SObject] = dict(OBJECTS)

    def find(self, name: str) -> SObject | None:
        standard = find_object(name)
        if standard is None:
            return None
        with self._lock:
            return self._objects[standard.name]

    def objects(self) -> list[SObject]:
        with self._lock:
            return list(self._objects.values())

    def remove_field(self, sobject: str, name: str) -> None:
        """The org has no such field (deleted, or never created): it is gone from describe, SOQL and upserts."""
        obj, found = self._custom_field(sobject, name)
        self._put(dataclasses.replace(obj, fields=tuple(f for f in obj.fields if f is not found)))

    def change_field(self, sobject: str, name: str, **changes: Any) -> None:
        """The field as an admin set it up otherwise, e.g. ``external_id=False`` or ``unique=False``."""
        obj, found = self._custom_field(sobject, name)
        changed = dataclasses.replace(found, **changes)
        self._put(dataclasses.replace(obj, fields=tuple(changed if f is found else f for f in obj.fields)))

    def reset(self) -> None:
        """Back to the standard objects."""
        with self._lock:
            self._objects = dict(OBJECTS)

    def _custom_field(self, sobject: str, name: str) -> tuple[SObject, Field]:
        obj = self.find(sobject)
        if obj is None:
            raise ValueError(f"unknown object {sobject!r} (the emulator knows {', '.join(OBJECTS)})")
        found = obj.field(name)
        if found is None or not found.custom:
            raise ValueError(f"{obj.name} has no custom field {name!r} to change (only custom fields can be)")
        return obj, found

    def _put(self, obj: SObject) -> None:
        with self._lock:
            self._objects[obj.name] = obj
