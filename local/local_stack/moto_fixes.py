"""A correction to moto 5.2.5's SQS FIFO receive, applied in-process (server mode and `mock_aws` alike).

The bug: moto keeps received messages in `queue.pending_messages` until a later ReceiveMessage looks at them,
and it drops a message whose visibility timeout expired from that set only when its scan reaches it. When two
messages of one group (A2, A3) were left in flight and both become visible again, the scan reaches A2 first
while A3 is still "pending": the group looks busy and A2 is skipped; then A3 leaves the set and is delivered.
A3 comes back before A2, and A2 starves for as long as A3 keeps failing. SQS returns A2 first: a FIFO group is
only blocked by messages that are really in flight.

The fix does what SQS does: before each receive, a message whose visibility timeout has expired is no longer in
flight. It is idempotent and touches nothing else. `tests/integration/local_stack` holds a canary test that fails
once moto no longer needs it.
"""

from __future__ import annotations

import functools
from typing import Any

_MARK = "_account_sync_fifo_fix"


def apply_moto_fixes() -> None:
    """Patch moto's SQS backend once per process (cheap to call again)."""
    from moto.sqs.models import SQSBackend

    original = SQSBackend.receive_message
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        pending = getattr(queue, "pending_messages", None)
        if pending:
            pending.difference_update({message for message in pending if message.visible})
        return original(self, queue_name, *args, **kwargs)

    setattr(receive_message, _MARK, True)
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
