"""Headless Chromium for the report's browser test and bench/report_load.py: Debian's
chromium and chromium-driver driven by selenium, never a downloaded browser."""

from __future__ import annotations

import shutil


def available() -> bool:
    """Whether Debian's chromium and chromium-driver are installed."""
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


def headless_chromium(width: int = 1300, height: int = 1000, *, log: bool = False):
    """A selenium driver of headless Chromium with a ``width`` x ``height`` window; with
    ``log``, it keeps the network (performance) and console (browser) logs."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium")
    if log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(
        options=options, service=webdriver.ChromeService(shutil.which("chromedriver"))
    )
