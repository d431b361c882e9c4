"""What a person sees in a real browser (Debian's headless Chromium,
driven by Selenium): UWS documents as readable pages."""

from __future__ import annotations

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By

from conftest import Stack, create_job


def test_uws_job_and_list_render_as_pages_in_a_browser(
    browser: webdriver.Chrome, stack: Stack, client: httpx.Client
) -> None:
    job = create_job(client, "echo", {"greeting": "hello"}, run_id="web")
    browser.get(f"{stack.url}/echo/jobs/{job['id']}")
    assert browser.find_element(By.TAG_NAME, "h1").text == (
        f"UWS job {job['id']}"
    )
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "PENDING" in body
    assert "greeting hello" in body
    assert "XSLT" not in body  # rendered by phaser, not the browser
    browser.get(f"{stack.url}/echo/jobs")
    link = browser.find_element(By.LINK_TEXT, job["id"])
    link.click()
    assert browser.current_url.endswith(f"/echo/jobs/{job['id']}")
    assert job["id"] in browser.find_element(By.TAG_NAME, "h1").text
    # XML clients still get XML.
    xml = client.get(f"/echo/jobs/{job['id']}")
    assert xml.headers["content-type"].startswith("application/xml")
