"""`make demo` at a small scale: the whole story (initial sync, changes in Salesforce and in the store, the next
sync) on the moto server and the Salesforce emulator, with the demo's own checks of the store."""

from __future__ import annotations

from local_stack.demo import main


def test_the_demo_story_passes_its_checks_at_small_scale(capsys):
    assert main(["--scale", "small"]) == 0
    out = capsys.readouterr().out
    assert "All checks passed." in out
    assert "activity suppressed" in out
    # its push section: a change by Change Data Capture through moto's EventBridge, and the poll repairing a gap
    assert "✓ a change arrives by push, no fetch run" in out and "✓ the poll repairs the gap" in out
    # it ends with the operator's view of its stack: the queues, no dead letters, no resync in progress
    view = out[out.index("The operator's view: account-sync status") :]
    assert "AccountChangesQueue" in view and "dead letters: 0" in view and "resync: none in progress" in view
