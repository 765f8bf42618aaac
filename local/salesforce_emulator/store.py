"""Records in memory, with Salesforce's validation, system fields, deletes and transactions.

A record is a plain dict (field name -> Python value, plus private ``_``-prefixed keys). Records are
never changed in place: every write stores a new dict. A query can therefore snapshot a table by
keeping references to the dicts it matched (a cursor), and a transaction can roll back by putting
the old dicts back.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime

from .clock import Clock
from .errors import SalesforceApiError, not_found
from .schema import CHILDREN_OF, DEFAULT_OWNER_PREFIX, OBJECTS, STRING_TYPES, Field, SObject
from .values import format_datetime, make_id, normalize_id, parse_date, parse_datetime

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+$")
_KEY_PREFIXES = {"Account": "001", "Contact": "003", "Opportunity": "006", "User": "005"}

Record = dict


def api_value(field: Field, value: object) -> object:
    """A stored value as the REST API shows it in JSON."""
    if value is None:
        return None
    if field.type == "datetime":
        assert isinstance(value, datetime)
        return format_datetime(value)
    if field.type == "date":
        assert isinstance(value, date)
        return value.isoformat()
    return value


def api_record(sobject: SObject, record: Record, fields: Iterable[Field] | None = None) -> dict:
    """A record's fields as JSON values (no ``attributes``)."""
    return {f.name: api_value(f, record.get(f.name)) for f in (fields or sobject.fields)}


BULK_CHUNK = 200


