"""The reader web app of a study folder: FastAPI routes, served by uvicorn.

Routes (every one needs a reader's token: the ``tumorsynth_reader`` cookie that ``GET /?t=TOKEN``
sets, or ``Authorization: Bearer TOKEN``; without one: 401)::

    GET  /                   the reader's page (index.html); ?t=TOKEN sets the cookie, 303 to /
    GET  /static/{name}      viewer.js, app.css (an explicit list of names, not a folder)
    GET  /api/state          {reader, total, answered, done, current, study}
    GET  /api/items/{id}     the item's int16 volume, application/octet-stream
    POST /api/answers        {item_id, call, confidence, comment?, seconds_viewed?} (needs the
                             header X-Tumorsynth: 1), committed before the reply, which carries
                             the next item

Nothing a request carries becomes a path: item ids must match
:data:`~tumorsynth.turing.layout.ITEM_ID` and be in ``study.json`` before
:func:`~tumorsynth.turing.layout.item_path` gives a file, static files come from a fixed list,
and ``key/`` and ``answers.sqlite`` have no route. No route takes a reader id: a token reaches
its own reader only. GET changes nothing; request bodies over 8 KiB are refused (413) before they
are read whole. FastAPI's /docs, /redoc and /openapi.json are off.
"""

from __future__ import annotations

import html
import ipaddress
import json
import signal
import socket
import sys
import threading
import warnings
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TextIO

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tumorsynth.errors import InputError
from tumorsynth.turing.layout import ANSWERS_NAME, ITEM_ID, item_path
from tumorsynth.turing.store import (
    MAX_COMMENT_CHARS,
    AnswerConflict,
    AnswerStore,
    Reader,
    ReaderState,
)

__all__ = ["COOKIE", "MAX_BODY_BYTES", "STATIC_FILES", "create_app", "is_loopback", "serve"]

COOKIE = "tumorsynth_reader"
MAX_BODY_BYTES = 8 * 1024
#: The files under /static/ (name -> media type); nothing else in the folder is served.
STATIC_FILES = {"viewer.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
COOKIE_DAYS = 30
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        b"frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
NOT_A_READER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Reader study: link needed</title></head>
<body><h1>This page needs your personal link</h1>
<p>{reason} Open the link the study's operator gave you (it looks like
<code>http://host:port/?t=...</code>). Links are personal: each reader has their own.</p>
<p>If you have just opened your link and still see this page, <a href="/">continue to the
study</a>.</p></body></html>
"""


class AnswerIn(BaseModel):
    """The body of ``POST /api/answers`` (unknown fields, strings for numbers: 422)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    item_id: str = Field(max_length=64)
    call: Literal["real", "synthetic"]
    confidence: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=MAX_COMMENT_CHARS)
    seconds_viewed: float | None = Field(default=None, ge=0.0, lt=1e7, allow_inf_nan=False)


