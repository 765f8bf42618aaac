"""The child process of `MotoServer(separate_process=True)`: moto's server with the local stack's fixes."""

from __future__ import annotations

import argparse
import logging
import time

from local_stack.moto_fixes import apply_moto_fixes
from local_stack.moto_server import HOST, keep_connections_alive


def main(argv: list[str] | None = None) -> None:
    from moto.server import ThreadedMotoServer

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    apply_moto_fixes()
    keep_connections_alive()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    while True:  # until the parent terminates this process
        time.sleep(3600)


if __name__ == "__main__":
    main()
