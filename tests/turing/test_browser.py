"""The reader app in a real browser: Debian's chromium, headless, driven by Playwright (pointed at
the system chromium; nothing downloads a browser), against ``tumorsynth turing serve`` running as
its own process. A reader opens their link, scrolls, changes the window, answers, reloads and
resumes where they stopped, and finishes. Screenshots go to ``$TUMORSYNTH_ARTIFACTS/turing`` (or
``test-artifacts/turing`` in the repository; the README's picture is one of them)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from shared_data import REPO, require_module, skip_or_fail
from turing_helpers import write_config, write_tiny_study

from tumorsynth.turing.layout import read_answers
from tumorsynth.turing.simulate import ServerProcess
from tumorsynth.turing.store import AnswerStore

#: Flags for a headless chromium on a machine without network or display.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def artifacts() -> Path:
    folder = Path(os.environ.get("TUMORSYNTH_ARTIFACTS", REPO / "test-artifacts")) / "turing"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = require_module("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        skip_or_fail("Debian's chromium is not installed (./install.sh installs it)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path, str]]:
    study = tmp_path / "study"
    write_tiny_study(study, n_items=3, shape=(24, 48, 48))
    _, token = AnswerStore(study, create=True).add_reader("dr_a")
    with ServerProcess(study, log=tmp_path / "server.log") as server:
        yield server, study, token


def test_a_reader_scrolls_windows_answers_reloads_and_finishes(browser, served) -> None:
    expect = require_module("playwright.sync_api").expect
    server, study, token = served
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{server.url}/?t={token}")
    assert page.url == f"{server.url}/"  # the token left the address bar for a cookie
    expect(page.locator("#study")).to_be_visible()
    expect(page.locator("#position")).to_have_text("1")
    expect(page.locator("#total")).to_have_text("3")
    expect(page.locator("#reader-name")).to_contain_text("dr_a")

    # scroll: the wheel over the image moves the slice
    start = int(page.locator("#slice").input_value())
    page.locator("#viewer").hover()
    page.mouse.wheel(0, 300)
    expect(page.locator("#slice")).not_to_have_value(str(start))
    # window presets and the other planes
    page.locator("#preset-liver").click()
    expect(page.locator("#window-width")).to_have_value("150")
    expect(page.locator("#window-level")).to_have_value("60")
    page.locator("#view-coronal").click()
    expect(page.locator("#view-coronal")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#slice")).to_have_attribute("max", "47")  # y runs over 48 voxels
    page.locator("#view-axial").click()
    expect(page.locator("#slice")).to_have_attribute("max", "23")
    page.screenshot(path=str(artifacts() / "reader_item1.png"))

    # answer the first item
    expect(page.locator("#submit")).to_be_disabled()
    page.locator("#call-synthetic").click()
    page.locator("#confidence-4").click()
    page.locator("#comment").fill("edge too smooth")
    page.locator("#submit").click()
    expect(page.locator("#position")).to_have_text("2")
    stored = read_answers(study)
    assert [(a.call, a.confidence, a.comment) for a in stored] == [
        ("synthetic", 4, "edge too smooth")
    ]

    # reload: the reader resumes at the second item, the first answer kept once
    page.reload()
    expect(page.locator("#position")).to_have_text("2")
    expect(page.locator("#submit")).to_be_disabled()  # a fresh form, not the last answer
    page.locator("#call-real").click()
    page.locator("#confidence-2").click()
    page.locator("#submit").click()
    expect(page.locator("#position")).to_have_text("3")
    expect(page.locator("#loading")).to_be_hidden()  # keys wait for the item, as a reader does
    page.keyboard.press("s")  # the keyboard alone: call, confidence, Enter
    page.keyboard.press("5")
    expect(page.locator("#call-synthetic")).to_be_checked()
    expect(page.locator("#confidence-5")).to_be_checked()
    page.keyboard.press("Enter")
    expect(page.locator("#done")).to_be_visible()
    expect(page.locator("#done-total")).to_have_text("3")
    page.screenshot(path=str(artifacts() / "reader_done.png"))

    answers = read_answers(study)
    assert [(a.position, a.call, a.confidence) for a in answers] == [
        (0, "synthetic", 4),
        (1, "real", 2),
        (2, "synthetic", 5),
    ]
    assert not errors, errors


def test_no_token_no_study(browser, served) -> None:
    server, _, _ = served
    page = browser.new_page()
    for address in (f"{server.url}/", f"{server.url}/?t=forged", f"{server.url}/static/viewer.js"):
        response = page.goto(address)
        assert response is not None and response.status == 401, address
        assert "viewer.js" not in page.content() and "canvas" not in page.content()


def test_a_study_of_the_shared_cts_in_the_browser(browser, ircad_study_sources, tmp_path) -> None:
    """The README's picture: an item of the IRCAD study (1.17's real tumors, 1.7's synthetic
    ones) in the liver window, as a reader sees it."""
    expect = require_module("playwright.sync_api").expect
    from tumorsynth.cli.main import main

    study = tmp_path / "study"
    config = write_config(tmp_path, ircad_study_sources, title="Liver tumors: real or synthetic?")
    args = ["turing", "create", "--config", str(config), "--out", str(study), "--no-progress"]
    assert main(args) == 0
    _, token = AnswerStore(study, create=True).add_reader("dr_b")
    with ServerProcess(study, log=tmp_path / "server.log") as server:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{server.url}/?t={token}")
        expect(page.locator("#study")).to_be_visible()
        expect(page.locator("#total")).to_have_text("4")
        expect(page.locator("#loading")).to_be_hidden()
        page.locator("#preset-liver").click()
        expect(page.locator("#window-width")).to_have_value("150")
        # the crop is centred on the tumor: the middle slice shows it
        shape = json.loads((study / "study.json").read_text(encoding="utf-8"))["shape"]
        expect(page.locator("#slice")).to_have_value(str(shape[0] // 2))
        page.locator("#call-real").click()
        page.locator("#confidence-3").click()
        page.screenshot(path=str(artifacts() / "reader_ircad.png"))
