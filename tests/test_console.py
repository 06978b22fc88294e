"""The firm's console in a real headless Chromium (Selenium), served by the real API over
HTTP, on the real database, broker and ingest service.

A firm signs in with its operator token, sees its never-heard-from device flagged silent
(and listed first), opens a dead letter that ingest really produced and reads its reason,
checks a corrected payload, and rotates a credential — then connects to the broker with
the new password while the old one is refused. A Korean pass checks the pages carry
Hangul and none of the console's English labels. Screenshots of each page land in the
test's temporary folder.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from kcity import provisioning
from kcity.api import create_app
from kcity.provisioning import Credentials
from kcity.reports.i18n import labels
from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin
from kcity.stack.processes import free_port
from tests.fixtures.api_world import World, build_world
from tests.fixtures.ingest import ingest_config, publisher, running_ingest, wait_count, wait_until
from tests.test_api import connack

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 30
HANGUL = re.compile(r"[\uac00-\ud7a3]")
NOW = datetime.now(UTC).replace(microsecond=0)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def world(db_url: str) -> World:
    with psycopg.connect(db_url, autocommit=True) as c:
        return build_world(c, uuid.uuid4().hex[:8])


@pytest.fixture(scope="module")
def live(settings: Settings, world: World, broker_admin: BrokerAdmin) -> dict[str, Any]:
    """A device provisioned with real credentials that sent one good and one bad message
    through the broker and the ingest service."""
    device = f"madiun-sl-live-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(settings.database_url) as conn:
        creds = provisioning.provision_device(
            conn,
            broker_admin,
            world.madiun,
            device,
            mqtt_host=settings.mqtt_host,
            mqtt_port=settings.mqtt_port,
        )
    record = {"ts": iso(NOW - timedelta(minutes=5)), "power_w": 40.0, "lamp_on": True}
    good = {"v": 1, "boot": 1, "seq": 1, "records": [{**record, "dim_pct": 40}]}
    bad = {
        "v": 1,
        "boot": 1,
        "seq": 2,
        "records": [{**record, "ts": iso(NOW - timedelta(minutes=1)), "dim_pct": 140}],
    }
    topic = creds.topic_prefix + "telemetry"
    with (
        running_ingest(ingest_config(settings, f"console-{device[-6:]}")),
        publisher(settings, device, creds.password) as pub,
    ):
        pub.publish(topic, json.dumps(good).encode())
        pub.publish(topic, json.dumps(bad).encode())
        pub.flush()
        wait_count(
            settings.database_url,
            "SELECT count(*) FROM dead_letters WHERE device_id = %s",
            (device,),
            1,
        )
        wait_until(lambda: _last_seen(settings.database_url, device), "last_seen")
    with psycopg.connect(settings.database_url) as conn:
        letter = conn.execute(
            "SELECT id, stage, reason FROM dead_letters WHERE device_id = %s", (device,)
        ).fetchone()
    assert letter is not None
    return {"creds": creds, "bad": bad, "letter": letter}


def _last_seen(url: str, device: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT last_seen FROM devices WHERE id = %s", (device,)).fetchone()
    return bool(row and row[0])


@pytest.fixture(scope="module")
def server(settings: Settings, world: World) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_until(lambda: srv.started, "the API to serve")
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-screenshots")


def follow(driver: WebDriver, link_text: str, landmark: str) -> None:
    """Click a link and wait for the element with id `landmark` of the page it leads to."""
    driver.find_element(By.LINK_TEXT, link_text).click()
    WebDriverWait(driver, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, landmark))
    )


def shot(driver: WebDriver, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, f"{name}: the screenshot looks blank"
    return path


def sign_in(driver: WebDriver, base: str, token: str, lang: str = "en") -> None:
    """Sign in through the form; wait until the console has let us in."""
    driver.delete_all_cookies()
    driver.get(f"{base}/console/?lang={lang}")
    field = WebDriverWait(driver, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, "token"))
    )
    field.send_keys(token + Keys.ENTER)
    WebDriverWait(driver, WAIT_S).until(lambda d: "/signin" not in d.current_url)


def test_sign_in_and_see_the_silent_device_flagged(
    browser: WebDriver, server: str, world: World, live: dict[str, Any], shots: Path
) -> None:
    browser.delete_all_cookies()
    browser.get(f"{server}/console/")
    assert browser.current_url.endswith("/console/signin")  # not signed in: sent to sign in
    browser.find_element(By.ID, "token").send_keys("kct_not-a-token" + Keys.ENTER)
    error = WebDriverWait(browser, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, "signin-error"))
    )
    assert error.text == labels("en")["c_bad_token"]
    shot(browser, shots, "signin")

    sign_in(browser, server, world.tokens["operator"])
    assert browser.current_url.endswith(f"/console/pilots/{world.madiun}")
    # The lamp and meter of the world never sent over MQTT; the live device did, just now.
    assert browser.find_element(By.ID, "devices-silent").text == "2"
    assert browser.find_element(By.ID, "devices-online").text.endswith("/ 3")
    shot(browser, shots, "overview")

    follow(browser, labels("en")["c_devices"], "devices")
    rows = browser.find_elements(By.CSS_SELECTOR, "#devices tbody tr")
    flags = {r.get_attribute("id"): r.get_attribute("data-silent") for r in rows}
    assert flags[f"device-{world.meter}"] == "true"
    assert flags[f"device-{live['creds'].device_id}"] == "false"
    silent_row = browser.find_element(By.ID, f"device-{world.meter}")
    assert labels("en")["c_silent"] in silent_row.text
    order = [r.get_attribute("data-silent") for r in rows]
    assert order == sorted(order, reverse=True)  # silent devices first
    shot(browser, shots, "devices")

    # Keyboard: the first Tab reaches the skip link, which leads to the main content.
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("href").endswith("#main")


def replaced(browser: WebDriver, old: WebElement) -> None:
    """Wait until `old` is gone with the page it was on. While Chrome swaps the document, a
    look at the old node can fail with a generic "node does not belong to the document"
    instead of a stale-element error: that is the same news, so keep polling."""
    WebDriverWait(browser, WAIT_S, ignored_exceptions=(WebDriverException,)).until(
        expected_conditions.staleness_of(old)
    )


def test_open_a_dead_letter_and_check_a_corrected_payload(
    browser: WebDriver, server: str, world: World, live: dict[str, Any], shots: Path
) -> None:
    sign_in(browser, server, world.tokens["operator"])
    browser.get(f"{server}/console/pilots/{world.madiun}/dead-letters")
    letter_id, stage, reason = live["letter"]
    # The shared broker's retained statuses of other modules' devices are dead letters here
    # too (unknown devices): narrow the list to the live device with the filter form.
    browser.find_element(By.ID, "device").send_keys(live["creds"].device_id + Keys.ENTER)
    WebDriverWait(browser, WAIT_S).until(expected_conditions.url_contains("device="))
    listed = browser.find_elements(By.CSS_SELECTOR, "#dead-letters tbody a")
    assert [a.get_attribute("id") for a in listed] == [f"letter-{letter_id}"]
    browser.find_element(By.ID, f"letter-{letter_id}").click()
    WebDriverWait(browser, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, "reason"))
    )
    assert browser.find_element(By.ID, "reason").text == reason
    assert browser.find_element(By.ID, "stage").text == stage == "record"
    # Ingest keeps a refused record on its own; the checker offers it inside a message.
    refused = live["bad"]["records"][0]
    assert json.loads(browser.find_element(By.ID, "payload").text) == refused
    area = browser.find_element(By.ID, "check-payload")
    draft = json.loads(area.get_attribute("value"))
    assert draft["records"] == [refused]
    shot(browser, shots, "dead-letter")

    # As offered, it is still refused, for the same reason; corrected, it would be stored.
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, "check-submit").click()
    replaced(browser, page)
    WebDriverWait(browser, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, "verdict"))
    )
    assert reason in browser.find_element(By.ID, "verdict").text
    fixed = {**draft, "records": [{**refused, "dim_pct": 100}]}
    area = browser.find_element(By.ID, "check-payload")
    area.clear()
    area.send_keys(json.dumps(fixed))
    first_verdict = browser.find_element(By.ID, "verdict")
    browser.find_element(By.ID, "check-submit").click()
    replaced(browser, first_verdict)
    summary = WebDriverWait(browser, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, "verdict-summary"))
    )
    assert labels("en")["c_records_summary"].format(ok=1, bad=0) in summary.text
    assert labels("en")["c_accepted"] in summary.text
    # The letter stays on the page beside the verdict.
    assert browser.find_element(By.ID, "reason").text == reason
    shot(browser, shots, "check")


def test_rotate_a_credential_and_connect_with_the_new_one(
    browser: WebDriver,
    server: str,
    world: World,
    live: dict[str, Any],
    settings: Settings,
    shots: Path,
) -> None:
    creds: Credentials = live["creds"]
    assert connack(settings, creds.device_id, creds.password) == 0
    sign_in(browser, server, world.tokens["operator"])
    browser.get(f"{server}/console/pilots/{world.madiun}/devices")
    row = browser.find_element(By.ID, f"device-{creds.device_id}")
    row.find_element(By.CSS_SELECTOR, "form.rotate button").click()
    WebDriverWait(browser, WAIT_S).until(expected_conditions.alert_is_present()).accept()
    password = WebDriverWait(browser, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, "password"))
    )
    new = password.text
    assert new and new != creds.password
    shot(browser, shots, "rotated")
    assert connack(settings, creds.device_id, new) == 0
    assert connack(settings, creds.device_id, creds.password) != 0
    # Shown once: the device list does not carry it.
    browser.get(f"{server}/console/pilots/{world.madiun}/devices")
    assert new not in browser.page_source


def test_an_evaluator_may_look_but_not_rotate(
    browser: WebDriver, server: str, world: World, live: dict[str, Any]
) -> None:
    sign_in(browser, server, world.tokens["evaluator"])
    follow(browser, "Madiun smart streetlights", "devices-online")
    follow(browser, labels("en")["c_devices"], "devices")
    assert browser.find_elements(By.CSS_SELECTOR, "form.rotate") == []
    # A viewer token does not open the console at all.
    browser.delete_all_cookies()
    browser.get(f"{server}/console/signin")
    browser.find_element(By.ID, "token").send_keys(world.tokens["viewer"] + Keys.ENTER)
    error = WebDriverWait(browser, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, "signin-error"))
    )
    assert error.text == labels("en")["c_viewer_refused"]


def test_commands_and_their_state(
    browser: WebDriver,
    server: str,
    world: World,
    live: dict[str, Any],
    settings: Settings,
    shots: Path,
) -> None:
    device = live["creds"].device_id
    acked, queued = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO commands (id, pilot_id, device_id, type, created_by, state, expires_at,"
            " closed_at, created_at) VALUES (%s, %s, %s, %s, 'tests', %s, now() + interval '1 h',"
            " %s, %s)",
            [
                (acked, world.madiun, device, "ping", "acked", NOW, NOW - timedelta(minutes=2)),
                (queued, world.madiun, device, "reboot", "queued", None, NOW),
            ],
        )
    sign_in(browser, server, world.tokens["operator"])
    follow(browser, labels("en")["c_commands"], "commands")
    rows = browser.find_elements(By.CSS_SELECTOR, "#commands tbody tr")
    assert [r.get_attribute("id") for r in rows] == [f"command-{queued}", f"command-{acked}"]
    assert labels("en")["c_cmd_acked"] in rows[1].text and "ping" in rows[1].text
    assert labels("en")["c_cmd_queued"] in rows[0].text
    shot(browser, shots, "commands")


def _english_leftovers(text: str) -> list[str]:
    """Console labels whose English wording shows on a page that should be Korean."""
    en, ko = labels("en"), labels("ko")
    found = []
    for key, word in en.items():
        if not key.startswith("c_") or word == ko[key] or len(word) < 3:
            continue
        fixed = word.split("{")[0].strip()  # the part before a placeholder
        if fixed and re.search(rf"(?<![A-Za-z]){re.escape(fixed)}(?![A-Za-z])", text):
            found.append(word)
    return found


def test_korean_pass(
    browser: WebDriver, server: str, world: World, live: dict[str, Any], shots: Path
) -> None:
    sign_in(browser, server, world.tokens["operator"], lang="ko")
    letter_id = live["letter"][0]
    pages = {
        "overview-ko": f"/console/pilots/{world.madiun}",
        "devices-ko": f"/console/pilots/{world.madiun}/devices",
        "dead-letters-ko": f"/console/pilots/{world.madiun}/dead-letters",
        "dead-letter-ko": f"/console/pilots/{world.madiun}/dead-letters/{letter_id}",
        "commands-ko": f"/console/pilots/{world.madiun}/commands",
    }
    for name, path in pages.items():
        browser.get(server + path)  # the language is remembered from the sign-in page
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ko"
        body = browser.find_element(By.TAG_NAME, "body").text
        assert HANGUL.search(body), f"{name}: no Hangul"
        # Reasons and payloads are the ingest service's own words, as in the reports.
        shown = body.replace(live["letter"][2], "")
        assert _english_leftovers(shown) == [], name
        shot(browser, shots, name)
    # Readable on a phone: nothing wider than the screen but the scrolling tables.
    browser.set_window_size(390, 844)
    try:
        browser.get(server + pages["devices-ko"])
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0
        shot(browser, shots, "devices-ko-phone")
    finally:
        browser.set_window_size(1280, 900)


def test_the_screenshots_folder_has_every_page(shots: Path) -> None:
    """Runs last in this module: one picture per page visited above."""
    names = sorted(p.stem for p in shots.glob("*.png"))
    expected = {"signin", "overview", "devices", "dead-letter", "check", "rotated"}
    assert expected <= set(names), names
