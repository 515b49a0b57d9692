"""The reader web app under attack: tokens, other readers, path traversal, oversized bodies,
state changes on GET, CSRF, leaks of the key; in the ASGI app and through a real uvicorn."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import sqlite3
from pathlib import Path
from urllib.parse import unquote

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient
from test_app import bearer, current, post_answer, running_server, study  # noqa: F401 (fixture)
from turing_helpers import SECRETS

from tumorsynth.turing.app import create_app
from tumorsynth.turing.layout import ANSWERS_NAME, KEY_NAME, read_answers

#: Every route of the app, as (method, path) with a valid item id filled in later.
GET_ROUTES = ("/", "/static/viewer.js", "/static/app.css", "/api/state", "/api/items/{item}")
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
EVIL_ITEMS = [
    "..", "../answers.sqlite", "..%2fanswers.sqlite", "%2e%2e%2fkey%2fkey.json",
    "..%2F..%2Fkey%2Fkey.json", "%2e%2e", "key", "key%2fkey.json", "%2fetc%2fpasswd",
    "%2Fetc%2Fpasswd", "0123456789abcdef%00", "%00", "0123456789ABCDEF", "answers.sqlite",
    "study.json", "..%5c..%5ckey%5ckey.json", "%252e%252e%252fkey", "0123456789abcdef.raw",
]  # fmt: skip
EVIL_STATIC = [
    "..%2fapp.py", "%2e%2e%2fstore.py", "..%2f..%2fturing%2flayout.py", "index.html%00.css",
    "app.css%00", "APP.CSS", "viewer.js%2f", "..", "%2e%2e", "__init__.py", "..%2f__init__.py",
    "%2fetc%2fpasswd", "key.json", "answers.sqlite", "..%2f..%2f..%2fkey%2fkey.json",
]  # fmt: skip


def forbidden_content(folder: Path) -> list[bytes]:
    """What no response may contain: the key's strings, the key and database files, paths."""
    key = (folder / KEY_NAME).read_bytes()
    return [s.encode() for s in SECRETS] + [
        key[:200],
        b"SQLite format 3",
        b"truth",
        b"size_class",
        str(folder).encode(),
        b"import ",  # Python source of the package
    ]


def assert_clean(body: bytes, folder: Path) -> None:
    for needle in forbidden_content(folder):
        assert needle not in body, needle


def raw_request(
    app, method: str, raw_path: str, headers: dict[str, str], chunks: list[bytes] = ()
) -> tuple[int, dict[str, str], bytes]:
    """Drive the ASGI app directly: the path goes in as a server would decode it, headers
    (a Content-Length too) exactly as given, the body in ``chunks``."""
    path, _, query = raw_path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8765),
    }
    messages = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    sent: list[dict] = []

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    headers_out = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers_out, b"".join(m.get("body", b"") for m in sent[1:])


def snapshot(folder: Path) -> tuple[list[str], dict[str, str]]:
    """Every row of answers.sqlite and a hash of every other file of the study."""
    with sqlite3.connect(folder / ANSWERS_NAME) as connection:
        rows = list(connection.iterdump())
    files = {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(ANSWERS_NAME)
    }
    return rows, files


@pytest.fixture()
def client_and_items(study):  # noqa: F811 (the fixture imported above)
    folder, tokens = study
    app = create_app(folder)
    items = list(app.state.store.info.item_ids)
    return folder, tokens, app, items


def test_every_route_needs_a_valid_token(client_and_items) -> None:
    folder, tokens, app, items = client_and_items
    client = TestClient(app, follow_redirects=False)
    forged = tokens["alice"][:-2] + "xx"
    attempts = [
        {},
        bearer(forged),
        bearer(""),
        {"Authorization": f"Basic {tokens['alice']}"},
        {"Cookie": f"tumorsynth_reader={forged}"},
        {"Cookie": f"tumorsynth_reader={hashlib.sha256(tokens['alice'].encode()).hexdigest()}"},
    ]
    for headers in attempts:
        for path in GET_ROUTES:
            response = client.get(path.format(item=items[0]), headers=headers)
            assert response.status_code == 401, (path, headers)
            assert_clean(response.content, folder)
        response = client.post(
            "/api/answers",
            json={"item_id": items[0], "call": "real", "confidence": 3},
            headers={**headers, "X-Tumorsynth": "1"},
        )
        assert response.status_code == 401
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html") and "personal link" in page.text
    assert client.get("/api/state").json()["detail"].startswith("a valid reader token")
    bad_link = client.get(f"/?t={forged}")
    assert bad_link.status_code == 401 and "set-cookie" not in bad_link.headers
    assert read_answers(folder) == []


