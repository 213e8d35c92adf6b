"""Headless Chromium for the dashboard's end-to-end tests, driven by Selenium through the Debian packages
`chromium` and `chromium-driver` (no browser download). Without them the tests are skipped locally, and fail
under CI (CI set), where `.ci/run` installs them."""

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SCREENSHOTS = ROOT / ".artifacts" / "screenshots"
CHROMIUM = os.environ.get("MOCKBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MOCKBENCH_CHROMEDRIVER", "/usr/bin/chromedriver")


def _missing() -> list[str]:
    return [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).is_file() or shutil.which(p))]


@pytest.fixture(scope="session")
def chrome_paths() -> tuple[str, str]:
    missing = _missing()
    if missing:
        reason = (f"{', '.join(missing)} not installed: the dashboard's browser tests need the Debian packages "
                  "chromium and chromium-driver (apt-get install chromium chromium-driver)")
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"CI is set and {reason}")
        pytest.skip(reason)
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def browser(chrome_paths, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = chrome_paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1600,1000", "--lang=fr-FR", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot(browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        browser.save_screenshot(str(path))
        return path

    return take
