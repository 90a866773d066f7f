"""Debian's chromium, headless, through Selenium: what takes the report's screenshot and what its tests drive."""

import shutil

from arabic_sft.runtime.errors import UserError


def headless_chromium(width: int = 1400, height: int = 1000, logs: bool = False, strategy: str = "normal"):
    """A Selenium driver of headless chromium (`logs`: the browser console and the network events kept, for
    `driver.get_log`; `strategy`: Selenium's page load strategy, "none" to return before the page has loaded); one
    `UserError` line when chromium or chromedriver is missing."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        raise UserError("chromium and chromedriver are missing (make browser installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.page_load_strategy = strategy
    if logs:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
