"""``SalesforceEmulator``: the object tests, the demo and the local stack hold."""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from .auth import Auth
from .bulk import BulkQueries
from .certificates import CertificateAuthority, generate_client_keypair, write_private
from .clock import Clock
from .cursors import Cursors
from .errors import SalesforceApiError
from .faults import ApiUsage, Faults
from .routes import Api
from .schema import Schema, SObject
from .server import TlsServer, serve_in_background, tls_context
from .store import DEFAULT_OWNER_ID, Store, api_record
from .values import BASE62, make_id

_LOCAL_NAMES = ("localhost", "127.0.0.1")


class SalesforceEmulator:
    """A local Salesforce org over HTTPS: JWT bearer login, SOQL query/queryAll, sObjects, composite, Bulk API 2.0
    query jobs; admin switches under ``/_emulator/`` (admin.py).

    Data methods (``create``, ``update`` ...) work in-process, before or after ``start()``, validate
    like the REST API (raising :class:`SalesforceApiError`) and do not count as API calls. Records
    come back as the REST API shows them (datetimes as ``2026-11-27T20:38:14.000+0000``).
    """

    def __init__(
        self,
        consumer_key: str | None = None,
        username: str = "sync@example.com",
        client_certificate_pem: str | None = None,
        page_size: int = 2000,
        api_limit: int = 100_000,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        state_dir: str | Path | None = None,
        replication_id_limit: int = 600_000,
        session_seconds: float = 7200,
        max_open_cursors: int = 1000,
    ):
        self.consumer_key = consumer_key or "3MVG9" + "".join(secrets.choice(BASE62) for _ in range(80))
        self.username = username
        self.client_private_key_pem: str | None = None
        if client_certificate_pem is None:
            self.client_private_key_pem, client_certificate_pem = generate_client_keypair()
        self.client_certificate_pem = client_certificate_pem
        self.host = host
        self._port = port
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self.org_id = make_id("00D", 1)[:15]
        self.user_id = DEFAULT_OWNER_ID

        self.clock = Clock()
        self.schema = Schema()
        # Ids start from the wall clock, so runs never reuse an Id a previous run gave out.
        self._store = Store(self.clock, self.user_id, first_id_number=time.time_ns() // 1_000_000 * 100)
        self._usage = ApiUsage(api_limit)
        self._cursors = Cursors(self.clock, max_open=max_open_cursors)
        self._auth = Auth(
            consumer_key=self.consumer_key,
            username=username,
            certificate_pem=client_certificate_pem,
            org_id=self.org_id,
            user_id=self.user_id,
            session_seconds=session_seconds,
        )
        self.faults = Faults(self._usage, self._auth, self._cursors)
        self._api = Api(
            store=self._store,
            auth=self._auth,
            usage=self._usage,
            cursors=self._cursors,
            faults=self.faults,
            clock=self.clock,
            page_size=page_size,
            replication_id_limit=replication_id_limit,
            schema=self.schema,
        )
        self._server: TlsServer | None = None
        self._tempdir: Path | None = None
        self._files: Path | None = None

    # ----- lifecycle -----------------------------------------------------------------------------
    def start(self) -> SalesforceEmulator:
        if self._server is not None:
            return self
        files = self._state_dir or Path(tempfile.mkdtemp(prefix="sf-emulator-"))
        if self._state_dir is None:
            self._tempdir = files
        files.mkdir(parents=True, exist_ok=True)
        authority = CertificateAuthority.load_or_generate(files)
        hosts = [*_LOCAL_NAMES] + ([self.host] if self.host not in ("0.0.0.0", "::", *_LOCAL_NAMES) else [])
        server_key, server_cert = authority.issue_server_certificate(hosts)
        write_private(files / "server-key.pem", server_key)
        (files / "server.pem").write_text(server_cert)
        context = tls_context(str(files / "server.pem"), str(files / "server-key.pem"))
        self._server = TlsServer((self.host, self._port), self._api, context)
        self._files = files
        self._api.instance_url = self.url
        serve_in_background(self._server)
        if self._state_dir is not None:
            self._write_connection_file(files)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._server = None
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None
            self._files = None

    def __enter__(self) -> SalesforceEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The instance URL, ``https://localhost:<port>``."""
        return f"https://localhost:{self.port}"

    @property
    def token_url(self) -> str:
        return self.url + "/services/oauth2/token"

    @property
    def ca_bundle(self) -> str:
        """Path of the PEM CA certificate that signed the server certificate (``verify=`` this)."""
        if self._files is None:
            raise RuntimeError("the emulator is not started")
        return str(self._files / "ca.pem")

    def session(self) -> requests.Session:
        """A ``requests.Session`` that trusts the emulator's CA.

        ``trust_env`` is off because requests lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` from the
        environment override ``Session.verify`` for every request simple-salesforce sends.
        """
        session = requests.Session()
        session.verify = self.ca_bundle
        session.trust_env = False
        return session

    def _write_connection_file(self, directory: Path) -> None:
        if self.client_private_key_pem is not None:
            write_private(directory / "client-key.pem", self.client_private_key_pem)
        (directory / "client-cert.pem").write_text(self.client_certificate_pem)
        connection = {
            "instance_url": self.url,
            "token_url": self.token_url,
            "ca_bundle": self.ca_bundle,
            "consumer_key": self.consumer_key,
            "username": self.username,
            "audience": "https://login.salesforce.com",
            "private_key_file": str(directory / "client-key.pem") if self.client_private_key_pem else None,
            "certificate_file": str(directory / "client-cert.pem"),
        }
        (directory / "connection.json").write_text(json.dumps(connection, indent=2) + "\n")

    # ----- the org's setup, in-process -----------------------------------------------------------
    def remove_field(self, sobject: str, field: str) -> None:
        """The org has no such custom field (never created, deleted, or hidden from the integration user): it
        leaves describe, SOQL, record bodies and upserts (``sobjects/<object>/<field>/<value>`` answers 404
        NOT_FOUND, as Salesforce does). Stored values are kept; ``reset_schema()`` shows them again."""
        self.schema.remove_field(sobject, field)

    def change_field(self, sobject: str, field: str, **changes: Any) -> None:
        """A custom field set up otherwise, e.g. ``change_field("Contact", "Account_Sync_Key__c",
        external_id=False)`` or ``unique=False``: describe says so; a field that is no external id answers an
        upsert by it with 404 NOT_FOUND, a field that is not unique no longer refuses duplicate values."""
        self.schema.change_field(sobject, field, **changes)

    def reset_schema(self) -> None:
        """Back to the standard objects (every field the emulator knows, as it knows it)."""
        self.schema.reset()

    def _object(self, name: str) -> SObject:
        sobject = self.schema.find(name)
        if sobject is None:
            raise ValueError(f"unknown object {name!r} (the emulator knows Account, Contact, Opportunity)")
        return sobject

    # ----- data, in-process ----------------------------------------------------------------------
    def relay_change_events(self, sink: Any) -> Any:
        """Publish a Change Data Capture event for every committed Account and Contact change from now on, inside
        Event Relay's EventBridge envelope, to `sink(events)`; the relay (its `faults`) is returned."""
        from .change_events import EventRelay

        relay = EventRelay(org_id=self.org_id + "AAA", sink=sink)
        self._store.listeners.append(relay.on_change)
        return relay

    def create(self, sobject: str, values: dict) -> str:
        return self._store.create(self._object(sobject), values)["Id"]

    def bulk_create(self, sobject: str, rows: list[dict]) -> list[str]:
        """Create many records at once (all or none); fast enough for tens of thousands."""
        return self._store.bulk_create(self._object(sobject), rows)

    def update(self, sobject: str, record_id: str, values: dict) -> None:
        self._store.update(self._object(sobject), record_id, values)

    def touch(self, sobject: str, record_id: str) -> None:
        """Bump SystemModstamp only, like a roll-up summary recalculation or a system job."""
        self._store.touch(self._object(sobject), record_id)

    def delete(self, sobject: str, record_id: str) -> None:
        """Soft-delete (IsDeleted, kept for queryAll); an Account's Contacts and Opportunities follow."""
        self._store.delete(self._object(sobject), record_id)

    def undelete(self, sobject: str, record_id: str) -> None:
        self._store.undelete(self._object(sobject), record_id)

    def commit_late(self, sobject: str, record_id: str, values: dict, seconds_ago: float = 120) -> None:
        """A transaction that commits late: visible from now on, stamped ``seconds_ago`` in the past."""
        stamp = self.clock.now() - timedelta(seconds=seconds_ago)
        self._store.update(self._object(sobject), record_id, values, stamp=stamp)

    # ----- Bulk API 2.0 query jobs ---------------------------------------------------------------
    @property
    def bulk(self) -> BulkQueries:
        """The org's query jobs: ``polls_in_progress`` (polls answered InProgress before JobComplete),
        ``fail_next_job(message)``, ``delete_all()``, ``jobs_created()``."""
        return self._api.bulk

    def get(self, sobject: str, record_id: str) -> dict | None:
        """The record (deleted ones too, with ``IsDeleted: true``), or None."""
        obj = self._object(sobject)
        record = self._store.get(obj, record_id)
        return None if record is None else api_record(obj, record)

    def records(self, sobject: str, include_deleted: bool = False) -> list[dict]:
        obj = self._object(sobject)
        return [api_record(obj, r) for r in self._store.rows(obj) if include_deleted or not r["IsDeleted"]]

    # ----- observation ---------------------------------------------------------------------------
    @property
    def api_usage(self) -> tuple[int, int]:
        """(used, limit) of the daily API request allocation."""
        return self._usage.snapshot()

    @property
    def request_log(self) -> list[tuple[str, str]]:
        """(method, kind) of every request so far, e.g. ("GET", "queryAll"), ("POST", "token")."""
        return self._api.logged()

    def reset_request_log(self) -> None:
        self._api.clear_log()


__all__ = ["SalesforceApiError", "SalesforceEmulator"]
