"""`make demo` at a small scale: the whole story (initial sync, changes in Salesforce and in the store, the next
sync) on the moto server and the Salesforce emulator, with the demo's own checks of the store."""

from __future__ import annotations

from local_stack.demo import main


def test_the_demo_story_passes_its_checks_at_small_scale(capsys):
    assert main(["--scale", "small"]) == 0
    out = capsys.readouterr().out
    assert "All checks passed." in out
    assert "activity suppressed" in out
