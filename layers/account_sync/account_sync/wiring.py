"""Builds the services from the settings, once per cold start. Clients are created here, lazily, never at import.

Each builder imports the service it builds, so that a function loads only its own: the activity log never loads the
fan-out, the queue consumers never load the API's services, and only the fetch and Convert Person load
simple-salesforce (through `salesforce_source_factory` and `build_person_conversions`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from account_sync.adapters.botocore_data import share_data_loader
from account_sync.adapters.dynamodb import (
    DynamoAccountRepository,
    DynamoActivityHistory,
    DynamoActivityStore,
    DynamoContactRepository,
    DynamoSyncStateStore,
)
from account_sync.adapters.dynamodb_models import bind_table_names, size_contacts_connection_pool
from account_sync.adapters.sqs import SqsBatchSender, SqsChangePublisher
from account_sync.domain.timestamps import utc_now
from account_sync.settings import Settings, SettingsError

# Not a client: the botocore sessions of this process (one per pynamodb writer thread) read service models once.
share_data_loader()

if TYPE_CHECKING:
    from account_sync.adapters.lambda_invoke import LambdaRunContinuation
    from account_sync.adapters.salesforce import SalesforceRestSource
    from account_sync.queue_records import PoisonPolicy, RetryVisibility
    from account_sync.services.convert_person import PersonConversions
    from account_sync.services.fan_out import FanOut
    from account_sync.services.history import History
    from account_sync.services.local_edit import LocalEdits


def bind_store(settings: Settings) -> None:
    bind_table_names(
        contacts=settings.contacts_table,
        accounts=settings.accounts_table,
        activities=settings.activities_table,
        sync_state=settings.sync_state_table,
    )


# botocore's default connection pool (10): a client shared by more threads than this waits for a connection.
DEFAULT_MAX_POOL_CONNECTIONS = 10


def sqs_client(concurrency: int = 1, validate: bool = True) -> Any:
    """`concurrency`: the requests this client may have in flight at once (a sender's lanes). `validate=False`
    turns botocore's parameter validation off, for a client whose requests only `SqsBatchSender` builds (strings
    all): a malformed one is then refused by SQS instead, and still fails its send (docs/decisions.md, "The fetch's
    memory", amended 2026-12-05)."""
    import boto3
    from botocore.config import Config

    pool = max(DEFAULT_MAX_POOL_CONNECTIONS, concurrency)
    return boto3.client("sqs", config=Config(max_pool_connections=pool, parameter_validation=validate))


def build_fan_out(settings: Settings, sqs: Any | None = None) -> FanOut:
    from account_sync.adapters.sqs import SqsActivityPublisher
    from account_sync.services.activity_log import ActivityPublisherWithOverflow
    from account_sync.services.fan_out import FanOut, FanOutConfig

    settings.require("account_changes_queue_url", "activity_queue_url")
    bind_store(settings)
    size_contacts_connection_pool(settings.fanout_write_concurrency)
    sqs = sqs or sqs_client()
    assert settings.account_changes_queue_url and settings.activity_queue_url
    activity_store = DynamoActivityStore(settings.activity_retention_days)
    return FanOut(
        accounts=DynamoAccountRepository(),
        contacts=DynamoContactRepository(),
        changes=SqsChangePublisher(SqsBatchSender(sqs, settings.account_changes_queue_url)),
        activities=ActivityPublisherWithOverflow(
            SqsActivityPublisher(SqsBatchSender(sqs, settings.activity_queue_url)), activity_store, utc_now
        ),
        activity_store=activity_store,
        config=FanOutConfig(
            synced_fields=settings.synced_account_fields,
            activity_threshold=settings.activity_threshold,
            segment_size=settings.fanout_segment_size,
        ),
        now=utc_now,
        executor=ThreadPoolExecutor(max_workers=settings.fanout_write_concurrency, thread_name_prefix="fan-out-write"),
    )


def build_poison_policy(settings: Settings, sqs: Any | None = None) -> PoisonPolicy:
    """How the fan-out sets a poison message aside (its DLQ and maxReceiveCount come from the template)."""
    from account_sync.adapters.sqs import SqsDeadLetterQueue
    from account_sync.queue_records import PoisonPolicy

    settings.require("account_changes_dlq_url")
    assert settings.account_changes_dlq_url
    return PoisonPolicy(
        SqsDeadLetterQueue(sqs or sqs_client(), settings.account_changes_dlq_url),
        max_receive_count=settings.account_changes_max_receive_count,
        unknown_error_receives=settings.unknown_error_receives,
    )


def build_retry_visibility(settings: Settings, queue_url: str | None, sqs: Any | None = None) -> RetryVisibility:
    """How a consumer hands a throttled message back to its own queue (`queue_url`): short, growing visibility."""
    from account_sync.adapters.sqs import SqsVisibility
    from account_sync.queue_records import RetryVisibility

    if not queue_url:
        raise SettingsError("missing configuration for the consumer's own queue URL")
    return RetryVisibility(
        SqsVisibility(sqs, queue_url, make_client=sqs_client),
        base_seconds=settings.retry_visibility_base_seconds,
        max_seconds=settings.retry_visibility_max_seconds,
    )


def build_run_continuation(function_name: str) -> LambdaRunContinuation:
    """How a paused fetch run starts the next one at once: its own function, by the name Lambda gives it."""
    import boto3

    from account_sync.adapters.lambda_invoke import LambdaRunContinuation

    return LambdaRunContinuation(function_name, make_client=lambda: boto3.client("lambda"))


def build_activity_store(settings: Settings) -> DynamoActivityStore:
    bind_store(settings)
    return DynamoActivityStore(settings.activity_retention_days)


def build_change_publisher(settings: Settings, sqs: Any | None = None, lanes: int = 1) -> SqsChangePublisher:
    """`lanes`: SendMessageBatch calls side by side (the fetch's `fetch_send_lanes`; one elsewhere). Its own client
    skips botocore's parameter validation: ~7-10 % of the fetch's CPU a scattered contact message
    (`local_stack.bench.fetch_cpu`), and the sender builds every request from strings."""
    settings.require("account_changes_queue_url")
    assert settings.account_changes_queue_url
    client = sqs or sqs_client(lanes, validate=False)
    sender = SqsBatchSender(client, settings.account_changes_queue_url, lanes=lanes)
    return SqsChangePublisher(sender)


def build_sync_state(settings: Settings) -> DynamoSyncStateStore:
    bind_store(settings)
    return DynamoSyncStateStore()


def build_local_edits(settings: Settings, sqs: Any | None = None) -> LocalEdits:
    from account_sync.adapters.idempotency import DynamoIdempotencyKeys
    from account_sync.services.local_edit import LocalEdits

    bind_store(settings)
    return LocalEdits(
        contacts=DynamoContactRepository(),
        accounts=DynamoAccountRepository(),
        changes=build_change_publisher(settings, sqs),
        synced_fields=settings.synced_account_fields,
        now=utc_now,
        keys=DynamoIdempotencyKeys(),
    )


def build_history(settings: Settings) -> History:
    from account_sync.services.history import History

    bind_store(settings)
    return History(
        contacts=DynamoContactRepository(), accounts=DynamoAccountRepository(), activities=DynamoActivityHistory()
    )


def build_person_conversions(settings: Settings) -> PersonConversions:
    from account_sync.adapters.salesforce import SalesforcePersonConverter
    from account_sync.services.convert_person import PersonConversions

    bind_store(settings)
    converter = SalesforcePersonConverter(
        salesforce_source_factory(settings, max_attempts=SalesforcePersonConverter.MAX_ATTEMPTS),
        api_version=settings.salesforce_api_version,
    )
    return PersonConversions(people=DynamoContactRepository(), converter=converter, now=utc_now)


def salesforce_source_factory(settings: Settings, max_attempts: int = 4) -> Callable[[], SalesforceRestSource]:
    """A new Salesforce client per run (its call count and API budget are per run), sharing one HTTP session
    and one authenticator, so that the token is reused across warm invocations."""
    import requests

    from account_sync.adapters.salesforce import SalesforceRestSource
    from account_sync.adapters.salesforce_auth import JwtBearerAuthenticator
    from account_sync.adapters.secrets import load_salesforce_credentials

    settings.require("salesforce_secret_name", "salesforce_token_url")
    assert settings.salesforce_secret_name and settings.salesforce_token_url
    secret_name = settings.salesforce_secret_name
    session = requests.Session()
    if settings.salesforce_ca_bundle:  # a private CA (the local emulator); verification stays on
        session.verify = settings.salesforce_ca_bundle
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override `session.verify`: not this one.
        session.trust_env = False
    authenticator = JwtBearerAuthenticator(
        credentials=lambda: load_salesforce_credentials(secret_name),
        token_url=settings.salesforce_token_url,
        session=session,
    )
    return lambda: SalesforceRestSource(
        authenticator,
        session,
        api_version=settings.salesforce_api_version,
        budget_share=settings.api_budget_share,
        max_attempts=max_attempts,
        bulk_threshold=settings.bulk_threshold,
    )
