"""A local web app in which people label clips and completions (``pip install 'prefrl[web]'``).

::

    from prefrl.label_queue import LabelQueue
    from prefrl.web import serve

    queue = LabelQueue(store)
    server = serve(queue)          # prints the URL to open, e.g. http://127.0.0.1:40123/?token=...
    ...                            # post queries; answers land in `store` as labels
    server.stop()

The server runs uvicorn on a background thread; its request handlers run on a
thread pool and only touch the queue (which holds the store's lock).
"""

from __future__ import annotations

import secrets
import socket
import sys
import threading
import time
from typing import Callable

from prefrl.label_queue import LabelQueue

__all__ = ["serve", "LabelServer", "create_app"]


def create_app(queue: LabelQueue, token: str, progress: Callable[[], dict] | None = None):
    """See :func:`prefrl.web.app.create_app` (imported lazily: FastAPI is an optional dependency)."""
    from prefrl.web.app import create_app as _create

    return _create(queue, token, progress)


class LabelServer:
    """A running labeling server (returned by :func:`serve`).

    Attributes:
        url: the page to open, token included (``http://HOST:PORT/?token=...``).
        review_url: the page listing answered queries.
        token: the secret every request must carry.
        host, port: where it listens.
    """

    def __init__(self, server, thread: threading.Thread, host: str, port: int, token: str):
        self._server, self._thread = server, thread
        self.host, self.port, self.token = host, port, token
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{port}"
        self.url = f"{self.base_url}/?token={token}"
        self.review_url = f"{self.base_url}/review?token={token}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stops serving (requests in flight get 3 s to finish) and waits for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the server thread is still serving."""
        return self._thread.is_alive()

    def __enter__(self) -> "LabelServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(
    queue: LabelQueue,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    progress: Callable[[], dict] | None = None,
    print_url: bool = True,
) -> LabelServer:
    """Serves the labeling app over ``queue`` on a background thread.

    Args:
        queue: the queries to serve.
        host: interface to listen on; the default, loopback, is reachable from
            this machine only (colleagues: ``0.0.0.0`` on a trusted network; the
            token is the only protection and HTTP is not encrypted).
        port: TCP port, 0 (default) for any free one.
        token: the secret in the URL; default a random ``secrets.token_urlsafe(24)``.
        progress: optional callable giving the page the run's progress
            (see :func:`prefrl.web.app.create_app`).
        print_url: print the URL to open on stderr.

    Returns:
        A :class:`LabelServer`; ``.url`` is the page to open, ``.stop()`` ends it.

    Raises:
        ImportError: FastAPI or uvicorn is missing (``pip install 'prefrl[web]'``).
        OSError: the port is taken.
        RuntimeError: the server did not start within 30 s.
    """
    try:
        import uvicorn
    except ImportError as err:
        raise ImportError(f"the labeling app needs fastapi and uvicorn ({err}); pip install 'prefrl[web]'") from err
    token = token if token is not None else secrets.token_urlsafe(24)
    app = create_app(queue, token, progress)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without it every
    # keep-alive response waits ~40 ms for the client's delayed ACK (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({err}); pass another --port (0 = any free one)") from err
    port = sock.getsockname()[1]
    # a connection that does not close (a browser tab's keep-alive) must not hold the shutdown forever
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="prefrl-label-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the labeling server did not start on {host}:{port}")
        time.sleep(0.01)
    handle = LabelServer(server, thread, host, port, token)
    if print_url:
        print(f"prefrl: label at {handle.url}", file=sys.stderr, flush=True)
    return handle
