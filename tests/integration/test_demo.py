"""`make demo` at a small scale: the whole story (initial sync, changes in Salesforce and in the store, the next
sync) on the moto server and the Salesforce emulator, with the demo's own checks of the store."""

from __future__ import annotations

import io

from local_stack.demo import SECTIONS, Console, main
from local_stack.sqs_poller import DrainResult


def test_the_demo_story_passes_its_checks_at_small_scale(capsys, tmp_path):
    functions_log = tmp_path / "functions.log"  # not the developer's .local-stack/demo-functions.log
    assert main(["--scale", "small", "--functions-log", str(functions_log)]) == 0
    out = capsys.readouterr().out
    assert functions_log.stat().st_size > 0 and f"functions' logs ............ {functions_log}" in out
    assert "All checks passed." in out
    assert "\r" not in out  # captured output is not a terminal: whole lines only
    # every section of the story, in order, the seed among them
    titles = [title for title, _ in SECTIONS]
    assert [out.index(title) for title in titles] == sorted(out.index(title) for title in titles)
    assert "contacts written as the initial sync writes them" in out
    assert "activity suppressed" in out
    # its push section: a change by Change Data Capture through moto's EventBridge, and the poll repairing a gap
    assert "✓ a change arrives by push, no fetch run" in out and "✓ the poll repairs the gap" in out
    # it ends with the operator's view of its stack: the queues, no dead letters, no resync in progress
    view = out[out.index("The operator's view: account-sync status") :]
    assert "AccountChangesQueue" in view and "dead letters: 0" in view and "resync: none in progress" in view


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_rewrites_one_line_on_a_terminal_and_writes_whole_lines_to_a_file():
    # given the same progress reported three times, on a terminal and into a file
    terminal, log = _Terminal(), io.StringIO()
    for out in (terminal, log):
        console = Console(out, log_interval=0.0)
        for applied in (10, 20, 30):
            console.progress(DrainResult(succeeded=applied, invocations=1))
        console.step("next section")
    # then the terminal's progress shares one line, ended before the next section's title
    assert (
        terminal.getvalue().count("\r") == 3
        and "30 messages applied, 0 retried, 1 invocations\n\n[" in terminal.getvalue()
    )
    # and the file holds one whole line per report, no carriage return anywhere
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and sum("messages applied" in line for line in lines) == 3
