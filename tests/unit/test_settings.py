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
    ],
)
def test_bad_values_name_their_variable(name, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_environment({**BASE, name: value})


def test_a_function_states_what_it_needs():
    with pytest.raises(SettingsError, match="account_changes_queue_url"):
        Settings.from_environment(BASE).require("account_changes_queue_url")
