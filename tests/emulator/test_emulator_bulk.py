"""Bulk API 2.0 query jobs: create, poll, CSV pages by locator, errors and limits; the admin routes."""

from __future__ import annotations

import csv
import io

import pytest
import requests
from simple_salesforce import Salesforce

from .factories import account_values

pytestmark = pytest.mark.integration


def jobs_url(sf: Salesforce, *parts: str) -> str:
    return sf.base_url + "/".join(["jobs", "query", *parts])


def create(sf: Salesforce, query: str, operation: str = "queryAll") -> requests.Response:
    return sf.session.post(jobs_url(sf), headers=sf.headers, json={"operation": operation, "query": query})


def poll_until_complete(sf: Salesforce, job_id: str) -> list[str]:
    states = []
    while not states or states[-1] not in ("JobComplete", "Failed", "Aborted"):
        states.append(sf.session.get(jobs_url(sf, job_id), headers=sf.headers).json()["state"])
    return states


def results(sf: Salesforce, job_id: str, **params: str) -> requests.Response:
    return sf.session.get(jobs_url(sf, job_id, "results"), headers=sf.headers, params=params)


def test_a_query_job_is_created_polled_and_read_in_csv_pages_by_locator(emulator, sf):
    # given 12 accounts, one deleted, one with blank fields
    emulator.bulk.polls_in_progress = 1
    ids = emulator.bulk_create("Account", [account_values() for _ in range(11)])
    ids.append(emulator.create("Account", {"Name": 'Quote "and", comma'}))
    emulator.delete("Account", ids[0])
    emulator.reset_request_log()
    # when a queryAll job is created and polled
    created = create(sf, "SELECT Id, Name, Industry, IsDeleted, SystemModstamp FROM Account")
    assert created.status_code == 200
    job = created.json()
    assert job["state"] == "UploadComplete" and job["operation"] == "queryAll" and job["object"] == "Account"
    assert job["id"].startswith("750") and len(job["id"]) == 18
    assert poll_until_complete(sf, job["id"]) == ["InProgress", "JobComplete"]
    # then the results come in pages of maxRecords, the locator naming the next one, "null" after the last
    rows, locator, pages = [], None, 0
    while locator != "null":
        params = {"maxRecords": "5", **({"locator": locator} if locator else {})}
        page = results(sf, job["id"], **params)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/csv")
        pages += 1
        found = list(csv.DictReader(io.StringIO(page.text)))
        assert int(page.headers["Sforce-NumberOfRecords"]) == len(found)
        rows += found
        locator = page.headers["Sforce-Locator"]
    assert pages == 3 and sorted(row["Id"] for row in rows) == sorted(ids)
    by_id = {row["Id"]: row for row in rows}
    assert by_id[ids[0]]["IsDeleted"] == "true" and by_id[ids[1]]["IsDeleted"] == "false"
    assert by_id[ids[-1]]["Name"] == 'Quote "and", comma' and by_id[ids[-1]]["Industry"] == ""
    assert by_id[ids[1]]["SystemModstamp"].endswith("Z")
    # and every request was one API call, with its own kind in the request log
    kinds = [kind for _, kind in emulator.request_log]
    assert kinds == ["bulk_job_create", "bulk_job", "bulk_job", "bulk_results", "bulk_results", "bulk_results"]
    assert "api-usage=" in page.headers["Sforce-Limit-Info"]


def test_a_query_job_leaves_deleted_rows_out_and_simple_salesforce_reads_it(emulator, sf):
    ids = emulator.bulk_create("Account", [account_values() for _ in range(3)])
    emulator.delete("Account", ids[0])
    emulator.bulk.polls_in_progress = 0
    pages = list(sf.bulk2.Account.query("SELECT Id FROM Account", max_records=2, wait=0))
    found = [row["Id"] for page in pages for row in csv.DictReader(io.StringIO(page))]
    assert sorted(found) == sorted(ids[1:])


def test_results_before_the_job_is_complete_are_refused(emulator, sf):
    job = create(sf, "SELECT Id FROM Account").json()
    early = results(sf, job["id"])
    assert early.status_code == 412 and early.json()[0]["errorCode"] == "JOB_NOT_COMPLETE"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"operation": "insert", "query": "SELECT Id FROM Account"}, "INVALIDJOB"),
        ({"operation": "query"}, "INVALIDJOB"),
        ({"operation": "query", "query": "SELECT COUNT() FROM Account"}, "INVALIDJOB"),
        ({"operation": "query", "query": "SELECT Nope__c FROM Account"}, "INVALID_FIELD"),
        ({"operation": "query", "query": "SELECT Id FROM Account", "columnDelimiter": "TAB"}, "INVALIDJOB"),
    ],
)
def test_a_job_salesforce_would_refuse_is_refused_at_creation(emulator, sf, body, code):
    answer = sf.session.post(jobs_url(sf), headers=sf.headers, json=body)
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == code


def test_a_failed_job_says_why_and_gives_no_results(emulator, sf):
    emulator.bulk.fail_next_job("Query failed: too many retries")
    job = create(sf, "SELECT Id FROM Account").json()
    assert poll_until_complete(sf, job["id"])[-1] == "Failed"
    info = sf.session.get(jobs_url(sf, job["id"]), headers=sf.headers).json()
    assert info["errorMessage"] == "Query failed: too many retries"
    assert results(sf, job["id"]).status_code == 412


def test_an_aborted_or_deleted_job_and_a_bad_locator(emulator, sf):
    job = create(sf, "SELECT Id FROM Account").json()
    aborted = sf.session.patch(jobs_url(sf, job["id"]), headers=sf.headers, json={"state": "Aborted"})
    assert aborted.json()["state"] == "Aborted"
    assert sf.session.delete(jobs_url(sf, job["id"]), headers=sf.headers).status_code == 204
    gone = sf.session.get(jobs_url(sf, job["id"]), headers=sf.headers)
    assert gone.status_code == 404 and gone.json()[0]["errorCode"] == "NOT_FOUND"
    emulator.bulk.polls_in_progress = 0
    other = create(sf, "SELECT Id FROM Account").json()
    poll_until_complete(sf, other["id"])
    bad = results(sf, other["id"], locator="not-a-locator")
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALIDLOCATOR"


def test_the_limits_resource_reports_the_daily_query_jobs(emulator, sf):
    create(sf, "SELECT Id FROM Account")
    limits = sf.restful("limits")
    assert limits["DailyBulkV2QueryJobs"]["Max"] - limits["DailyBulkV2QueryJobs"]["Remaining"] == 1


def test_the_late_commit_fault_is_an_admin_route(emulator):
    # given an account, and someone driving the emulator from another process
    (account,) = emulator.bulk_create("Account", [account_values()])
    before = emulator.get("Account", account)["SystemModstamp"]
    session = emulator.session()
    emulator.reset_request_log()
    # when they post a late commit stamped 15 minutes ago
    answer = session.post(
        emulator.url + "/_emulator/faults/late-commit",
        json={"sobject": "Account", "id": account, "values": {"Industry": "Late"}, "seconds_ago": 900},
    )
    # then the change is visible with an older stamp, and nothing counted as an API call
    assert answer.status_code == 204
    record = emulator.get("Account", account)
    assert record["Industry"] == "Late" and record["SystemModstamp"] < before
    assert emulator.request_log == []
    refused = session.post(emulator.url + "/_emulator/faults/late-commit", json={"sobject": "Nope", "id": account})
    assert refused.status_code == 400