def create_app(study: str | Path) -> FastAPI:
    """The web app of the study folder ``study`` (its ``answers.sqlite`` must exist: add readers
    first).

    Raises
    ------
    InputError
        ``study.json`` or ``answers.sqlite`` is missing, broken or of another study.
    """
    store = AnswerStore(study)
    info = store.info
    static = resources.files("tumorsynth.turing").joinpath("static")
    index = static.joinpath("index.html").read_bytes()
    assets = {name: static.joinpath(name).read_bytes() for name in STATIC_FILES}

    app = FastAPI(
        title="tumorsynth reader study",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )
    app.state.store = store
    app.add_middleware(_Guard, max_body=MAX_BODY_BYTES)

    def token_of(request: Request) -> str | None:
        authorization = request.headers.get("authorization", "")
        if authorization:
            scheme, _, value = authorization.partition(" ")
            return value.strip() if scheme.lower() == "bearer" else None
        return request.cookies.get(COOKIE)

    def reader_of(request: Request) -> Reader:
        reader = store.reader_for_token(token_of(request))
        if reader is None:
            raise HTTPException(401, "a valid reader token is required (open your personal link)")
        return reader

    @app.get("/", include_in_schema=False)
    def page(request: Request) -> Response:
        link_token = request.query_params.get("t")
        if link_token is not None:
            if store.reader_for_token(link_token) is None:
                return _not_a_reader("This link is not valid.")
            response = RedirectResponse("/", status_code=303)
            # Lax, not Strict: a link clicked in webmail must land signed in (a Strict cookie set
            # on a redirect from another site is not sent back). Lax is safe here: no GET changes
            # state and every POST needs the X-Tumorsynth header, which no other site can set.
            response.set_cookie(
                COOKIE,
                link_token,
                max_age=COOKIE_DAYS * 24 * 3600,
                path="/",
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https",
            )
            return response
        if store.reader_for_token(token_of(request)) is None:
            return _not_a_reader("You are not signed in to this study.")
        return HTMLResponse(index)

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str, request: Request) -> Response:
        reader_of(request)
        if name not in STATIC_FILES:
            raise HTTPException(404, "no such file")
        return Response(assets[name], media_type=STATIC_FILES[name])

    @app.get("/api/state")
    def api_state(request: Request) -> dict[str, Any]:
        state = store.state(reader_of(request))
        return {
            **_progress(state, "current"),
            "reader": state.reader,
            "done": state.done,
            "study": {
                "title": info.title,
                "shape": list(info.shape),
                "spacing_mm": list(info.spacing_mm),
                "presets": {name: list(wl) for name, wl in info.presets.items()},
                "default_preset": info.default_preset,
            },
        }

    @app.get("/api/items/{item_id}")
    def api_item(item_id: str, request: Request) -> Response:
        reader_of(request)
        if not ITEM_ID.fullmatch(item_id):
            raise HTTPException(404, "no such item")
        try:
            path = item_path(store.study, info, item_id)
        except KeyError:
            raise HTTPException(404, "no such item") from None
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        if len(data) != info.item_bytes:
            raise HTTPException(500, "this item's file is missing or damaged; tell the operator")
        return Response(data, media_type="application/octet-stream")

    @app.post("/api/answers")
    async def api_answer(request: Request) -> JSONResponse:
        reader = await run_in_threadpool(reader_of, request)
        if request.headers.get("x-tumorsynth") != "1":
            raise HTTPException(403, "the header X-Tumorsynth: 1 is required")
        origin = request.headers.get("origin")
        if origin is not None and origin.partition("://")[2] != request.headers.get("host"):
            raise HTTPException(403, "cross-origin requests are refused")
        try:
            answer = AnswerIn.model_validate_json(await request.body())
        except ValidationError as exc:
            errors = [{"loc": e["loc"], "msg": e["msg"]} for e in exc.errors()]
            return JSONResponse({"detail": errors}, status_code=422)
        if not ITEM_ID.fullmatch(answer.item_id) or answer.item_id not in info.item_ids:
            raise HTTPException(404, "no such item")
        try:
            output = await run_in_threadpool(
                store.record_answer,
                reader,
                answer.item_id,
                answer.call,
                answer.confidence,
                answer.comment,
                answer.seconds_viewed,
            )
        except AnswerConflict as exc:
            state = await run_in_threadpool(store.state, reader)
            return JSONResponse({"detail": str(exc), **_progress(state, "next")}, status_code=409)
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        return JSONResponse(
            {"ok": True, "stored": output.stored, **_progress(output.state, "next")}
        )

    return app


def _progress(state: ReaderState, key: str) -> dict[str, Any]:
    """``total``, ``answered`` and, under ``key``, the item to answer now (None when done)."""
    item = None
    if state.current is not None:
        item = {"item_id": state.current[0], "position": state.current[1]}
    return {"total": state.total, "answered": state.answered, key: item}


def _not_a_reader(reason: str) -> HTMLResponse:
    return HTMLResponse(NOT_A_READER.format(reason=html.escape(reason)), status_code=401)


