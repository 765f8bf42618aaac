"""One botocore data loader for every botocore session of the process.

botocore reads a service's model and its endpoint rules from disk (JSON, about 60 ms of CPU for DynamoDB) once per
*session*, and pynamodb makes one session per thread: each of the fan-out's writer threads read them again at a cold
start, about a second of CPU for 16 threads, and the local world, which makes new clients for every test and
invocation, spent most of its CPU there. A loader only caches files of botocore's data path, which do not change while
a process runs, so sessions of one data path can share it.
"""

from __future__ import annotations

import threading
from typing import Any

import botocore.session

_LOADERS: dict[str | None, Any] = {}
_LOCK = threading.Lock()
_original_create_loader = botocore.session.create_loader


def _shared_loader(search_path_string: str | None = None) -> Any:
    """botocore's `create_loader`, once per data path (`AWS_DATA_PATH`) for the whole process."""
    with _LOCK:
        loader = _LOADERS.get(search_path_string)
        if loader is None:
            loader = _LOADERS[search_path_string] = _original_create_loader(search_path_string)
        return loader


def share_data_loader() -> None:
    """Every botocore session made from now on (boto3's and pynamodb's alike) uses the process's one loader of its
    data path. Idempotent."""
    botocore.session.create_loader = _shared_loader  # type: ignore[attr-defined]
