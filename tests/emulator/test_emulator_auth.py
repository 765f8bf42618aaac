"""JWT bearer token exchange, access tokens and TLS trust."""

from __future__ import annotations

import pytest
import requests
from salesforce_emulator import generate_client_keypair
from simple_salesforce import Salesforce, SalesforceExpiredSession

from .factories import JWT_BEARER, assertion, exchange

pytestmark = pytest.mark.integration


def test_a_jwt_signed_with_the_connected_app_key_gets_an_access_token(emulator, client_keys):
    # given a JWT signed with the key whose certificate the connected app holds
    signed = assertion(client_keys[0])

    # when it is exchanged at the token endpoint
    response = exchange(emulator.session(), emulator, signed)

    # then Salesforce's token response comes back
    assert response.status_code == 200
    token = response.json()
    assert set(token) == {"access_token", "instance_url", "id", "token_type", "scope", "issued_at", "signature"}
    assert token["token_type"] == "Bearer"
    assert token["instance_url"] == emulator.url
    assert token["access_token"].startswith("00D")


def test_the_access_token_works_with_the_real_simple_salesforce_client(emulator, client_keys):
    # given an access token from the JWT exchange
    session = emulator.session()
    token = exchange(session, emulator, assertion(client_keys[0])).json()

    # when simple-salesforce is built from it, over HTTPS trusting the emulator's CA
    sf = Salesforce(instance_url=emulator.url, session_id=token["access_token"], session=session, version="62.0")

    # then it can query
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 0


def test_the_emulator_url_is_an_accepted_audience(emulator, client_keys):
    response = exchange(emulator.session(), emulator, assertion(client_keys[0], aud=emulator.url))

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("claims", "description"),
    [
        ({"iss": "someone-else"}, "client identifier invalid"),
        ({"sub": "intruder@example.com"}, "user hasn't approved this consumer"),
        ({"aud": "https://example.com"}, "audience is invalid"),
        ({"expires_in": -60}, "invalid assertion: the JWT has expired (exp)"),
    ],
)
def test_a_jwt_with_wrong_claims_is_refused_with_invalid_grant(emulator, client_keys, claims, description):
    # given a correctly signed JWT with one wrong claim
    signed = assertion(client_keys[0], **claims)

    # when it is exchanged
    response = exchange(emulator.session(), emulator, signed)

    # then Salesforce's OAuth error comes back
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": description}


def test_a_jwt_signed_with_another_key_is_refused(emulator):
    # given a JWT signed with a key the connected app does not know (a bad signature)
    other_key, _ = generate_client_keypair()

    # when it is exchanged
    response = exchange(emulator.session(), emulator, assertion(other_key))

    # then
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}


def test_a_jwt_with_a_symmetric_algorithm_is_refused(emulator):
    signed = assertion("a-shared-secret-long-enough-for-hmac-sha256", algorithm="HS256")

    response = exchange(emulator.session(), emulator, signed)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_another_grant_type_is_not_supported(emulator, client_keys):
    response = emulator.session().post(
        emulator.token_url, data={"grant_type": "password", "assertion": assertion(client_keys[0])}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_a_data_call_without_a_valid_token_answers_401_invalid_session_id(emulator):
    # given a client holding a token the emulator never issued
    sf = Salesforce(instance_url=emulator.url, session_id="00D!made-up", session=emulator.session(), version="62.0")

    # when it calls the API, then simple-salesforce raises its expired-session error
    with pytest.raises(SalesforceExpiredSession) as raised:
        sf.query("SELECT Id FROM Account")
    assert raised.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_a_data_call_without_authorization_header_answers_401(emulator):
    response = emulator.session().get(emulator.url + "/services/data/v62.0/limits/")

    assert response.status_code == 401
    assert response.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_expired_sessions_need_a_new_token(emulator, sf, client_keys):
    # given a working client
    sf.query("SELECT COUNT() FROM Account")

    # when the sessions expire
    emulator.faults.expire_sessions()

    # then the old token answers 401, and a new JWT exchange gives a working one
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT COUNT() FROM Account")
    token = exchange(sf.session, emulator, assertion(client_keys[0])).json()["access_token"]
    fresh = Salesforce(instance_url=emulator.url, session_id=token, session=sf.session, version="62.0")
    assert fresh.query("SELECT COUNT() FROM Account")["totalSize"] == 0


def test_tls_is_verified_against_the_emulator_ca(emulator):
    # given a session that does not trust the emulator's CA
    untrusting = requests.Session()
    untrusting.trust_env = False

    # when it connects, then the certificate is refused
    with pytest.raises(requests.exceptions.SSLError):
        untrusting.get(emulator.url + "/services/data/")


def test_the_server_certificate_covers_localhost_and_127_0_0_1(emulator):
    session = emulator.session()

    by_name = session.get(emulator.url + "/services/data/")
    by_address = session.get(f"https://127.0.0.1:{emulator.port}/services/data/")

    assert by_name.status_code == by_address.status_code == 200
    assert {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"} in by_name.json()


def test_the_token_endpoint_accepts_only_form_posts_of_the_jwt_bearer_grant(emulator):
    response = emulator.session().post(emulator.token_url, data={"grant_type": JWT_BEARER})

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}


def test_stop_ends_open_keep_alive_connections(make_emulator, connect, tmp_path):
    # given a client whose connection to the emulator is open (keep-alive), its CA kept in a state dir
    emulator = make_emulator(state_dir=tmp_path)
    sf = connect(emulator)
    sf.query("SELECT COUNT() FROM Account")

    # when the emulator stops, then the client cannot be served any more
    emulator.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        sf.query("SELECT COUNT() FROM Account")
