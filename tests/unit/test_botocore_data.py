"""Every botocore session of a process shares one data loader per data path (account_sync.adapters.botocore_data):
pynamodb's per-thread sessions read DynamoDB's model from disk once, not once per writer thread."""

from __future__ import annotations

import threading

import botocore.session
from account_sync import wiring  # noqa: F401 - importing the wiring shares the loader, as a function's cold start does
from pynamodb.connection import Connection


def _loader(session: botocore.session.Session) -> object:
    return session.get_component("data_loader")


def test_two_sessions_share_one_loader_and_its_parsed_models():
    first, second = botocore.session.get_session(), botocore.session.get_session()

    assert _loader(first) is _loader(second)
    assert first.get_service_model("dynamodb") is not None
    # the second session's model comes from the loader's cache: the same parsed document, not a second read
    assert _loader(second).load_service_model("dynamodb", "service-2") is _loader(first).load_service_model(
        "dynamodb", "service-2"
    )


def test_pynamodb_sessions_of_two_threads_share_the_loader():
    connection = Connection(region="us-east-1")
    loaders: list[object] = []
    threads = [threading.Thread(target=lambda: loaders.append(_loader(connection.session))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(loaders) == 2
    assert loaders[0] is loaders[1]


def test_a_session_with_another_data_path_gets_its_own_loader(tmp_path, monkeypatch):
    default = _loader(botocore.session.get_session())
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))

    other = _loader(botocore.session.get_session())

    assert other is not default
    assert str(tmp_path) in other.search_paths
    assert _loader(botocore.session.get_session()) is other