class _Guard:
    """ASGI middleware: the security headers on every response, and request bodies bounded.

    A body is refused with 413 when its Content-Length says it is over ``max_body`` bytes (before
    a byte of it is read) or when, without a length (chunked) or with a wrong one, more than
    ``max_body`` bytes arrive; otherwise it is read here and handed on whole.
    """

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k for k, _ in SECURITY_HEADERS}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": headers + SECURITY_HEADERS}
            await send(message)

        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            status = 400 if not length.isdigit() else 413
            await _reply(send_secured, status, "request body over 8192 bytes or bad length")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _reply(send_secured, 413, "request body over 8192 bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def receive_body() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, receive_body, send_secured)


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in {"localhost", "localhost."}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    study: str | Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    log_level: str = "warning",
    out: TextIO | None = None,
) -> None:
    """Serve ``study`` until SIGINT or SIGTERM (a clean stop; every acknowledged answer is on
    disk already).

    Binds ``host``:``port`` (``port`` 0: a free port) before the server starts and prints one
    line with the URL and the real port, e.g. ``serving STUDY at http://127.0.0.1:PORT/ (N items,
    M readers)``. A host other than loopback is served with a warning: readers' tokens then
    travel over the network in plain HTTP. Uvicorn's access log is off (it would log the
    tokens of ``/?t=`` links).

    Raises
    ------
    InputError
        The study, its items or its answers database is missing or broken, no reader has been
        added, or the address cannot be bound.
    """
    import uvicorn

    out = out if out is not None else sys.stdout
    app = create_app(study)
    store: AnswerStore = app.state.store
    _check_items(store)
    readers = len(store.readers())
    if readers == 0:
        raise InputError(
            str(Path(study) / ANSWERS_NAME),
            "has no readers",
            fix="add readers with `tumorsynth turing readers add STUDY --name NAME`",
        )
    sock = _bound_socket(host, port)
    port = int(sock.getsockname()[1])
    if not is_loopback(host):
        warnings.warn(
            f"serving on {host}, not only this machine: anyone who can reach port {port} can "
            "try tokens, and links travel in plain HTTP (use an SSH tunnel or a TLS proxy)",
            stacklevel=2,
        )
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    stopped_by: list[int] = []

    def stop(number: int, _: object) -> None:
        # before uvicorn's own handlers are in place (or after, when it raises the signal
        # again once it has stopped gracefully): note it, and stop as soon as it runs
        stopped_by.append(number)
        server.should_exit = True

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for wanted in (signal.SIGINT, signal.SIGTERM):
            previous[wanted] = signal.signal(wanted, stop)
    shown = f"[{host}]" if ":" in host else host
    items, plural = len(store.info.item_ids), "" if readers == 1 else "s"
    print(
        f"serving {study} at http://{shown}:{port}/ ({items} items, {readers} reader{plural})",
        file=out,
        flush=True,
    )
    try:
        server.run(sockets=[sock])
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        sock.close()
        store.close()
    how = f" ({signal.Signals(stopped_by[0]).name})" if stopped_by else ""
    print(f"stopped{how}; every acknowledged answer is in {ANSWERS_NAME}", file=out, flush=True)


def _check_items(store: AnswerStore) -> None:
    """Every item file is there with the study's size (an InputError names the first that is not)."""
    for item_id in store.info.item_ids:
        path = item_path(store.study, store.info, item_id)
        size = path.stat().st_size if path.is_file() else None
        if size != store.info.item_bytes:
            found = "no such file" if size is None else f"{size} bytes"
            raise InputError(
                str(path),
                f"expected an item volume of {store.info.item_bytes} bytes, found {found}",
            )


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once after a kill
    try:
        sock.bind((host.strip("[]"), int(port)))
        sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    except OSError as exc:
        sock.close()
        raise InputError(f"--host {host} --port {port}", f"cannot listen there ({exc})") from exc
    return sock
