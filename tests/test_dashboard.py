"""The web dashboard in a real browser (Debian's headless Chromium, driven
by Selenium) against real frontends and workers: counts, live lists and
job pages, the submit form, actions, login and ownership, CSRF, and
accessibility checked with axe-core in the page.

Set ``PHASER_SCREENSHOTS`` to a directory to keep the screenshots the
tests take (``docs/img`` holds the ones the documentation shows).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from conftest import (
    Stack,
    add_user,
    create_job,
    make_stack,
    wait_for,
    wait_for_file,
)
from phaser.embedded import EmbeddedRedis

#: How long the browser may take to show what the server sent.
PATIENCE = 20


@pytest.fixture(scope="module")
def ui(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A stack of its own (auth none): its counts are this module's."""
    stack = make_stack(redis_server, tmp_path_factory.mktemp("ui"), max_wait=5)
    yield stack
    stack.stop()


@pytest.fixture
def api(ui: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ui.url, timeout=30) as client:
        yield client


def until(
    browser: webdriver.Chrome, check: Callable[[webdriver.Chrome], Any]
) -> Any:
    """Wait for the page to show something (the browser is polled; the
    page itself is updated by the server's events)."""
    return WebDriverWait(
        browser,
        PATIENCE,
        poll_frequency=0.05,
        # The live parts are replaced as the server sends them, and a
        # page may be replaced by the next while it is read (Chromium then
        # says "Node ... does not belong to the document"): read again.
        ignored_exceptions=(
            StaleElementReferenceException,
            WebDriverException,
        ),
    ).until(check)


def text(browser: webdriver.Chrome, selector: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, selector).text)


