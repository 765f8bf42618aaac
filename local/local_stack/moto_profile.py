"""A sampling profile of the moto server process, per action: where a request's time goes (docs/decisions.md).

`LOCAL_STACK_MOTO_PROFILE=<file>` in the server's environment turns it on (`moto_process`). A thread samples the
stacks of the threads that are serving a request, every millisecond, and writes the counts to `<file>` every few
seconds (a text report: per action, the functions seen on its stacks, inclusive and as the innermost frame). Frames
waiting on a socket are left out, so what remains is time spent running Python, or waiting for the interpreter
lock to run it; stacks outside a request (HTTP, threads) are counted apart. No dependency, and a small overhead
next to cProfile's (which made the demo's moto writes eight times slower and so changed what it measured). A
caveat: the sampler needs the interpreter lock to look, so it looks more often when a thread lets go of it (at a
socket or a lock) than in the middle of a request: read the shares within an action, not across actions.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from types import FrameType
from typing import Any

PROFILE_ENV = "LOCAL_STACK_MOTO_PROFILE"
_WAITING = {"readinto", "recv", "recv_into", "select", "accept", "wait", "_recv", "sendall", "readline"}


def _name(frame: FrameType) -> str:
    code = frame.f_code
    path = code.co_filename
    short = path.split("site-packages/")[-1] if "site-packages/" in path else path.rsplit("/", 2)[-1]
    return f"{short}:{code.co_firstlineno}:{code.co_name}"


class Sampler:
    """Samples the threads inside `entry` (a function's code object: the request's outermost frame)."""

    def __init__(self, path: str, entry: Any, interval: float = 0.001, write_every: float = 5.0) -> None:
        self.path = path
        self.entry = entry
        self.interval = interval
        self.write_every = write_every
        self.inclusive: dict[str, Counter[str]] = {}
        self.innermost: dict[str, Counter[str]] = {}
        self.samples: Counter[str] = Counter()

    def start(self) -> Sampler:
        threading.Thread(target=self._run, name="moto-profile", daemon=True).start()
        return self

    def _run(self) -> None:
        me = threading.get_ident()
        written = time.monotonic()
        while True:
            time.sleep(self.interval)
            for ident, frame in sys._current_frames().items():
                if ident != me:
                    self._sample(frame)
            if time.monotonic() - written >= self.write_every:
                written = time.monotonic()
                self.write()

    def _sample(self, frame: FrameType) -> None:
        stack: list[FrameType] = []
        current: FrameType | None = frame
        action = None
        while current is not None:
            if current.f_code is self.entry:
                key = current.f_locals.get("key")
                action = key[1] if isinstance(key, tuple) and len(key) > 1 else "?"
                break
            stack.append(current)
            current = current.f_back
        if action is None:
            action = "(outside a request: HTTP, threads)"
        if not stack or stack[0].f_code.co_name in _WAITING:
            return
        self.samples[action] += 1
        names = {_name(f) for f in stack}
        self.inclusive.setdefault(action, Counter()).update(names)
        self.innermost.setdefault(action, Counter())[_name(stack[0])] += 1

    def write(self, top: int = 60) -> None:
        lines = []
        for action, total in self.samples.most_common():
            lines.append(f"== {action}: {total} samples")
            lines.append("-- inclusive")
            lines += [f"{n / total:6.1%} {name}" for name, n in self.inclusive[action].most_common(top)]
            lines.append("-- innermost")
            lines += [f"{n / total:6.1%} {name}" for name, n in self.innermost[action].most_common(top // 2)]
        with open(self.path, "w") as out:
            out.write("\n".join(lines) + "\n")
