"""The labeling web app: a FastAPI app over a :class:`prefrl.label_queue.LabelQueue`.

Routes (every one needs the token, as ``?token=...`` or an ``X-Prefrl-Token`` header;
without it: 401, with a wrong one: 403, and nothing changes):

=============================  ==================================================================
``GET /``                      the labeling page (pairs of clips or texts, K-wise rankings)
``GET /review``                answered queries with their media and answers
``GET /api/next?annotator=A``  leases a query to A: ``{"query": {id, kind, k, prompt, media,
                               lease_until, timeout_s}}`` or ``{"query": null}`` when none is pending
``GET /api/media/{id}/{side}`` the side's GIF (``image/gif``) or text (``text/plain``)
``GET /api/frames/{id}/{side}`` a GIF side's frames side by side in one PNG, with ``X-Frame-Count`` and
                               ``X-Frame-Delay-Ms`` headers (the page's player: pause, slow, step, in sync)
``POST /api/answer``           ``{"query_id", "annotator", "answer"}`` -> ``{"ok": true, "labels": n}``
``GET /api/query/{id}``        one query as ``{"query": {...}}`` (with its answer once answered), to change it
``POST /api/change``           ``{"query_id", "annotator", "answer"}``: replaces that annotator's own answer
                               -> ``{"ok": true, "labels": n}`` (the old labels no longer count)
``GET /api/progress``          the queue's counts, plus what the ``progress`` callable returns
                               (``labels_due``, ``curves`` {name: [[step, value], ...]}, ...)
``GET /api/answered``          ``?offset=&limit=``: answered queries, most recent first
``GET /api/team``              per annotator: answers, "can't tell", labels, seconds per answer, agreement on
                               repeated queries (never agreement with gold answers or the true return:
                               labelers see this)
=============================  ==================================================================

Errors are JSON ``{"error": "..."}``: 400 (body not JSON), 422 (fields or answer malformed),
404 (unknown query or side), 409 (not leased to this annotator, answered already, or a change of an
answer that is not this annotator's),
410 (the lease ran out).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import re
import secrets
from importlib import resources
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from prefrl.label_queue import (AlreadyAnswered, LabelQueue, LabelQueueError, LeaseExpired, MalformedAnswer,
                                NotAnswered, NotLeased, Query, UnknownQuery, gif_to_strip)

__all__ = ["create_app", "TOKEN_HEADER"]

TOKEN_HEADER = "X-Prefrl-Token"
_STATUS = ((UnknownQuery, 404), (LeaseExpired, 410), (NotLeased, 409), (AlreadyAnswered, 409), (NotAnswered, 409),
           (MalformedAnswer, 422))
_MAX_BODY = 64 * 1024
_MAX_OFFSET = 2**62


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _queue_error(err: LabelQueueError) -> JSONResponse:
    status = next((code for cls, code in _STATUS if isinstance(err, cls)), 400)
    return _error(status, str(err))


class _TokenGate:
    """ASGI middleware: refuses every HTTP request that lacks the token (401) or has a wrong one (403)."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from urllib.parse import parse_qs

        given = dict(scope.get("headers") or []).get(TOKEN_HEADER.lower().encode())
        if given is None:
            values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
            given = values[0].encode() if values else None
        if given is None:
            resp = _error(401, "missing token: open the URL that was printed when the labeling server started "
                               "(it ends in ?token=...)")
        elif not secrets.compare_digest(given, self.token):
            resp = _error(403, "wrong token: open the URL that was printed when the labeling server started")
        else:
            return await self.app(scope, receive, send)
        await resp(scope, receive, send)


def _page(name: str) -> str:
    return resources.files("prefrl.web").joinpath("static", name).read_text(encoding="utf-8")