def test_no_route_takes_a_reader_and_others_cannot_touch_alice(client_and_items) -> None:
    folder, tokens, app, items = client_and_items
    routes = {(r.path, tuple(sorted(r.methods or ()))) for r in app.routes if isinstance(r, Route)}
    assert {path for path, _ in routes} == {
        "/",
        "/static/{name}",
        "/api/state",
        "/api/items/{item_id}",
        "/api/answers",
    }
    params = {name for r in app.routes if isinstance(r, Route) for name in r.param_convertors}
    assert params == {"name", "item_id"}  # no reader, no path: a token is the only identity
    client = TestClient(app)
    alice, bob = tokens["alice"], tokens["bob"]
    alice_item = current(client, alice)["item_id"]
    assert post_answer(client, alice, alice_item).status_code == 200
    before = snapshot(folder)
    alice_state = client.get("/api/state", headers=bearer(alice)).json()
    # bob cannot change alice's answer: the item is judged in bob's own order, as his answer
    bob_first = current(client, bob)
    assert bob_first["item_id"] != alice_item  # (this fixture's orders start differently)
    response = post_answer(client, bob, alice_item, call="synthetic", confidence=5)
    assert response.status_code == 409 and "not this reader's current item" in response.text
    for query in ("?reader=alice", "?reader_id=1", "?t=" + alice):
        state = client.get(f"/api/state{query}", headers=bearer(bob)).json()
        assert state["reader"] == "bob"
    assert post_answer(client, bob, bob_first["item_id"], reader="alice").status_code == 422
    assert post_answer(client, bob, bob_first["item_id"], reader_id=1).status_code == 422
    assert client.get("/api/state", headers=bearer(alice)).json() == alice_state
    alice_rows = [r for r in read_answers(folder) if r.reader == "alice"]
    assert [(a.item_id, a.call) for a in alice_rows] == [(alice_item, "real")]
    assert before[1] == snapshot(folder)[1]


@pytest.mark.parametrize("evil", EVIL_ITEMS)
def test_item_ids_cannot_reach_files(client_and_items, evil: str) -> None:
    folder, tokens, app, _ = client_and_items
    for path in (f"/api/items/{evil}", f"/api/items/{evil}/x", f"/api/items//{evil}"):
        status, _, body = raw_request(app, "GET", path, bearer(tokens["alice"]))
        assert status in (400, 404, 405, 422), path
        assert_clean(body, folder)
    body = json.dumps({"item_id": unquote(evil), "call": "real", "confidence": 3}).encode()
    headers = {**bearer(tokens["alice"]), "X-Tumorsynth": "1"}
    status, _, reply = raw_request(app, "POST", "/api/answers", headers, [body])
    assert status in (404, 422)
    assert_clean(reply, folder)
    assert read_answers(folder) == []


@pytest.mark.parametrize("evil", EVIL_STATIC)
def test_static_names_cannot_reach_files(client_and_items, evil: str) -> None:
    folder, tokens, app, _ = client_and_items
    for path in (f"/static/{evil}", f"/static//{evil}", f"/{evil}", f"/api/{evil}"):
        status, _, body = raw_request(app, "GET", path, bearer(tokens["alice"]))
        assert status in (400, 404, 405, 422), path
        assert_clean(body, folder)


def test_oversized_bodies_are_refused_and_store_nothing(client_and_items) -> None:
    folder, tokens, app, items = client_and_items
    client = TestClient(app)
    headers = {**bearer(tokens["alice"]), "X-Tumorsynth": "1"}
    item = current(client, tokens["alice"])["item_id"]
    answer = json.dumps({"item_id": item, "call": "real", "confidence": 3}).encode()

    def padded(size: int) -> bytes:
        return answer[:-1] + b" " * (size - len(answer)) + b"}"  # valid JSON of `size` bytes

    big = padded(8193)
    assert client.post("/api/answers", content=big, headers=headers).status_code == 413
    chunked = client.post("/api/answers", content=iter([big[:4000], big[4000:]]), headers=headers)
    assert chunked.status_code == 413
    huge = raw_request(app, "POST", "/api/answers", headers, [b"x" * 65536] * 64)
    assert huge[0] == 413  # never read whole
    lying = {**headers, "Content-Length": "10"}
    assert raw_request(app, "POST", "/api/answers", lying, [big])[0] == 413
    declared = {**headers, "Content-Length": str(10**12)}
    assert raw_request(app, "POST", "/api/answers", declared, [])[0] == 413
    for bad in ("-1", "abc", "1e3"):
        assert (
            raw_request(app, "POST", "/api/answers", {**headers, "Content-Length": bad})[0] == 400
        )
    assert (
        client.get("/api/state", headers={**headers, "Content-Length": "9000"}).status_code == 413
    )
    assert read_answers(folder) == []
    assert client.post("/api/answers", content=padded(8192), headers=headers).status_code == 200
    assert len(read_answers(folder)) == 1


