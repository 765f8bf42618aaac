"""Unit tests: no network (sockets are blocked), fakes instead of AWS and Salesforce."""

from __future__ import annotations

import os
import socket

import pytest

# As the template's Globals set them: the layer's Metrics and Logger are created once per process, when
# `account_sync.observability` is first imported, by whichever test or in-process function imports it first.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "account-sync")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "AccountSync")


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise NetworkBlocked("unit tests do not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