def _inline_hashes(html: str, tag: str) -> list[str]:
    """CSP source expressions ('sha256-...') of every inline ``<tag>...</tag>`` block of a page."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks]


def content_security_policy(pages: list[str]) -> str:
    """The pages' policy: only their own inline script and style blocks (by hash) and this server's URLs.

    A clip is an ``<img>`` of this server, a text side is fetched from it; nothing else loads, no page
    may frame them, and an injected ``<script>`` (whatever its origin) does not run.
    """
    scripts = sorted({h for page in pages for h in _inline_hashes(page, "script")})
    styles = sorted({h for page in pages for h in _inline_hashes(page, "style")})
    script_src, style_src = " ".join(scripts) or "'none'", " ".join(styles) or "'none'"
    return (f"default-src 'none'; script-src {script_src}; style-src {style_src}; img-src 'self'; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class _SecurityHeaders:
    """ASGI middleware: every response (refusals too) says nosniff, no referrer (the token is in the URL),
    no framing, and the pages' content security policy."""

    def __init__(self, app, policy: str):
        self.app = app
        self.headers = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                        (b"x-frame-options", b"DENY"), (b"content-security-policy", policy.encode())]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None as soon as it is over ``limit`` bytes (never read whole)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _query_json(q: Query, timeout_s: float | None = None) -> dict:
    out = {"id": q.id, "kind": q.kind, "k": q.k, "prompt": q.prompt,
           "media": [{"kind": kind, "url": f"/api/media/{q.id}/{side}"} for side, kind in enumerate(q.media_kinds)],
           "status": q.status, "annotator": q.annotator, "created": q.created}
    if q.status == "leased":
        out.update(lease_until=q.lease_until, timeout_s=timeout_s)
    if q.answered_at is not None:
        out.update(answer=q.answer, answered_at=q.answered_at)
    return out


