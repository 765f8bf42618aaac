from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from salesforce_emulator import SalesforceEmulator, generate_client_keypair
from simple_salesforce import Salesforce

from .factories import CONSUMER_KEY, USERNAME, login


@pytest.fixture(scope="session")
def client_keys() -> tuple[str, str]:
    """(private key PEM, certificate PEM) of the test connected app."""
    return generate_client_keypair()


@pytest.fixture
def make_emulator(client_keys: tuple[str, str]) -> Iterator[Callable[..., SalesforceEmulator]]:
    started: list[SalesforceEmulator] = []

    def make(**options: object) -> SalesforceEmulator:
        settings: dict = {
            "consumer_key": CONSUMER_KEY,
            "username": USERNAME,
            "client_certificate_pem": client_keys[1],
            "page_size": 5,
            **options,
        }
        emulator = SalesforceEmulator(**settings).start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., SalesforceEmulator]) -> SalesforceEmulator:
    return make_emulator()


@pytest.fixture
def sf(emulator: SalesforceEmulator, client_keys: tuple[str, str]) -> Salesforce:
    return login(emulator, client_keys[0])


@pytest.fixture
def connect(client_keys: tuple[str, str]) -> Callable[[SalesforceEmulator], Salesforce]:
    return lambda emulator: login(emulator, client_keys[0])
