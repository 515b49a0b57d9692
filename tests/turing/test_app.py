"""The reader web app: the link flow, the page, the API, resume, the CLI and a real server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from turing_helpers import make_study

from tumorsynth.cli.main import build_parser, main
from tumorsynth.turing.app import COOKIE, create_app, is_loopback
from tumorsynth.turing.layout import ANSWERS_NAME, read_answers
from tumorsynth.turing.store import AnswerStore

REPO = Path(__file__).resolve().parents[2]
#: Element ids the browser test drives (index.html; preset buttons are made from study.presets).
PAGE_IDS = (
    "viewer", "slice", "slice-label", "window-width", "window-level", "presets", "crosshair",
    "reset", "view-axial", "view-coronal", "view-sagittal", "call-real", "call-synthetic",
    "confidence-1", "confidence-2", "confidence-3", "confidence-4", "confidence-5", "comment",
    "submit", "progress", "position", "total", "status", "message", "retry", "done",
    "done-total", "reader-name", "title", "loading",
)  # fmt: skip


@pytest.fixture()
def study(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A tiny study with readers alice and bob: (folder, name -> token)."""
    folder = tmp_path / "study"
    make_study(folder)
    store = AnswerStore(folder, create=True)
    tokens = {name: store.add_reader(name)[1] for name in ("alice", "bob")}
    store.close()
    return folder, tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_answer(client: TestClient, token: str, item_id: str, **fields: object):
    body = {"item_id": item_id, "call": "real", "confidence": 3, **fields}
    return client.post("/api/answers", json=body, headers={**bearer(token), "X-Tumorsynth": "1"})


def current(client: TestClient, token: str) -> dict | None:
    return client.get("/api/state", headers=bearer(token)).json()["current"]


def test_link_sets_a_private_cookie_and_the_page_loads(study) -> None:
    folder, tokens = study
    client = TestClient(create_app(folder), follow_redirects=False)
    response = client.get(f"/?t={tokens['alice']}")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={tokens['alice']};")
    for attribute in ("HttpOnly", "Path=/", "SameSite=lax"):
        assert attribute in cookie
    page = client.get("/")  # the cookie alone signs in
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for element in PAGE_IDS:
        assert f'id="{element}"' in page.text, element
    assert tokens["alice"] not in page.text
    assert client.get("/api/state").json()["reader"] == "alice"


def test_static_files_are_the_package_files_and_reach_nothing_outside(study) -> None:
    folder, tokens = study
    client = TestClient(create_app(folder), headers=bearer(tokens["alice"]))
    static = resources.files("tumorsynth.turing").joinpath("static")
    for name, media in [("viewer.js", "text/javascript"), ("app.css", "text/css")]:
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(media)
        assert response.content == static.joinpath(name).read_bytes()
    for name in ("index.html", "viewer.js", "app.css"):
        text = static.joinpath(name).read_text(encoding="utf-8")
        assert "http:" not in text and "https:" not in text, name  # no external resource
        assert "<script>" not in text and "style=" not in text, name  # nothing inline (CSP)


def test_state_items_and_bearer_token(study) -> None:
    folder, tokens = study
    client = TestClient(create_app(folder))
    state = client.get("/api/state", headers=bearer(tokens["alice"])).json()
    order = AnswerStore(folder).reader_for_token(tokens["alice"]).item_order
    assert state == {
        "reader": "alice",
        "total": 6,
        "answered": 0,
        "done": False,
        "current": {"item_id": order[0], "position": 0},
        "study": {
            "title": "Tiny study",
            "shape": [8, 16, 16],
            "spacing_mm": [2.5, 0.8, 0.8],
            "presets": {"abdomen": [400.0, 40.0], "liver": [150.0, 60.0]},
            "default_preset": "abdomen",
        },
    }
    for item_id in order:  # any item of the study, not only the current one
        response = client.get(f"/api/items/{item_id}", headers=bearer(tokens["bob"]))
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.content == (folder / "items" / f"{item_id}.raw").read_bytes()
        assert response.headers["cache-control"] == "no-store"