def _jsonable(x):
    """Makes a progress callable's result JSON-safe (tuples -> lists, NaN/inf -> None, tensors -> lists)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if x is None or isinstance(x, (str, int, float, bool)):
        return x
    return str(x)


def create_app(queue: LabelQueue, token: str, progress: Callable[[], dict] | None = None) -> FastAPI:
    """The labeling app over ``queue``, guarded by ``token``.

    Args:
        queue: the queries to serve; answers are written into its store.
        token: the secret every request must carry (``?token=`` or the ``X-Prefrl-Token`` header).
        progress: optional callable returning a JSON-able dict merged into
            ``GET /api/progress``; known keys: ``labels_due`` (int, labels the
            run still wants) and ``curves`` ({name: [[step, value], ...]},
            drawn as small line plots on the page). Called on the server's threads.

    Returns:
        The FastAPI app (serve it with :func:`prefrl.web.serve`, or test it with
        ``fastapi.testclient.TestClient``).
    """
    if not isinstance(token, str) or len(token) < 8:
        raise ValueError("the token must be a string of at least 8 characters (serve() makes a random one)")
    app = FastAPI(title="prefrl labeling", docs_url=None, redoc_url=None, openapi_url=None)
    pages = {"label": _page("label.html"), "review": _page("review.html")}

    @app.get("/", response_class=HTMLResponse)
    def label_page() -> HTMLResponse:
        return HTMLResponse(pages["label"], headers={"Cache-Control": "no-store"})

    @app.get("/review", response_class=HTMLResponse)
    def review_page() -> HTMLResponse:
        return HTMLResponse(pages["review"], headers={"Cache-Control": "no-store"})

    @app.get("/api/next")
    def next_query(annotator: str = "") -> JSONResponse:
        try:
            q = queue.lease(annotator)
        except LabelQueueError as err:
            return _queue_error(err)
        return JSONResponse({"query": None if q is None else _query_json(q, queue.timeout_s)})

    @app.get("/api/media/{query_id}/{side}")
    def media(query_id: str, side: str) -> Response:
        if not side.isdigit() or len(side) > 4:  # a query has at most a handful of sides
            return _error(404, f"side must be a number 0..K-1, got {side!r:.20}")
        try:
            item = queue.media(query_id, int(side))
        except LabelQueueError as err:
            return _queue_error(err)
        if item["kind"] == "gif":  # a query's media never change: let the browser keep them
            return Response(item["data"], media_type="image/gif", headers={"Cache-Control": "private, max-age=86400"})
        return Response(item["data"], media_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": "private, max-age=86400"})

    async def write_answer(request: Request, method: Callable) -> JSONResponse:
        raw = await _read_body(request, _MAX_BODY)
        if raw is None:
            return _error(413, f"the body is over {_MAX_BODY} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return _error(400, 'the body must be JSON: {"query_id": ..., "annotator": ..., "answer": ...}')
        if not isinstance(body, dict) or not {"query_id", "annotator", "answer"} <= body.keys():
            return _error(422, 'the body must be a JSON object with "query_id", "annotator" and "answer"')
        if not isinstance(body["query_id"], str):
            return _error(422, "query_id must be a string")
        from starlette.concurrency import run_in_threadpool

        try:  # the queue blocks (SQLite): off the event loop
            n = await run_in_threadpool(method, body["query_id"], body["annotator"], body["answer"])
        except LabelQueueError as err:
            return _queue_error(err)
        return JSONResponse({"ok": True, "labels": n})

    @functools.lru_cache(maxsize=64)  # a query's media never change; a page asks for each side once
    def strip(query_id: str, side: int) -> tuple[bytes, int, int]:
        item = queue.media(query_id, side)
        if item["kind"] != "gif":
            raise UnknownQuery(f"side {side} of query {query_id} is {item['kind']}, not a clip")
        return gif_to_strip(item["data"])

    @app.get("/api/frames/{query_id}/{side}")
    def frames(query_id: str, side: str) -> Response:
        if not side.isdigit() or len(side) > 4:
            return _error(404, f"side must be a number 0..K-1, got {side!r:.20}")
        try:
            png, n, delay = strip(query_id, int(side))
        except LabelQueueError as err:
            return _queue_error(err)
        return Response(png, media_type="image/png", headers={
            "Cache-Control": "private, max-age=86400", "X-Frame-Count": str(n), "X-Frame-Delay-Ms": str(delay)})

    @app.post("/api/answer")
    async def answer(request: Request) -> JSONResponse:
        return await write_answer(request, queue.answer)

    @app.post("/api/change")
    async def change(request: Request) -> JSONResponse:
        return await write_answer(request, queue.change)

    @app.get("/api/query/{query_id}")
    def one_query(query_id: str) -> JSONResponse:
        try:
            q = queue.get(query_id)
        except LabelQueueError as err:
            return _queue_error(err)
        return JSONResponse({"query": _query_json(q)})

    @app.get("/api/progress")
    def get_progress() -> JSONResponse:
        out = queue.stats()
        out["queue_length"] = out["pending"]
        if progress is not None:
            try:
                extra = progress()
                out.update(_jsonable(dict(extra or {})))
            except Exception as err:  # noqa: BLE001 - the page shows it; labeling goes on
                out["progress_error"] = f"{type(err).__name__}: {err}"
        return JSONResponse(out)

    @app.get("/api/answered")
    def answered(offset: int = 0, limit: int = 20) -> JSONResponse:
        offset = min(max(offset, 0), _MAX_OFFSET)  # SQLite's integers end at 2^63: past the end is an empty page
        qs = queue.answered(offset=offset, limit=min(max(limit, 1), 200))
        return JSONResponse({"queries": [_query_json(q) for q in qs], "offset": offset})

    @app.get("/api/team")
    def team() -> JSONResponse:
        report = queue.team()
        for a in (*report["annotators"].values(), report):  # the page never hints at known or true answers
            a.pop("true_agreement", None)
            a.pop("gold_agreement", None)
        return JSONResponse(_jsonable(report))

    app.add_middleware(_TokenGate, token=token)
    app.add_middleware(_SecurityHeaders, policy=content_security_policy(list(pages.values())))  # outermost
    return app