class Store:
    def __init__(self, clock: Clock, owner_id: str, first_id_number: int = 0):
        self.lock = threading.RLock()
        self.clock = clock
        self.owner_id = owner_id
        self._next_number = first_id_number
        self._tables: dict[str, dict[str, Record]] = {name: {} for name in OBJECTS}
        self._unique: dict[tuple[str, str], dict[str, str]] = {
            (obj.name, f.name): {} for obj in OBJECTS.values() for f in obj.fields if f.unique
        }
        self._journal: list[tuple[str, str, Record | None]] | None = None
        # Committed changes go to every listener (Change Data Capture, change_events.py): (object, old, new), once
        # the outermost transaction commits, never for writes it rolled back.
        self.listeners: list[Callable[[str, Record | None, Record], None]] = []
        self._uncommitted: list[tuple[int, str, Record | None, Record]] = []  # (journal position, object, old, new)

    # ----- reading -------------------------------------------------------------------------------
    def get(self, sobject: SObject, record_id: str) -> Record | None:
        """The record (deleted or not), by 15- or 18-character Id."""
        normalized = normalize_id(record_id)
        if normalized is None:
            return None
        return self._tables[sobject.name].get(normalized)

    def rows(self, sobject: SObject) -> list[Record]:
        """A consistent snapshot of the table, in Id (creation) order."""
        with self.lock:
            return list(self._tables[sobject.name].values())

    def find_by_external_id(self, sobject: SObject, field: Field, value: str) -> Record | None:
        with self.lock:
            if field.unique:
                record_id = self._unique[(sobject.name, field.name)].get(value.casefold())
                return self._tables[sobject.name][record_id] if record_id else None
            for record in self._tables[sobject.name].values():
                if not record["IsDeleted"] and record.get(field.name) == value:
                    return record
            return None

    # ----- transactions --------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside either all stay or all roll back (nesting rolls back to a savepoint)."""
        with self.lock:
            outermost = self._journal is None
            if outermost:
                self._journal = []
            assert self._journal is not None
            savepoint = len(self._journal)
            try:
                yield
            except BaseException:
                self._rollback_to(savepoint)
                raise
            finally:
                if outermost:
                    self._journal = None
                    committed, self._uncommitted = self._uncommitted, []
                    for _, name, old, new in committed:  # empty when rolled back
                        self._publish(name, old, new)

    def _rollback_to(self, savepoint: int) -> None:
        assert self._journal is not None
        self._uncommitted = [change for change in self._uncommitted if change[0] < savepoint]
        while len(self._journal) > savepoint:
            name, record_id, old = self._journal.pop()
            table = self._tables[name]
            self._reindex(OBJECTS[name], table.get(record_id), old)
            if old is None:
                table.pop(record_id, None)
            else:
                table[record_id] = old

    # ----- writing -------------------------------------------------------------------------------
    def create(self, sobject: SObject, values: dict, *, stamp: datetime | None = None) -> Record:
        with self.lock:
            record: Record = {f.name: None for f in sobject.fields}
            record.update(self._validated(sobject, values, creating=True, current_id=None))
            missing = [f.name for f in sobject.fields if f.required_on_create and record.get(f.name) is None]
            if missing:
                raise SalesforceApiError(
                    400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                    missing,
                )  # fmt: skip
            when = stamp or self.clock.stamp()
            self._next_number += 1
            record["Id"] = make_id(sobject.key_prefix, self._next_number)
            if sobject.field("OwnerId") and record.get("OwnerId") is None:
                record["OwnerId"] = self.owner_id
            record.update(CreatedDate=when, LastModifiedDate=when, SystemModstamp=when, IsDeleted=False)
            self._derive(sobject, record)
            self._put(sobject, record, None)
            return record

    def bulk_create(self, sobject: SObject, rows: Iterable[dict]) -> list[str]:
        """All or none. Like a bulk DML, records are stamped in chunks of 200 (Salesforce's trigger batch):
        the records of one chunk share a SystemModstamp, so 20,000 inserts do not push the clock 20 s ahead."""
        ids = []
        with self.transaction():
            stamp = None
            for index, values in enumerate(rows):
                if index % BULK_CHUNK == 0:
                    stamp = self.clock.stamp()
                ids.append(self.create(sobject, values, stamp=stamp)["Id"])
        return ids

    def update(self, sobject: SObject, record_id: str, values: dict, *, stamp: datetime | None = None) -> Record:
        with self.lock:
            old = self._live(sobject, record_id)
            changes = self._validated(sobject, values, creating=False, current_id=old["Id"])
            required = {f.name for f in sobject.fields if not f.nillable}
            blanked = [name for name, value in changes.items() if value is None and name in required]
            if blanked:
                raise SalesforceApiError(
                    400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(blanked)}]",
                    blanked,
                )  # fmt: skip
            when = stamp or self.clock.stamp()
            new = {**old, **changes, "LastModifiedDate": when, "SystemModstamp": when}
            self._derive(sobject, new)
            self._put(sobject, new, old)
            return new

    def touch(self, sobject: SObject, record_id: str, *, stamp: datetime | None = None) -> Record:
        """A SystemModstamp-only change (a roll-up recalculation, a system job)."""
        with self.lock:
            old = self._existing(sobject, record_id)
            new = {**old, "SystemModstamp": stamp or self.clock.stamp()}
            self._put(sobject, new, old)
            return new

    def delete(self, sobject: SObject, record_id: str) -> None:
        """Soft delete (the Recycle Bin); an Account takes its Contacts and Opportunities with it."""
        with self.transaction():
            old = self._live(sobject, record_id)
            when = self.clock.stamp()
            self._put(sobject, {**old, "IsDeleted": True, "SystemModstamp": when, "_deleted_at": when}, old)
            for child in CHILDREN_OF.get(sobject.name, ()):
                for row in list(self._tables[child.name].values()):
                    if row["AccountId"] == old["Id"] and not row["IsDeleted"]:
                        deleted = {
                            **row, "IsDeleted": True, "SystemModstamp": when, "_deleted_at": when,
                            "_cascade_of": old["Id"],
                        }  # fmt: skip
                        self._put(child, deleted, row)

    def undelete(self, sobject: SObject, record_id: str) -> None:
        """Restore from the Recycle Bin, with the children the delete cascaded to."""
        with self.transaction():
            old = self._existing(sobject, record_id)
            if not old["IsDeleted"]:
                raise SalesforceApiError(400, "UNDELETE_FAILED", "Entity is not in the recycle bin")
            when = self.clock.stamp()
            self._restore(sobject, old, when)
            for child in CHILDREN_OF.get(sobject.name, ()):
                for row in list(self._tables[child.name].values()):
                    if row.get("_cascade_of") == old["Id"] and row["IsDeleted"]:
                        self._restore(child, row, when)

    def _restore(self, sobject: SObject, old: Record, when: datetime) -> None:
        new = {**old, "IsDeleted": False, "SystemModstamp": when, "_deleted_at": None, "_cascade_of": None}
        for f in sobject.fields:
            if f.unique and new.get(f.name) is not None:
                self._check_unique(sobject, f, new[f.name], new["Id"])
        self._put(sobject, new, old)

    # ----- helpers -------------------------------------------------------------------------------
    def _existing(self, sobject: SObject, record_id: str) -> Record:
        record = self.get(sobject, record_id)
        if record is None:
            raise not_found()
        return record

    def _live(self, sobject: SObject, record_id: str) -> Record:
        record = self._existing(sobject, record_id)
        if record["IsDeleted"]:
            raise SalesforceApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
        return record

    def _put(self, sobject: SObject, new: Record, old: Record | None) -> None:
        if self._journal is not None:
            self._uncommitted.append((len(self._journal), sobject.name, old, new))
            self._journal.append((sobject.name, new["Id"], old))
        self._tables[sobject.name][new["Id"]] = new
        self._reindex(sobject, old, new)
        if self._journal is None:
            self._publish(sobject.name, old, new)

    def _publish(self, name: str, old: Record | None, new: Record) -> None:
        for listener in self.listeners:
            listener(name, old, new)

    def _reindex(self, sobject: SObject, old: Record | None, new: Record | None) -> None:
        # Indexed by the standard object's fields: the unique index stays true to the stored values while a test
        # hides or changes a field of the emulator's schema (emulator.remove_field), and after it puts it back.
        for f in OBJECTS[sobject.name].fields:
            if not f.unique:
                continue
            index = self._unique[(sobject.name, f.name)]
            if old is not None and not old["IsDeleted"] and old.get(f.name) is not None:
                key = old[f.name].casefold()
                if index.get(key) == old["Id"]:
                    del index[key]
            if new is not None and not new["IsDeleted"] and new.get(f.name) is not None:
                index[new[f.name].casefold()] = new["Id"]

    @staticmethod
    def _derive(sobject: SObject, record: Record) -> None:
        if sobject.name == "Contact":
            record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)

    def _validated(self, sobject: SObject, values: dict, *, creating: bool, current_id: str | None) -> dict:
        if not isinstance(values, dict):
            raise SalesforceApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        accepted: dict = {}
        read_only: list[str] = []
        for key, raw in values.items():
            if key == "attributes":
                continue
            field = sobject.field(key)
            if field is None:
                raise SalesforceApiError(
                    400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {sobject.name}"
                )
            if not (field.createable if creating else field.updateable):
                read_only.append(field.name)
                continue
            accepted[field.name] = self._coerce(sobject, field, raw)
        if read_only:
            raise SalesforceApiError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(read_only)}. Please check the security settings"
                " of this field and verify that it is read/write for your profile or permission set.",
                read_only,
            )
        for name, value in accepted.items():
            field = sobject.field(name)
            assert field is not None
            if field.unique and value is not None:
                self._check_unique(sobject, field, value, current_id)
        return accepted

    def _check_unique(self, sobject: SObject, field: Field, value: str, current_id: str | None) -> None:
        holder = self._unique[(sobject.name, field.name)].get(value.casefold())
        if holder is not None and holder != current_id:
            raise SalesforceApiError(
                400,
                "DUPLICATE_VALUE",
                f"duplicate value found: {field.name} duplicates value on record with id: {holder}",
                [field.name],
            )

    def _coerce(self, sobject: SObject, field: Field, raw: object) -> object:
        if raw is None or (raw == "" and field.type != "boolean"):
            return None
        kind = field.type
        if kind in STRING_TYPES:
            if isinstance(raw, bool) or not isinstance(raw, str | int | float):
                raise _json_error(field, raw)
            text = str(raw)
            if len(text) > field.length:
                raise SalesforceApiError(
                    400, "STRING_TOO_LONG",
                    f"{field.label}: data value too large: {text[:40]} (max length={field.length})",
                    [field.name],
                )  # fmt: skip
            if kind == "email" and not _EMAIL.match(text):
                raise SalesforceApiError(
                    400, "INVALID_EMAIL_ADDRESS", f"{field.label}: invalid email address: {text}", [field.name]
                )
            return text
        if kind in ("double", "currency", "int"):
            return _number(field, raw)
        if kind == "boolean":
            if not isinstance(raw, bool):
                raise _json_error(field, raw)
            return raw
        if kind in ("datetime", "date"):
            if not isinstance(raw, str):
                raise _json_error(field, raw)
            try:
                return parse_datetime(raw) if kind == "datetime" else parse_date(raw)
            except ValueError:
                raise _json_error(field, raw) from None
        if kind == "reference":
            return self._reference(field, raw)
        raise _json_error(field, raw)

    def _reference(self, field: Field, raw: object) -> str:
        target = field.reference_to[0]
        record_id = normalize_id(raw) if isinstance(raw, str) else None
        if record_id is None or not record_id.startswith(_KEY_PREFIXES[target]):
            raise SalesforceApiError(
                400, "MALFORMED_ID", f"{field.label}: id value of incorrect type: {raw}", [field.name]
            )
        if target == "User":
            return record_id
        referenced = self._tables[target].get(record_id)
        if referenced is None:
            raise SalesforceApiError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [field.name])
        if referenced["IsDeleted"]:
            raise SalesforceApiError(400, "ENTITY_IS_DELETED", "entity is deleted", [field.name])
        return record_id


def _number(field: Field, raw: object) -> float | int:
    value: float
    if isinstance(raw, bool):
        raise _json_error(field, raw)
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            raise _json_error(field, raw) from None
    else:
        raise _json_error(field, raw)
    if field.type == "int":
        if value != int(value):
            raise _json_error(field, raw)
        return int(value)
    return value


def _json_error(field: Field, raw: object) -> SalesforceApiError:
    kind = "VALUE_STRING" if isinstance(raw, str) else type(raw).__name__.upper()
    return SalesforceApiError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {field.soap_type.split(':')[1]} from {kind} value {raw} "
        f"or request may be missing a required field",
        [field.name],
    )


DEFAULT_OWNER_ID = make_id(DEFAULT_OWNER_PREFIX, 1)