def test_answers_in_order_resume_in_a_new_app_and_finish(study) -> None:
    folder, tokens = study
    token = tokens["alice"]
    client = TestClient(create_app(folder))
    for expected in range(3):
        item = current(client, token)
        assert item["position"] == expected
        response = post_answer(client, token, item["item_id"], seconds_viewed=4.5)
        assert response.status_code == 200
        body = response.json()
        assert body["ok"] and body["stored"] and body["answered"] == expected + 1
        assert body["next"] == current(client, token)

    resumed = TestClient(create_app(folder))  # e.g. after a restart: the answers are on disk
    state = resumed.get("/api/state", headers=bearer(token)).json()
    assert state["answered"] == 3 and state["current"]["position"] == 3
    for _ in range(3):
        last = post_answer(resumed, token, current(resumed, token)["item_id"], call="synthetic")
    assert last.json()["next"] is None and last.json()["answered"] == 6
    state = resumed.get("/api/state", headers=bearer(token)).json()
    assert state["done"] is True and state["current"] is None
    answers = read_answers(folder)
    assert [a.position for a in answers] == list(range(6))
    assert [a.call for a in answers] == ["real"] * 3 + ["synthetic"] * 3
    assert answers[0].seconds_viewed == 4.5


def test_strict_order_retry_and_final_answers(study) -> None:
    folder, tokens = study
    token = tokens["alice"]
    client = TestClient(create_app(folder))
    order = AnswerStore(folder).reader_for_token(token).item_order
    response = post_answer(client, token, order[1])
    assert response.status_code == 409
    assert response.json()["next"] == {"item_id": order[0], "position": 0}
    assert post_answer(client, token, order[0], comment="first").status_code == 200
    retry = post_answer(client, token, order[0], comment="first")
    assert retry.status_code == 200 and retry.json()["stored"] is False
    assert retry.json()["next"] == {"item_id": order[1], "position": 1}
    changed = post_answer(client, token, order[0], comment="second thoughts")
    assert changed.status_code == 409 and "final" in changed.json()["detail"]
    assert [(a.item_id, a.comment) for a in read_answers(folder)] == [(order[0], "first")]


@pytest.mark.parametrize(
    "fields",
    [
        {"call": "maybe"},
        {"confidence": 0},
        {"confidence": 6},
        {"confidence": "3"},
        {"confidence": True},
        {"confidence": 2.5},
        {"comment": "x" * 2001},
        {"comment": 5},
        {"seconds_viewed": -1},
        {"seconds_viewed": "long"},
        {"reader_id": 2},
        {"reader": "bob"},
    ],
)
def test_malformed_answers_are_422_and_store_nothing(study, fields) -> None:
    folder, tokens = study
    client = TestClient(create_app(folder))
    response = post_answer(
        client, tokens["alice"], current(client, tokens["alice"])["item_id"], **fields
    )
    assert response.status_code == 422
    assert read_answers(folder) == []


def test_not_json_and_unknown_items(study) -> None:
    folder, tokens = study
    client = TestClient(create_app(folder))
    headers = {**bearer(tokens["alice"]), "X-Tumorsynth": "1"}
    for body in [b"", b"not json", b"[]", b'{"item_id": "x"'] + [b"\xff\xfe"]:
        assert client.post("/api/answers", content=body, headers=headers).status_code == 422
    for item_id in ["0" * 16, "ABCDEF0123456789", "../key/key.json"]:
        assert post_answer(client, tokens["alice"], item_id).status_code in (404, 422)
    assert read_answers(folder) == []