def shot(browser: webdriver.Chrome, name: str, tmp_path: Path) -> None:
    """A screenshot of the page (kept where PHASER_SCREENSHOTS says)."""
    directory = Path(os.environ.get("PHASER_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    # The whole page: the window as tall as the document, for a moment.
    width, height = browser.get_window_size().values()
    full = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(width, min(max(int(full) + 140, height), 3000))
    try:
        assert browser.save_screenshot(str(path))
    finally:
        browser.set_window_size(width, height)
    assert path.read_bytes().startswith(b"\x89PNG")


def axe_violations(browser: webdriver.Chrome) -> list[dict[str, Any]]:
    """axe-core's WCAG 2 A and AA violations on the current page (labels,
    contrast, landmarks, names of controls...)."""
    script = (
        resources.files("axe_core_python").joinpath("axe.min.js").read_text()
    )
    browser.execute_script(script)
    found: list[dict[str, Any]] = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag',"
        " values: ['wcag2a', 'wcag2aa', 'best-practice']}})"
        ".then(r => done(r.violations.map(v => ({id: v.id,"
        " impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))))"
    )
    return found


def until_row(browser: webdriver.Chrome, job_id: str, phase: str) -> None:
    """Wait until a job list shows the job's row in that phase."""
    until(
        browser,
        lambda b: any(
            row.get_attribute("data-phase") == phase
            for row in b.find_elements(By.ID, f"job-{job_id}")
        ),
    )


def mark_page(browser: webdriver.Chrome) -> None:
    """Leave a mark in the page's script state: a reload would lose it."""
    browser.execute_script("window.phaserMark = 'not reloaded';")


def still_marked(browser: webdriver.Chrome) -> bool:
    return bool(
        browser.execute_script("return window.phaserMark") == "not reloaded"
    )


def count_cell(browser: webdriver.Chrome, task: str, phase: str) -> str:
    """The overview's count of jobs of a task in a phase (read in one step
    in the page: the live part may be replaced at any moment)."""
    return str(
        browser.execute_script(
            "const cell = document.querySelector(arguments[0]);"
            "return cell ? cell.textContent.trim() : '0';",
            f'td[data-task="{task}"][data-phase="{phase}"]',
        )
    )


def test_overview_counts_match_the_jobs_and_follow_them_live(
    browser: webdriver.Chrome,
    ui: Stack,
    api: httpx.Client,
    tmp_path: Path,
) -> None:
    for _ in range(3):
        create_job(api, "echo", {})
    done = [create_job(api, "noop", {}, start=True) for _ in range(2)]
    for job in done:
        wait_for(api, job["id"], {"COMPLETED"})
    browser.get(f"{ui.url}/")  # the front page is the dashboard
    assert browser.current_url == f"{ui.url}/ui"
    assert count_cell(browser, "echo", "PENDING") == "3"
    assert count_cell(browser, "noop", "COMPLETED") == "2"
    stats = api.get("/api/v1/stats").json()
    assert stats["counts"] == {
        "echo": {"PENDING": 3},
        "noop": {"COMPLETED": 2},
    }
    assert "Workers" in text(browser, "#workers-heading")
    assert browser.find_elements(By.CSS_SELECTOR, "#workers tbody tr")
    mark_page(browser)
    # A change elsewhere shows without a reload.
    create_job(api, "echo", {})
    until(browser, lambda b: count_cell(b, "echo", "PENDING") == "4")
    assert still_marked(browser)
    shot(browser, "overview", tmp_path)


def test_submit_form_job_appears_in_list_and_progresses_live(
    browser: webdriver.Chrome, ui: Stack, api: httpx.Client, tmp_path: Path
) -> None:
    browser.get(f"{ui.url}/ui/jobs")
    mark_page(browser)
    listing = browser.current_window_handle
    browser.switch_to.new_window("tab")
    try:
        browser.get(f"{ui.url}/ui/tasks/sleep")
        # The form is made from the task's JSON Schema: the constraint
        # and the description are shown, and the browser enforces them.
        seconds = browser.find_element(By.ID, "p-seconds")
        assert seconds.get_attribute("type") == "number"
        assert seconds.get_attribute("max") == "86400"
        assert "How long to sleep" in text(browser, "#p-seconds-help")
        shot(browser, "submit", tmp_path)
        seconds.clear()
        seconds.send_keys("3")
        browser.find_element(By.ID, "run-id").send_keys("from-the-form")
        browser.find_element(By.ID, "submit").click()
        until(browser, lambda b: "/ui/jobs/" in b.current_url)
        job_id = browser.current_url.rsplit("/", 1)[1]
        mark_page(browser)
        seen: set[str] = set()

        def progressed(b: webdriver.Chrome) -> bool:
            found = b.find_elements(By.ID, "percent")
            if found and found[0].text:
                seen.add(found[0].text)
            return text(b, "#phase") == "COMPLETED"

        until(browser, progressed)
        seen.add(text(browser, "#percent"))  # as it ended
        assert still_marked(browser)
        # The bar moved through at least two values on the way.
        assert len(seen) >= 2, seen
        assert "100%" in seen
        assert "slept 3 s" in text(browser, "#results-heading ~ article")
        history = text(browser, "#history").splitlines()
        assert [line.split(" — ")[1] for line in history] == [
            "QUEUED",  # started at once
            "EXECUTING",
            "COMPLETED",
        ]
        shot(browser, "job", tmp_path)
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        assert job["run_id"] == "from-the-form"
        assert job["parameters"] == {"seconds": 3.0}
    finally:
        browser.close()
        browser.switch_to.window(listing)
    # The list that was open all along gained the row and followed it.
    until_row(browser, job_id, "COMPLETED")
    assert still_marked(browser)
    shot(browser, "jobs", tmp_path)


def test_form_constraints_are_checked_before_sending_and_after(
    browser: webdriver.Chrome, ui: Stack, api: httpx.Client
) -> None:
    before = api.get("/api/v1/stats").json()["totals"]
    browser.get(f"{ui.url}/ui/tasks/cone")
    ra = browser.find_element(By.ID, "p-ra")
    ra.send_keys("400")  # the schema says < 360
    form = browser.find_element(By.ID, "submit-form")
    assert (
        browser.execute_script("return arguments[0].checkValidity()", form)
        is False
    )
    browser.find_element(By.ID, "submit").click()
    assert browser.current_url == f"{ui.url}/ui/tasks/cone"  # not sent
    # A JSON field is checked before sending too.
    browser.get(f"{ui.url}/ui/tasks/echo")
    area = browser.find_element(By.ID, "p-parameters")
    area.clear()
    area.send_keys("{not json")
    assert browser.execute_script(
        "return arguments[0].validationMessage", area
    ).startswith("Not valid JSON")
    # Sent anyway (no browser checks), the server refuses, changes nothing.
    browser.get(f"{ui.url}/ui/tasks/cone")
    csrf = browser.find_element(By.NAME, "csrf").get_attribute("value")
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    answer = httpx.post(
        f"{ui.url}/ui/tasks/cone",
        data={"csrf": csrf, "p.ra": "400", "p.dec": "0", "p.radius": "1"},
        cookies=cookies,
    )
    assert answer.status_code == 422
    assert "ra" in answer.text.lower()
    assert "360" in answer.text
    assert api.get("/api/v1/stats").json()["totals"] == before


def test_abort_and_delete_from_the_job_page_ask_first(
    browser: webdriver.Chrome, ui: Stack, api: httpx.Client
) -> None:
    job = create_job(api, "sleep", {"seconds": 60}, start=True)
    wait_for(api, job["id"], {"EXECUTING"})
    browser.get(f"{ui.url}/ui/jobs/{job['id']}")
    assert not browser.find_element(By.ID, "start").is_displayed()
    browser.find_element(By.ID, "abort").click()
    assert "Abort job" in text(browser, "h1")
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["phase"] == "EXECUTING"
    browser.find_element(By.ID, "confirm").click()
    until(browser, lambda b: text(b, "#phase") == "ABORTED")
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["phase"] == "ABORTED"
    assert not browser.find_element(By.ID, "abort").is_displayed()
    # Delete: asked, then gone.
    browser.find_element(By.ID, "delete").click()
    browser.find_element(By.ID, "confirm").click()
    until(browser, lambda b: b.current_url.endswith("/ui/jobs"))
    assert api.get(f"/api/v1/jobs/{job['id']}").status_code == 404


def set_hidden(browser: webdriver.Chrome, hidden: bool) -> None:
    """Tell the page it went to the background (or came back), as a
    browser does when its tab is switched."""
    browser.execute_script(
        "Object.defineProperty(document, 'hidden',"
        " {value: arguments[0], configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'));",
        hidden,
    )


def test_a_background_tab_closes_its_stream_and_catches_up(
    browser: webdriver.Chrome, ui: Stack, api: httpx.Client
) -> None:
    browser.get(f"{ui.url}/ui/jobs")
    mark_page(browser)
    # While shown, a new job appears at the top as it is created.
    job = create_job(api, "echo", {})
    until(
        browser,
        lambda b: (
            b.find_element(By.CSS_SELECTOR, "#jobs tbody tr").get_attribute(
                "id"
            )
            == f"job-{job['id']}"
        ),
    )
    assert browser.execute_script("return streams.size") == 1
    set_hidden(browser, True)
    assert browser.execute_script("return streams.size") == 0
    # Changed while nobody listens: the page learns it when shown again.
    api.post(f"/api/v1/jobs/{job['id']}/abort")
    set_hidden(browser, False)
    assert browser.execute_script("return streams.size") == 1
    until_row(browser, job["id"], "ABORTED")
    assert still_marked(browser)


def test_a_reconnecting_list_stream_sends_its_rows_as_they_are(
    ui: Stack, api: httpx.Client
) -> None:
    job = create_job(api, "echo", {})
    for extra in (
        {"params": {"resync": "1"}},
        {"headers": {"Last-Event-ID": "1"}},
    ):
        params = {"ids": job["id"], **extra.get("params", {})}
        with api.stream(
            "GET",
            "/ui/jobs/stream",
            params=params,
            headers=extra.get("headers", {}),
        ) as stream:
            lines = stream.iter_lines()
            for line in lines:
                if line.startswith("event:"):
                    assert line == "event: row"
                    assert job["id"] in next(lines)
                    break


def test_start_and_destruction_time_from_the_job_page(
    browser: webdriver.Chrome, ui: Stack, api: httpx.Client
) -> None:
    job = create_job(api, "sleep", {"seconds": 1})
    browser.get(f"{ui.url}/ui/jobs/{job['id']}")
    browser.find_element(By.ID, "start").click()
    until(browser, lambda b: text(b, "#phase") == "COMPLETED")
    assert not browser.find_element(By.ID, "start").is_displayed()
    assert not browser.find_element(By.ID, "abort").is_displayed()
    field = browser.find_element(By.ID, "destruction-time")
    browser.execute_script("arguments[0].value = '2026-12-01T12:30'", field)
    field.submit()
    until(browser, lambda b: "2026-12-01 12:30:00 UTC" in text(b, ".fields"))
    changed = api.get(f"/api/v1/jobs/{job['id']}").json()
    assert changed["destruction_time"].startswith("2026-12-01T12:30:00")


def test_forms_without_the_csrf_token_change_nothing(
    browser: webdriver.Chrome, ui: Stack, api: httpx.Client
) -> None:
    job = create_job(api, "echo", {})
    browser.get(f"{ui.url}/ui/jobs/{job['id']}")
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    csrf_cookie = [
        c for c in browser.get_cookies() if c["name"] == "phaser_csrf"
    ]
    assert csrf_cookie
    assert csrf_cookie[0]["httpOnly"]
    assert csrf_cookie[0]["sameSite"] == "Strict"
    url = f"{ui.url}/ui/jobs/{job['id']}/abort"
    # No token; a wrong one; the right one from another site.
    right = {"csrf": cookies["phaser_csrf"]}
    for data, headers in (
        ({}, {}),
        ({"csrf": "x" * 43}, {}),
        (right, {"Sec-Fetch-Site": "cross-site"}),
        (right, {"Origin": "https://evil.example"}),
    ):
        answer = httpx.post(url, data=data, cookies=cookies, headers=headers)
        assert answer.status_code == 403, (data, headers)
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["phase"] == "PENDING"
    # The page's own form works.
    assert httpx.post(url, data=right, cookies=cookies).status_code == 303
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["phase"] == "ABORTED"


def test_results_are_previewed_and_downloadable(
    browser: webdriver.Chrome, ui: Stack, api: httpx.Client
) -> None:
    job = create_job(
        api,
        "cone",
        {"ra": 10, "dec": 20, "radius": 1, "maxrec": 5},
        start=True,
    )
    wait_for(api, job["id"], {"COMPLETED"})
    browser.get(f"{ui.url}/ui/jobs/{job['id']}")
    table = browser.find_element(By.CSS_SELECTOR, "table.preview")
    headers = [h.text for h in table.find_elements(By.CSS_SELECTOR, "th")]
    assert "ra" in [h.lower() for h in headers]
    assert len(table.find_elements(By.CSS_SELECTOR, "tbody tr")) == 5
    link = browser.find_element(By.CSS_SELECTOR, "article.result h3 a")
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    download = httpx.get(str(link.get_attribute("href")), cookies=cookies)
    assert download.status_code == 200
    assert b"VOTABLE" in download.content


def test_pages_pass_axe_and_work_with_the_keyboard(
    browser: webdriver.Chrome, ui: Stack, api: httpx.Client
) -> None:
    job = create_job(api, "noop", {}, start=True)
    wait_for(api, job["id"], {"COMPLETED"})
    for path in (
        "/ui",
        "/ui/jobs",
        f"/ui/jobs/{job['id']}",
        f"/ui/jobs/{job['id']}/delete",
        "/ui/tasks/cone",
        "/ui/tasks/echo",
    ):
        browser.get(f"{ui.url}{path}")
        assert axe_violations(browser) == [], path
    # The checker does see problems: a control without a label, grey on
    # white.
    browser.execute_script(
        "const main = document.querySelector('main');"
        "main.insertAdjacentHTML('beforeend',"
        " '<input id=bad><p id=faint>Faint text few can read</p>');"
        "document.getElementById('faint').style.color = '#bbb';"
    )
    assert {v["id"] for v in axe_violations(browser)} >= {
        "label",
        "color-contrast",
    }
    # The submit form from the keyboard alone: tab to the field, type,
    # tab to the button, press Enter.
    browser.get(f"{ui.url}/ui/tasks/sleep")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)

    def active() -> WebElement:
        return browser.switch_to.active_element

    for _ in range(30):
        if active().get_attribute("id") == "p-seconds":
            break
        active().send_keys(Keys.TAB)
    else:
        raise AssertionError("the seconds field cannot be reached with Tab")
    active().send_keys(Keys.CONTROL, "a")
    active().send_keys("0")
    for _ in range(10):
        if active().get_attribute("id") == "submit":
            break
        active().send_keys(Keys.TAB)
    else:
        raise AssertionError("the submit button cannot be reached with Tab")
    active().send_keys(Keys.ENTER)
    until(browser, lambda b: "/ui/jobs/" in b.current_url)
    try:
        until(browser, lambda b: text(b, "#phase") == "COMPLETED")
    except Exception:
        print(browser.find_element(By.TAG_NAME, "main").text)
        raise


