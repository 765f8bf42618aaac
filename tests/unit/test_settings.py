import pytest
from account_sync.settings import Settings, SettingsError, parse_field_list

BASE = {
    "CONTACTS_TABLE": "c",
    "ACCOUNTS_TABLE": "a",
    "ACTIVITIES_TABLE": "x",
    "SYNC_STATE_TABLE": "s",
    "SYNCED_ACCOUNT_FIELDS": "Name, Industry",
}


def test_defaults_follow_the_spec():
    settings = Settings.from_environment(BASE)
    assert settings.activity_threshold == 5000
    assert settings.synced_account_fields == ("Name", "Industry")
    assert settings.fetch_send_lanes == 8  # the template's FetchSendLanes


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "names no field"),
        ("Name,Name", "twice"),
        ("Name, Id", "system fields"),
        ("Name) FROM User --", "invalid field names"),
        ("Name,1abc", "invalid field names"),
    ],
)
def test_a_bad_field_list_is_refused_at_start(raw, message):
    with pytest.raises(SettingsError, match=message):
        parse_field_list(raw)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ACTIVITY_THRESHOLD", "many", "must be an integer"),
        ("ACTIVITY_THRESHOLD", "-1", ">= 0"),
        ("API_BUDGET_SHARE", "1.5", "between"),
        ("CONTACTS_TABLE", "", "CONTACTS_TABLE is not set"),
        ("RETRY_VISIBILITY_MAX_SECONDS", "43201", "RETRY_VISIBILITY_MAX_SECONDS must be <= 43200"),  # SQS's 12 h
        ("RETRY_VISIBILITY_BASE_SECONDS", "-1", ">= 0"),
        ("UNKNOWN_ERROR_RECEIVES", "0", ">= 1"),
        ("FETCH_SEND_LANES", "0", ">= 1"),
        ("FETCH_SEND_LANES", "65", "<= 64"),
    ],
)
def test_bad_values_name_their_variable(name, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_environment({**BASE, name: value})


def test_a_function_states_what_it_needs():
    with pytest.raises(SettingsError, match="account_changes_queue_url"):
        Settings.from_environment(BASE).require("account_changes_queue_url")


def test_the_retry_visibility_and_the_poison_limit_default_to_the_templates_values():
    settings = Settings.from_environment(BASE)
    assert (settings.retry_visibility_base_seconds, settings.retry_visibility_max_seconds) == (2, 120)
    assert settings.unknown_error_receives == 4
    assert Settings.from_environment({**BASE, "RETRY_VISIBILITY_MAX_SECONDS": "43200"}).retry_visibility_max_seconds


def test_the_fetchs_send_lanes_default_to_the_templates_and_reach_the_fetch():
    from tests.support.cfn_template import load_template

    template = load_template()
    assert int(template["Parameters"]["FetchSendLanes"]["Default"]) == Settings.from_environment(BASE).fetch_send_lanes
    variables = template["Resources"]["FetchChangesFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["FETCH_SEND_LANES"] == {"Ref": "FetchSendLanes"}
