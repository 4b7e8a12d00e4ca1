"""Headless Chromium for end-to-end tests, driven by Selenium from an asyncio test.

The node under test serves HTTP in the test's own event loop, and Selenium's calls block until the
page has done its work — which needs that loop. So every driver call runs in a worker thread
(``asyncio.to_thread``) while the loop keeps serving the page. The browser is the system's
Chromium with the flags from REFERENCES.md §6; nothing is ever downloaded (an explicit driver path
and binary keep selenium-manager out of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM_BINARY = Path("/usr/lib/chromium/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

# REFERENCES.md §6. The resolver rule stops background look-ups of outside hosts; the loopback
# flag makes Chromium offer 127.0.0.1 ICE candidates; the fake devices give a test pattern and a
# beep without a permission prompt.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--allow-loopback-in-peer-connection",
)

# Polls a PeerConnection's stats until video frames were decoded and audio energy arrived, or a
# deadline passes; answers the last figures either way so the test asserts on real numbers.
INBOUND_MEDIA_JS = """
const [pcPath, deadlineMs, done] = arguments;
const started = performance.now();
const figures = {framesDecoded: 0, totalAudioEnergy: 0, frameWidth: 0, errors: []};
// Chromium's getStats() can stall while a description is being applied: race it.
const stalled = () => new Promise((resolve) => setTimeout(() => resolve(new Map()), 2000));
async function sample() {
  // A dotted path from window, not eval(): the join page's CSP rightly forbids eval.
  const pc = pcPath.split(".").reduce((o, key) => (o == null ? o : o[key]), window);
  if (!pc) return;
  (await Promise.race([pc.getStats(), stalled()])).forEach((r) => {
    if (r.type !== "inbound-rtp") return;
    if (r.kind === "video") {
      figures.framesDecoded = Math.max(figures.framesDecoded, r.framesDecoded || 0);
      figures.frameWidth = Math.max(figures.frameWidth, r.frameWidth || 0);
    }
    if (r.kind === "audio") {
      figures.totalAudioEnergy = Math.max(figures.totalAudioEnergy, r.totalAudioEnergy || 0);
    }
  });
}
async function poll() {
  try {
    await sample();
  } catch (e) {
    figures.errors.push(String(e));
  }
  const enough = figures.framesDecoded > 0 && figures.totalAudioEnergy > 0;
  if (enough || performance.now() - started > deadlineMs) done(figures);
  else setTimeout(poll, 200);
}
poll();
"""


def unavailable(reason: str) -> NoReturn:
    """A missing browser is a failure on CI (where it is installed) and a skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


class Browser:
    """The few page operations the tests need, each bounded and run off the event loop."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    async def open(self, url: str) -> None:
        await asyncio.to_thread(self.driver.get, url)

    async def run(self, script: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.driver.execute_script, script, *args)

    async def run_async(self, script: str, *args: Any) -> Any:
        """``execute_async_script``: the script calls its last argument with the answer."""
        return await asyncio.to_thread(self.driver.execute_async_script, script, *args)

    async def wait_until(self, script: str, message: str, seconds: float = 10.0) -> Any:
        """Poll ``script`` (a function body that returns a value) until it is truthy."""
        wait = WebDriverWait(self.driver, seconds, poll_frequency=0.1)
        try:
            return await asyncio.to_thread(wait.until,
                                           lambda d: d.execute_script(script), message)
        except Exception as exc:
            raise AssertionError(f"{message}\nbrowser console:\n{self.console_text()}") from exc

    async def type_into(self, css: str, text: str) -> None:
        def type_text() -> None:
            field = self.driver.find_element(By.CSS_SELECTOR, css)
            field.clear()
            field.send_keys(text)

        await asyncio.to_thread(type_text)

    async def _fresh(self, action: Callable[[], Any]) -> Any:
        """The page re-renders lists on every event, so an element found a moment ago may be
        replaced before it is used: find it again (bounded)."""
        for attempt in range(20):
            try:
                return await asyncio.to_thread(action)
            except StaleElementReferenceException:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.05)
        return None

    async def click(self, css: str) -> None:
        await self._fresh(lambda: self.driver.find_element(By.CSS_SELECTOR, css).click())

    async def text(self, css: str) -> str:
        return str(await self._fresh(
            lambda: self.driver.find_element(By.CSS_SELECTOR, css).text))

    async def inbound_media(self, pc_path: str, seconds: float = 15.0) -> dict[str, Any]:
        """Decoded video frames and received audio energy of the PeerConnection at ``pc_path``
        (dotted, from ``window``), polled until both are non-zero (bounded)."""
        answer = await self.run_async(INBOUND_MEDIA_JS, pc_path, int(seconds * 1000))
        assert isinstance(answer, dict), answer
        return answer

    def console(self) -> list[dict[str, Any]]:
        """Console lines since the last call (Chromium hands each line out once)."""
        try:
            return list(self.driver.get_log("browser"))
        except Exception:
            return []

    def console_text(self) -> str:
        return "\n".join(f"{e.get('level')} {e.get('message')}" for e in self.console())


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Browser]:
    """A fresh headless Chromium with its own profile directory, quit however the test ends."""
    for path in (CHROMIUM_BINARY, CHROMEDRIVER):
        if not path.exists():
            unavailable(f"{path} is not installed")
    options = Options()
    options.binary_location = str(CHROMIUM_BINARY)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    await asyncio.to_thread(profile.mkdir, parents=True, exist_ok=True)
    driver = await asyncio.to_thread(webdriver.Chrome, options=options,
                                     service=Service(str(CHROMEDRIVER)))
    try:
        driver.set_page_load_timeout(20)
        driver.set_script_timeout(30)
        yield Browser(driver)
    finally:
        await asyncio.to_thread(driver.quit)