# -- token mode: login, sessions, owners --------------------------------------


@pytest.fixture(scope="module")
def secured(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, dict[str, str], Path]]:
    data = tmp_path_factory.mktemp("ui-token")
    stack = Stack(redis_server.url, data, auth="token")
    tokens = {
        "ann": add_user(stack, "ann"),
        "bob": add_user(stack, "bob"),
        "root": add_user(stack, "root", admin=True),
    }
    log = data / "frontend.log"
    stack.start_worker()
    stack.start_frontend(log=log)
    yield stack, tokens, log
    stack.stop()


def log_in(browser: webdriver.Chrome, url: str, token: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{url}/ui")
    until(browser, lambda b: "/ui/login" in b.current_url)
    field = browser.find_element(By.ID, "token")
    field.send_keys(token)
    field.submit()
    until(browser, lambda b: b.current_url.endswith("/ui"))


def test_token_mode_login_keeps_the_token_out_of_urls_and_script(
    browser: webdriver.Chrome,
    secured: tuple[Stack, dict[str, str], Path],
    tmp_path: Path,
) -> None:
    stack, tokens, log = secured
    browser.delete_all_cookies()
    browser.get(f"{stack.url}/ui/jobs")
    assert "/ui/login" in browser.current_url
    shot(browser, "login", tmp_path)
    assert axe_violations(browser) == []
    field = browser.find_element(By.ID, "token")
    field.send_keys("not-a-token")
    field.submit()
    until(browser, lambda b: "No user has that token" in text(b, "main"))
    field = browser.find_element(By.ID, "token")
    field.send_keys(tokens["ann"])
    field.submit()
    # Back where the login interrupted.
    until(browser, lambda b: b.current_url.endswith("/ui/jobs"))
    assert "ann" in text(browser, ".who")
    assert tokens["ann"] not in browser.current_url
    assert tokens["ann"] not in str(
        browser.execute_script("return document.cookie")
    )
    [session] = [
        c for c in browser.get_cookies() if c["name"] == "phaser_token"
    ]
    assert session["httpOnly"]
    assert "expiry" not in session  # a session cookie
    assert session["sameSite"] == "Strict"
    assert session["path"] == "/ui"
    # Log out: the session is gone.
    browser.find_element(By.CSS_SELECTOR, ".who button").click()
    until(browser, lambda b: "/ui/login" in b.current_url)
    browser.get(f"{stack.url}/ui/jobs")
    assert "/ui/login" in browser.current_url
    assert tokens["ann"] not in log.read_text()


def test_a_second_user_cannot_see_or_touch_the_first_users_jobs(
    browser: webdriver.Chrome, secured: tuple[Stack, dict[str, str], Path]
) -> None:
    stack, tokens, _ = secured
    with httpx.Client(
        base_url=stack.url,
        headers={"Authorization": f"Bearer {tokens['ann']}"},
        timeout=30,
    ) as ann:
        job = create_job(ann, "sleep", {"seconds": 60}, start=True)
        wait_for(ann, job["id"], {"EXECUTING"})
    log_in(browser, stack.url, tokens["bob"])
    assert count_cell(browser, "sleep", "EXECUTING") == "0"
    browser.get(f"{stack.url}/ui/jobs")
    assert not browser.find_elements(By.ID, f"job-{job['id']}")
    # Bob's live list is not told of Ann's new jobs either.
    mark_page(browser)
    with httpx.Client(
        base_url=stack.url,
        headers={"Authorization": f"Bearer {tokens['ann']}"},
        timeout=30,
    ) as ann:
        other = create_job(ann, "echo", {})
        browser.get(f"{stack.url}/ui/jobs/{job['id']}")
        assert "Error 404" in text(browser, "h1")
        # Bob's own form, aimed at Ann's job: not found, nothing changes.
        browser.get(f"{stack.url}/ui/jobs")
        assert not browser.find_elements(By.ID, f"job-{other['id']}")
        cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
        answer = httpx.post(
            f"{stack.url}/ui/jobs/{job['id']}/abort",
            data={"csrf": cookies["phaser_csrf"]},
            cookies=cookies,
        )
        assert answer.status_code == 404
        assert ann.get(f"/api/v1/jobs/{job['id']}").json()["phase"] == (
            "EXECUTING"
        )
        # Ann's ids smuggled into Bob's live list stream show nothing.
        with httpx.stream(
            "GET",
            f"{stack.url}/ui/jobs/stream",
            params={"ids": job["id"]},
            cookies=cookies,
            timeout=30,
        ) as stream:
            ann.post(f"/api/v1/jobs/{job['id']}/abort")
            lines = stream.iter_lines()
            assert next(lines) == "id: 1"
            assert next(lines) == ": live"
            deadline = time.monotonic() + 3
            got = []
            for line in lines:
                got.append(line)
                if time.monotonic() > deadline or line.startswith("event"):
                    break
            assert not [line for line in got if job["id"] in line]
    # An admin sees everyone's, by owner.
    log_in(browser, stack.url, tokens["root"])
    browser.get(f"{stack.url}/ui/jobs?owner=ann")
    assert browser.find_elements(By.ID, f"job-{job['id']}")
    browser.get(f"{stack.url}/ui?owner=*")
    assert count_cell(browser, "echo", "PENDING") != "0"


def test_open_streams_end_when_the_server_stops(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    stack = Stack(redis_server.url, tmp_path / "data")
    log = tmp_path / "frontend.log"
    stack.start_frontend(log=log)
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            job = create_job(client, "echo", {})
            paths = [
                f"/ui/jobs/{job['id']}/stream",
                f"/ui/jobs/stream?ids={job['id']}",
                "/ui/stream",
                f"/api/v1/jobs/{job['id']}/events",
            ]
            with contextlib.ExitStack() as open_streams:
                readers = [
                    open_streams.enter_context(
                        client.stream("GET", path)
                    ).iter_lines()
                    for path in paths
                ]
                for reader in readers:
                    next(reader)  # each stream is open
                assert stack.frontend is not None
                stack.frontend.terminate()
                for reader in readers:
                    for _ in reader:  # each stream ends (EOF)
                        pass
            assert stack.frontend.wait(30) == 0
    finally:
        stack.stop()
    # uvicorn did not have to cancel them at its graceful-shutdown timeout.
    assert "graceful shutdown exceeded" not in log.read_text()


def test_bad_requests_to_the_dashboard_get_4xx_pages_and_change_nothing(
    ui: Stack, api: httpx.Client
) -> None:
    job = create_job(api, "echo", {})
    before = api.get("/api/v1/stats").json()["counts"]
    unknown = "0" * 26
    with httpx.Client(base_url=ui.url, timeout=30) as page:
        page.get("/ui")  # the CSRF cookie
        csrf = page.cookies["phaser_csrf"]
        gets = [
            "/ui/jobs?phase=NOPE",
            "/ui/jobs?after=yesterday",
            "/ui/jobs?after=99999-01-01T00:00",
            "/ui/jobs?cursor=zzz",
            "/ui/jobs?limit=0",
            "/ui/jobs?limit=100000",
            "/ui/jobs?task=" + "x" * 500,
            "/ui/jobs/not-a-job",
            f"/ui/jobs/{unknown}",
            f"/ui/jobs/{job['id']}/frobnicate",
            f"/ui/jobs/{job['id']}/results/nope",
            f"/ui/jobs/{unknown}/stream",
            "/ui/jobs/stream?ids=bad",
            "/ui/jobs/stream?ids=" + ",".join([unknown] * 300),
            "/ui/tasks/nope",
            "/ui/static/nope.js",
            "/ui/static/..%2F..%2Fpyproject.toml",
        ]
        for path in gets:
            answer = page.get(path)
            assert 400 <= answer.status_code < 500, (path, answer.status_code)
        posts: list[tuple[str, dict[str, str]]] = [
            ("/ui/tasks/sleep", {"p.seconds": "abc"}),
            ("/ui/tasks/sleep", {"p.seconds": "1e999"}),
            ("/ui/tasks/sleep", {"p.seconds": "nan"}),
            ("/ui/tasks/sleep", {"p.seconds": "-1"}),
            ("/ui/tasks/sleep", {"execution_duration": "soon"}),
            ("/ui/tasks/sleep", {"execution_duration": "9" * 40}),
            ("/ui/tasks/sleep", {"execution_duration": "-5"}),
            ("/ui/tasks/sleep", {"run_id": "bad\x00id"}),
            ("/ui/tasks/sleep", {"unknown": "1", "p.nope": "2"}),
            ("/ui/tasks/echo", {"p.parameters": "[1]"}),
            ("/ui/tasks/echo", {"p.parameters": '{"a": "\\u0000"}'}),
            ("/ui/tasks/echo", {"p.parameters": "[" * 5000 + "]" * 5000}),
            ("/ui/tasks/echo", {"p.parameters": '{"a": 1e999}'}),
            ("/ui/tasks/nope", {}),
            (f"/ui/jobs/{job['id']}/destruction", {"destruction_time": "x"}),
            (
                f"/ui/jobs/{job['id']}/destruction",
                {"destruction_time": "0001-01-01T00:00"},
            ),
            (f"/ui/jobs/{job['id']}/destruction", {}),
            (f"/ui/jobs/{unknown}/abort", {}),
            (f"/ui/jobs/{unknown}/delete", {}),
            (f"/ui/jobs/{unknown}/start", {}),
        ]
        for path, data in posts:
            answer = page.post(path, data={"csrf": csrf, **data})
            assert 400 <= answer.status_code < 500, (
                path,
                data,
                answer.status_code,
            )
            assert answer.headers["content-type"].startswith("text/html")
        # Bytes that are not UTF-8 in a form.
        answer = page.post(
            "/ui/tasks/sleep",
            content=b"csrf="
            + csrf.encode()
            + b"&p.seconds=%ED%A0%80&run_id=%FF",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert 400 <= answer.status_code < 500
    assert api.get("/api/v1/stats").json()["counts"] == before
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["phase"] == "PENDING"


def test_submit_form_sends_the_files_a_task_takes(
    browser: webdriver.Chrome, ui: Stack, api: httpx.Client, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("one\ntwo\nthree\n")
    browser.get(f"{ui.url}/ui/tasks/lines")
    # The task's Upload field is a file input, required; not a parameter.
    chooser = browser.find_element(By.ID, "f-text")
    assert chooser.get_attribute("type") == "file"
    assert chooser.get_attribute("required") is not None
    assert not browser.find_elements(By.ID, "p-text")
    chooser.send_keys(str(notes))
    browser.find_element(By.ID, "p-label").send_keys("-seen")
    browser.find_element(By.ID, "submit").click()
    until(browser, lambda b: "/ui/jobs/" in b.current_url)
    job_id = browser.current_url.rsplit("/", 1)[1]
    until(browser, lambda b: text(b, "#phase") == "COMPLETED")
    job = api.get(f"/api/v1/jobs/{job_id}").json()
    assert [u["name"] for u in job["uploads"]] == ["text"]
    assert api.get(job["uploads"][0]["href"]).text == notes.read_text()
    result = api.get(job["results"][0]["href"]).text
    assert result == "lines-seen 3 ['text']"


def test_hold_and_start_again_from_the_job_page(
    browser: webdriver.Chrome, ui: Stack, api: httpx.Client
) -> None:
    job = api.post(
        "/api/v1/jobs",
        json={
            "task": "echo",
            "parameters": {},
            "run_after": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
            "priority": 3,
        },
    ).json()
    browser.get(f"{ui.url}/ui/jobs/{job['id']}")
    assert "held until then" in text(browser, "#live")
    assert "3 (0–9, higher runs first)" in text(browser, "#live")
    # HELD: Start (release) is offered, Hold is not.
    assert browser.find_element(By.ID, "start").is_displayed()
    assert not browser.find_element(By.ID, "hold").is_displayed()
    browser.find_element(By.ID, "start").click()
    until(browser, lambda b: text(b, "#phase") == "COMPLETED")
    pending = api.post(
        "/api/v1/jobs", json={"task": "echo", "parameters": {}}
    ).json()
    browser.get(f"{ui.url}/ui/jobs/{pending['id']}")
    browser.find_element(By.ID, "hold").click()
    until(browser, lambda b: text(b, "#phase") == "HELD")
    assert api.get(f"/api/v1/jobs/{pending['id']}").json()["phase"] == "HELD"


def test_the_job_page_shows_what_a_job_waits_for_and_its_parent(
    browser: webdriver.Chrome, ui: Stack, api: httpx.Client
) -> None:
    first = api.post(
        "/api/v1/jobs",
        json={"task": "sleep", "parameters": {"seconds": 30}, "start": True},
    ).json()
    waiting = api.post(
        "/api/v1/jobs",
        json={
            "task": "echo",
            "after": [first["id"]],
            "parent_id": first["id"],
            "concurrency_key": "nightly",
        },
    ).json()
    browser.get(f"{ui.url}/ui/jobs/{waiting['id']}")
    live = text(browser, "#live")
    assert "Waits for" in live
    assert "if one does not, this job fails" in live
    assert "nightly" in live
    # The links lead to the job it waits for (also its parent).
    links = browser.find_elements(
        By.CSS_SELECTOR, f"#live a[href$='/ui/jobs/{first['id']}']"
    )
    assert len(links) == 2
    # The job it waits for is aborted: this one fails (it would never
    # run), and the page follows.
    api.post(f"/api/v1/jobs/{first['id']}/abort")
    until(browser, lambda b: text(b, "#phase") == "ERROR")
    assert "ended ABORTED" in text(browser, "#live")


def test_suspend_and_resume_from_the_job_page(
    browser: webdriver.Chrome, ui: Stack, api: httpx.Client, tmp_path: Path
) -> None:
    job = api.post(
        "/api/v1/jobs",
        json={
            "task": "tick",
            "parameters": {"directory": str(tmp_path), "seconds": 30},
            "start": True,
        },
    ).json()
    browser.get(f"{ui.url}/ui/jobs/{job['id']}")
    until(browser, lambda b: text(b, "#phase") == "EXECUTING")
    until(browser, lambda b: b.find_element(By.ID, "suspend").is_displayed())
    browser.find_element(By.ID, "suspend").click()
    until(browser, lambda b: text(b, "#phase") == "SUSPENDED")
    assert not browser.find_element(By.ID, "suspend").is_displayed()
    # The list's phase filter has the new phases.
    browser.get(f"{ui.url}/ui/jobs?phase=SUSPENDED")
    assert job["id"] in text(browser, "main")
    browser.get(f"{ui.url}/ui/jobs/{job['id']}")
    browser.find_element(By.ID, "resume").click()
    until(browser, lambda b: text(b, "#phase") == "EXECUTING")
    api.post(f"/api/v1/jobs/{job['id']}/abort")
    # An async task's page offers no Suspend.
    other = api.post(
        "/api/v1/jobs",
        json={"task": "sleep", "parameters": {"seconds": 30}, "start": True},
    ).json()
    browser.get(f"{ui.url}/ui/jobs/{other['id']}")
    until(browser, lambda b: text(b, "#phase") == "EXECUTING")
    assert not browser.find_element(By.ID, "suspend").is_displayed()
    api.post(f"/api/v1/jobs/{other['id']}/abort")


def test_the_job_page_shows_messages_and_childrens_counts_live(
    browser: webdriver.Chrome, ui: Stack, api: httpx.Client, evidence: Path
) -> None:
    parent = api.post(
        "/api/v1/jobs",
        json={
            "task": "sleep",
            "parameters": {"seconds": 30},
            "start": True,
            "description": "the nightly batch",
        },
    ).json()
    child = api.post(
        "/api/v1/jobs",
        json={
            "task": "chatty",
            "parameters": {"directory": str(evidence), "locked": True},
            "parent_id": parent["id"],
            "start": True,
        },
    ).json()
    done = api.post(
        "/api/v1/jobs",
        json={
            "task": "echo",
            "parent_id": parent["id"],
            "start": True,
        },
    ).json()
    wait_for(api, done["id"], {"COMPLETED"})
    wait_for_file(evidence / f"{child['id']}.locked")
    browser.get(f"{ui.url}/ui/jobs/{parent['id']}")
    assert text(browser, "#description") == "the nightly batch"
    until(
        browser,
        lambda b: (
            text(b, "#children [data-group='running']") == "1"
            and text(b, "#children [data-group='succeeded']") == "1"
        ),
    )
    # The child's page: its messages and why it cannot be aborted now.
    browser.get(f"{ui.url}/ui/jobs/{child['id']}")
    until(browser, lambda b: "migrating step" in text(b, "#live"))
    messages = text(browser, "#messages")
    assert "line 0" in messages
    assert "line 2" in messages
    assert "careful" in messages
    assert "migrating step" in text(browser, "#no-abort")
    # It leaves the section (live: the notice goes), and is aborted; the
    # parent's page counts it as aborted without a reload.
    (evidence / f"{child['id']}.release").write_text("go")
    until(browser, lambda b: not b.find_elements(By.CSS_SELECTOR, "#no-abort"))
    browser.get(f"{ui.url}/ui/jobs/{parent['id']}")
    mark_page(browser)
    api.post(f"/api/v1/jobs/{child['id']}/abort").raise_for_status()
    until(
        browser,
        lambda b: (
            text(b, "#children [data-group='aborted']") == "1"
            and text(b, "#children [data-group='running']") == "0"
        ),
    )
    assert still_marked(browser)
    # The count links to the children's list.
    browser.find_element(
        By.CSS_SELECTOR, "#live a[href*='parent_id=']"
    ).click()
    until(browser, lambda b: "children of" in text(b, "caption"))
    rows = browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 2
    # The list says how many match, every page together.
    assert text(browser, "#total") == "2 jobs"
