"""Tests of the local Salesforce emulator, driven through the real simple-salesforce client.

The shapes asserted here are Salesforce's, from its documentation:

- Query / QueryAll / Query More: ``totalSize``, ``done``, ``nextRecordsUrl`` (``/services/data/vXX.X/query/
  01g...-2000``), ``records`` with ``attributes``; up to 2,000 records a page; ``MALFORMED_QUERY`` —
  https://developer.salesforce.com/docs/platform/api-rest/guide/resources-query.md
- ORDER BY: case-insensitive, nulls first by default —
  https://developer.salesforce.com/docs/atlas.en-us.258.0.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_orderby.htm
- sObject Get Deleted: ``deletedRecords`` of ``{id, deletedDate}``, ``earliestDateAvailable``,
  ``latestDateCovered``, 15 days, ``EXCEEDED_ID_LIMIT`` over 600,000 ids (Get Updated: ``ids``,
  ``latestDateCovered``, 30 days) —
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api/resources_getdeleted.htm
- Composite: ``compositeRequest`` -> ``compositeResponse`` of ``{body, httpHeaders, httpStatusCode,
  referenceId}``, ``allOrNone``, ``@{ref.id}`` —
  https://developer.salesforce.com/docs/atlas.en-us.264.0.api_rest.meta/api_rest/resources_composite_composite_post.htm
- Limit Info header ``Sforce-Limit-Info: api-usage=USED/LIMIT`` on every call but the Versions URI —
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm
- OAuth 2.0 JWT bearer flow and its ``{"error", "error_description"}`` errors —
  https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm
"""
