"""The static leaderboard page in a real headless Chromium: the table renders, the plot loads,
header clicks sort rows (numbers as numbers, empty cells last) and the console stays clean.

Needs Debian's Chromium and ChromeDriver (`apt-get install -y chromium chromium-driver`); without
them the test fails rather than skips, so that CI cannot silently lose it."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from conftest import full_metrics, record, write

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1600,1200",
)  # fmt: skip

# method: (erasure score, unlearn seconds, ce_excess@10); d has no ce_excess@10 (an empty cell)
METHODS = {
    "a": (0.6, 10.0, 0.3),
    "b": (0.5, 2.0, 0.9),
    "c": (0.8, 100.0, 0.1),
    "d": (0.4, 5e-5, None),
}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    from leaderboard.html import write_site

    for method, (score, seconds, excess) in METHODS.items():
        for seed in range(2):
            m = full_metrics(score, unlearn_seconds=seconds * (1 + seed))
            m["ce_excess@10"] = math.nan if excess is None else excess
            write(tmp_path / "results", record(method=method, seed=seed, metrics=m))
    return write_site(tmp_path / "results", tmp_path / "site")


@pytest.fixture
def driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install Debian's Chromium and its driver with "
            "`apt-get install -y chromium chromium-driver`"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # never let selenium-manager go to the network (or send usage statistics)
    monkeypatch.setenv("SE_OFFLINE", "true")
    monkeypatch.setenv("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def _methods(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "table.sortable tbody tr")
    return [r.find_elements(By.TAG_NAME, "td")[1].text.split()[0] for r in rows]


def _header(driver, prefix: str):
    from selenium.webdriver.common.by import By

    heads = driver.find_elements(By.CSS_SELECTOR, "table.sortable thead th")
    [th] = [h for h in heads if h.text.split()[0] == prefix]
    return th


def test_page_in_headless_chromium(site: Path, driver) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(site.as_uri())
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )
    assert driver.title == "tracer-bench leaderboard"
    assert driver.find_element(By.CSS_SELECTOR, "section h2").text == "toy@1.0"

    # the table: four methods, ranked by erasure score
    assert _methods(driver) == ["c", "a", "b", "d"]
    ranks = driver.find_elements(By.CSS_SELECTOR, "table.sortable tbody tr td:first-child")
    assert [r.text for r in ranks] == ["1", "2", "3", "4"]
    assert "0.800 ± 0.000" in driver.find_element(By.CSS_SELECTOR, "table.sortable").text

    # the plot, from its data URI
    img = driver.find_element(By.CSS_SELECTOR, "img.plot")
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return arguments[0].complete", img))
    assert driver.execute_script("return arguments[0].naturalWidth", img) > 0
    assert img.get_attribute("src").startswith("data:image/png;base64,")

    # numeric sort on the raw mean: 7.5e-05 < 3.0, although "3.0" < "7.5e-05" as text
    seconds = _header(driver, "unlearn_seconds")
    seconds.click()
    assert seconds.get_attribute("aria-sort") == "ascending"
    assert _methods(driver) == ["d", "b", "a", "c"]
    seconds.click()
    assert seconds.get_attribute("aria-sort") == "descending"
    assert _methods(driver) == ["c", "a", "b", "d"]

    # an empty cell sorts last both ways
    excess = _header(driver, "ce_excess@10")
    excess.click()
    assert _methods(driver) == ["c", "a", "b", "d"]
    assert seconds.get_attribute("aria-sort") is None
    excess.click()
    assert _methods(driver) == ["b", "a", "c", "d"]

    # text columns sort as text; rank restores the ranking
    _header(driver, "method").click()
    assert _methods(driver) == ["a", "b", "c", "d"]
    _header(driver, "rank").click()
    assert _methods(driver) == ["c", "a", "b", "d"]

    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe
    # the log is really captured: a deliberate console error shows up as SEVERE
    driver.execute_script("console.error('leaderboard-probe')")
    probe = [e for e in driver.get_log("browser") if "leaderboard-probe" in e["message"]]
    assert probe and probe[0]["level"] == "SEVERE"