def test_get_never_changes_state(client_and_items) -> None:
    folder, tokens, app, items = client_and_items
    client = TestClient(app, follow_redirects=False)
    assert (
        post_answer(client, tokens["bob"], current(client, tokens["bob"])["item_id"]).status_code
        == 200
    )
    before = snapshot(folder)
    for token in (tokens["alice"], tokens["bob"], "forged"):
        for path in GET_ROUTES:
            for item in items:
                client.get(path.format(item=item), headers=bearer(token))
                client.head(path.format(item=item), headers=bearer(token))
        client.get(f"/?t={token}")
        client.get("/api/answers", headers=bearer(token))  # 405, no answer
        client.get("/api/state?call=real&confidence=3&item_id=" + items[0], headers=bearer(token))
    assert client.get("/api/answers", headers=bearer(tokens["alice"])).status_code == 405
    assert snapshot(folder) == before


def test_posts_need_the_csrf_header_and_same_origin(client_and_items) -> None:
    folder, tokens, app, _ = client_and_items
    client = TestClient(app)
    item = current(client, tokens["alice"])["item_id"]
    body = {"item_id": item, "call": "real", "confidence": 3}
    for extra in ({}, {"X-Tumorsynth": "0"}, {"X-Tumorsynth": "true"}, {"X-Tumorsynth": ""}):
        response = client.post(
            "/api/answers", json=body, headers={**bearer(tokens["alice"]), **extra}
        )
        assert response.status_code == 403
    cookie_client = TestClient(app, cookies={"tumorsynth_reader": tokens["alice"]})
    form = cookie_client.post("/api/answers", data={"item_id": item, "call": "real"})
    assert form.status_code == 403  # what a cross-site form could send
    headers = {**bearer(tokens["alice"]), "X-Tumorsynth": "1"}
    evil = client.post("/api/answers", json=body, headers={**headers, "Origin": "http://evil.test"})
    assert evil.status_code == 403
    assert read_answers(folder) == []
    same = client.post(
        "/api/answers", json=body, headers={**headers, "Origin": "http://testserver"}
    )
    assert same.status_code == 200


def test_no_docs_and_security_headers_everywhere(client_and_items) -> None:
    folder, tokens, app, items = client_and_items
    client = TestClient(app, follow_redirects=False)
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        for headers in ({}, bearer(tokens["alice"])):
            assert client.get(path, headers=headers).status_code in (401, 404)
    responses = [
        client.get("/", headers=bearer(tokens["alice"])),  # 200
        client.get("/"),  # 401
        client.get(f"/?t={tokens['alice']}"),  # 303
        client.get("/api/items/" + items[0], headers=bearer(tokens["alice"])),
        client.get("/nowhere"),  # 404
        client.post("/api/answers", content=b"x" * 9000),  # 413
    ]
    assert [r.status_code for r in responses] == [200, 401, 303, 200, 404, 413]
    for response in responses:
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value


def test_no_response_reveals_the_key(client_and_items) -> None:
    folder, tokens, app, items = client_and_items
    client = TestClient(app, follow_redirects=False)
    bodies = []
    for token in (tokens["alice"], "forged"):
        for path in GET_ROUTES + ("/nowhere", "/key/key.json", f"/{ANSWERS_NAME}", "/study.json"):
            for item in items:
                response = client.get(path.format(item=item), headers=bearer(token))
                bodies.append(response.content + str(response.headers).encode())
    while (item := current(client, tokens["alice"])) is not None:
        response = post_answer(client, tokens["alice"], item["item_id"])
        bodies.append(response.content + str(response.headers).encode())
    for body in bodies:
        assert_clean(body, folder)


def test_real_server_refuses_traversal_and_big_bodies(study) -> None:  # noqa: F811
    folder, tokens = study
    with running_server(folder) as (process, url):
        port = int(url.rsplit(":", 1)[1].strip("/"))

        def request(method: str, path: str, body=None, headers=None, **options):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request(method, path, body=body, headers=headers or {}, **options)
            response = connection.getresponse()
            data = response.read()
            connection.close()
            return response.status, data

        headers = bearer(tokens["alice"])
        for evil in EVIL_ITEMS:
            status, data = request("GET", f"/api/items/{evil}", headers=headers)
            assert status in (400, 404, 422), evil
            assert_clean(data, folder)
        for path in ["/../key/key.json", "/static/../key/key.json", "/static/%2e%2e/store.py",
                     "/answers.sqlite", "/key/key.json", "//etc/passwd", "/static/..%2f..%2fkey"]:  # fmt: skip
            status, data = request("GET", path, headers=headers)
            assert status in (400, 404), path
            assert_clean(data, folder)
        post = {**headers, "X-Tumorsynth": "1", "Content-Type": "application/json"}
        chunks = iter([b"x" * 4096] * 8)
        status, _ = request("POST", "/api/answers", chunks, post, encode_chunked=True)
        assert status == 413
        status, _ = request("POST", "/api/answers", b"x" * 20000, post)
        assert status == 413
        assert request("GET", "/api/state", headers=headers)[0] == 200  # still serving
    assert read_answers(folder) == []
