"""Headless Chromium (Debian's `chromium` and `chromium-driver`) driven by Selenium, for the web
console's tests: a 1280x800 window, as on a dispatch console screen.

Selenium is pointed at the system browser and driver, so nothing is downloaded. Each `Browser` is
one browser process with its own profile (two dispatchers = two browsers); it is closed by its
fixture even after a failed test. `screenshot` saves a PNG under the test's folder for a person to
look at.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTH, HEIGHT = 1280, 800

T = TypeVar("T")


def chromium_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} is not installed (scripts/setup installs chromium and chromium-driver)"
    return None


class Browser:
    def __init__(self, shots: Path) -> None:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in (
            "--headless=new",
            "--no-sandbox",  # tests run as root on CI, where Chromium's sandbox refuses to start
            "--disable-dev-shm-usage",
            "--disable-gpu",
            f"--window-size={WIDTH},{HEIGHT}",
            "--force-device-scale-factor=1",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-renderer-backgrounding",
            "--disable-background-timer-throttling",
            "--lang=en-CA",
        ):
            options.add_argument(arg)
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        # The page itself 1280x800, as on a dispatch screen (the window's size includes none of
        # a headless browser's frame, but the viewport would be smaller without this).
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
        )
        self.driver.set_page_load_timeout(30)
        self.driver.set_script_timeout(30)
        self.shots = shots
        shots.mkdir(parents=True, exist_ok=True)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def run(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait_for(self, what: str, check: Callable[[], T | None], timeout: float = 10.0) -> T:
        """`check()` until it gives something true; fails naming `what` (and saves a screenshot)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = check()
            except (StaleElementReferenceException, WebDriverException):
                value = None  # the page redrew the element between two calls: ask again
            if value:
                return value
            if time.monotonic() > deadline:
                shot = self.screenshot(f"timeout-{what.replace(' ', '-')[:40]}")
                raise AssertionError(f"{what}: not seen within {timeout} s (screenshot {shot})")
            time.sleep(0.02)

    def text_of(self, css: str) -> str:
        found = self.find_all(css)
        return " ".join(e.text for e in found)

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def close(self) -> None:
        with contextlib.suppress(WebDriverException):
            self.driver.quit()