def test_each_reader_walks_all_items_in_their_own_order(study) -> None:
    folder, tokens = study
    client = TestClient(create_app(folder))
    walks = {}
    for name, token in tokens.items():
        seen = []
        while (item := current(client, token)) is not None:
            seen.append(item["item_id"])
            assert post_answer(client, token, item["item_id"]).status_code == 200
        walks[name] = seen
    items = sorted(AnswerStore(folder).info.item_ids)
    assert sorted(walks["alice"]) == sorted(walks["bob"]) == items
    assert walks["alice"] != walks["bob"]
    assert len(read_answers(folder)) == 12


def test_serve_binds_to_loopback_by_default() -> None:
    args = build_parser().parse_args(["turing", "serve", "STUDY"])
    assert (args.study, args.host, args.port) == ("STUDY", "127.0.0.1", 8765)
    args = build_parser().parse_args(["turing", "readers", "add", "STUDY", "--name", "x"])
    assert (args.host, args.port, args.name) == ("127.0.0.1", 8765, ["x"])
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert not is_loopback("example.org")


def test_cli_readers_add_and_list(study, capsys) -> None:
    folder, _ = study
    assert main(["turing", "readers", "add", str(folder), "--name", "carol", "--port", "9000"]) == 0
    out = capsys.readouterr().out
    (token,) = re.findall(r"http://127\.0\.0\.1:9000/\?t=(\S+)", out)
    assert "only this once" in out and "hash" in out
    assert AnswerStore(folder).reader_for_token(token).name == "carol"
    assert main(["turing", "readers", str(folder), "list"]) == 0  # either word order
    listing = capsys.readouterr().out
    assert re.search(r"carol\s+0/6", listing) and re.search(r"alice\s+0/6", listing)
    assert token not in listing
    assert main(["turing", "readers", "add", str(folder), "--name", "carol"]) == 2
    assert "already a reader" in capsys.readouterr().err


def test_cli_refuses_bad_studies_before_serving(tmp_path: Path, capsys) -> None:
    assert main(["turing", "readers", "add", str(tmp_path), "--name", "x"]) == 2
    assert f"{tmp_path / 'study.json'}: expected a reader study" in capsys.readouterr().err
    assert main(["turing", "readers", "list", "nothing-here"]) == 2
    assert "nothing-here/study.json: expected a reader study" in capsys.readouterr().err
    assert main(["turing", "readers", "foo", "bar"]) == 2
    assert "expected an action (add or list)" in capsys.readouterr().err
    folder = tmp_path / "study"
    make_study(folder)
    assert main(["turing", "serve", str(folder)]) == 2
    assert f"{folder / ANSWERS_NAME}: no answers database" in capsys.readouterr().err
    AnswerStore(folder, create=True).close()
    assert main(["turing", "serve", str(folder), "--port", "0"]) == 2
    assert "has no readers" in capsys.readouterr().err
    AnswerStore(folder).add_reader("alice")
    item = next((folder / "items").iterdir())
    item.write_bytes(item.read_bytes()[:-2])
    assert main(["turing", "serve", str(folder), "--port", "0"]) == 2
    assert f"{item}: expected an item volume of 4096 bytes, found 4094" in capsys.readouterr().err
    assert main(["turing", "serve", str(folder), "--port", "70000"]) == 2


@contextmanager
def running_server(folder: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``tumorsynth turing serve FOLDER --port 0`` in a process: (process, base URL)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tumorsynth.cli.main",
            "turing",
            "serve",
            str(folder),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)
    try:
        match = re.search(r"at (http://127\.0\.0\.1:(\d+)/) \(6 items, 2 readers\)", first[0])
        assert match, (first, process.poll())
        yield process, match.group(1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_real_server_prints_its_url_and_stops_cleanly_on_sigterm(study) -> None:
    import http.client

    folder, tokens = study
    with running_server(folder) as (process, url):
        port = int(url.rsplit(":", 1)[1].strip("/"))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/api/state", headers=bearer(tokens["alice"]))
        response = connection.getresponse()
        assert response.status == 200 and b'"reader":"alice"' in response.read()
        connection.close()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        assert "stopped (SIGTERM)" in out
