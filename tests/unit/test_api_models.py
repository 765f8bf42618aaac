"""The HTTP API's request models: strict, with a message that names what is wrong, before any service runs."""

from __future__ import annotations

import json

import pytest
from account_sync import api_models
from account_sync.services.refusals import InvalidRequest

from tests.unit.factories import SYNCED

CONVERSION = {
    "confirm": True,
    "account": {"Name": "Lovelace Analytics", "Industry": "Technology"},
    "opportunity": {"Name": "First deal", "StageName": "Prospecting", "CloseDate": "2026-12-31", "Amount": 1200},
}


def body(payload: object) -> str:
    return json.dumps(payload)


class TestLocalEditBody:
    def test_a_field_and_its_value(self):
        parsed = api_models.LocalEditBody.parse(body({"field": "Industry", "value": "Retail"}))
        assert (parsed.field, parsed.value) == ("Industry", "Retail")

    @pytest.mark.parametrize("value", [None, True, 12, 12.5, ""])
    def test_a_value_may_be_text_a_number_a_boolean_or_null(self, value):
        assert api_models.LocalEditBody.parse(body({"field": "Rating", "value": value})).value == value

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            (None, "needs a JSON object body"),
            ("", "needs a JSON object body"),
            ("[1]", "must be a JSON object"),
            ('{"field": "Industry", "value": NaN}', "NaN is not a JSON number"),
            (body({"field": "Industry"}), "value is required"),
            (body({"value": "x"}), "field must be"),
            (body({"field": "Industry; DROP", "value": "x"}), "field must be"),
            (body({"field": "Industry", "value": "x", "contact": "y"}), "unknown key(s) contact"),
            (body({"field": "Industry", "value": {"nested": 1}}), "value must be a string"),
            (body({"field": "Industry", "value": "x" * 32_001}), "longer than 32000"),
            ("x" * (64 * 1024 + 1), "larger than"),
        ],
    )
    def test_anything_else_is_an_invalid_request_naming_it(self, raw, message):
        with pytest.raises(InvalidRequest) as refused:
            api_models.LocalEditBody.parse(raw)
        assert message in refused.value.message
        assert refused.value.code in ("INVALID_REQUEST", "INVALID_JSON")


class TestPageRequest:
    def test_defaults_and_bounds(self):
        assert api_models.page_request(None).limit == 50
        assert api_models.page_request({"limit": "200", "next_token": "abc"}).next_token == "abc"

    @pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "201"}, {"limit": "-1"}, {"limit": "ten"}, {"x": "1"}])
    def test_out_of_bounds_or_unknown_is_refused(self, query):
        with pytest.raises(InvalidRequest, match="INVALID_REQUEST"):
            api_models.page_request(query)


class TestIds:
    @pytest.mark.parametrize("value", ["003000000000000001", "person-0001", "crm:42.a_b"])
    def test_salesforce_and_store_ids_pass(self, value):
        assert api_models.record_id(value, "contact_id") == value

    @pytest.mark.parametrize("value", ["", "a b", "a/b", "x" * 129, None])
    def test_anything_else_is_refused(self, value):
        with pytest.raises(InvalidRequest):
            api_models.record_id(value, "contact_id")


class TestConversionRequest:
    def test_the_account_opportunity_and_contact(self):
        request = api_models.conversion_request(
            body({**CONVERSION, "contact": {"LastName": "Byron"}}), synced_fields=SYNCED
        )
        assert request.account == {"Name": "Lovelace Analytics", "Industry": "Technology"}
        assert request.opportunity["Amount"] == 1200 and request.contact == {"LastName": "Byron"}

    @pytest.mark.parametrize("confirm", [None, False, "true", 1])
    def test_nothing_is_converted_without_confirm_true(self, confirm):
        payload = {**CONVERSION, "confirm": confirm}
        with pytest.raises(InvalidRequest) as refused:
            api_models.conversion_request(body(payload), synced_fields=SYNCED)
        assert refused.value.code == "CONFIRMATION_REQUIRED"
        assert "if you are not sure, you should probably not use it" in refused.value.message

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"account": {"Industry": "Technology"}}, "account.Name is required"),
            ({"account": {"Name": "A", "Website": "x"}}, "account: unknown key(s) Website"),
            ({"opportunity": {"Name": "D", "StageName": "Prospecting"}}, "CloseDate is required"),
            ({"opportunity": {**CONVERSION["opportunity"], "CloseDate": "2026-02-30"}}, "CloseDate is required"),
            ({"opportunity": {**CONVERSION["opportunity"], "Amount": -1}}, "Amount must be a number >= 0"),
            ({"opportunity": {**CONVERSION["opportunity"], "Name": "x" * 121}}, "longer than 120"),
            ({"contact": {"Email": 3}}, "contact.Email must be a non-empty string"),
            ({"contact": {"AccountId": "001"}}, "contact: unknown key(s) AccountId"),
            ({"account": None}, "account must be a JSON object"),
        ],
    )
    def test_a_bad_part_is_named(self, change, message):
        with pytest.raises(InvalidRequest) as refused:
            api_models.conversion_request(body({**CONVERSION, **change}), synced_fields=SYNCED)
        assert message in refused.value.message
