"""The dashboard end to end in headless Chromium: load a scenario, send through a door, watch the timeline and
the steps, open an exchange, fire transitions, move the clock, all from the keyboard where a workshop host
would. Screenshots of the main views go to .artifacts/screenshots/."""

import pytest
import requests
from kit.mss import HOSPITAL, xdm_package
from kit.mss import send_xdm_mail as send_mail
from kit.pfi import mdm
from kit.pfi import send_codes as send_hl7
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import Select, WebDriverWait

from mockbench.control.events import EventLimits

QUERY = (b'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope">'
         b'<soap:Header/><soap:Body><query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0">'
         b'<query:ResponseOption returnType="LeafClass"/></query:AdhocQueryRequest></soap:Body></soap:Envelope>')
MASKING = """\
id: dashboard-masking
title: Un document masqué par une transition manuelle
seed: 11
world:
  structures: [{id: chu, name: CHU de Test}]
  professionals: [{id: dr_martin, family_name: MARTIN, given_name: Jeanne, structure: chu}]
  patients:
    - id: alice
      sex: F
      given_name: Alice
      authorizations: [{structure: chu, status: VALIDE}]
      documents:
        - {id: cr_alice, type: 11488-4, author: dr_martin}
transitions:
  - id: masquage
    say: Alice masque son compte rendu aux professionnels
    when: {manual: true}
    do: [{mask_document: {document: cr_alice, by: patient}}]
steps:
  - id: recherche
    say: Le DPI cherche les documents d'Alice
    expect: {channel: dmp, operation: TD3.1, patient: alice}
"""


def wait(driver, condition, timeout: float = 10.0, message: str = ""):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out waiting: {message}") from None


def present(selector: str):
    def found(driver):
        elements = driver.find_elements(By.CSS_SELECTOR, selector)
        return elements[0] if elements else False
    return found


def keys(driver, *sequence) -> None:
    ActionChains(driver).send_keys(*sequence).perform()


def active(driver):
    return driver.switch_to.active_element


def timeline_operations(driver) -> list[str]:
    """The timeline's operations, newest first, read in one step."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#timeline .entry')).map((e) => e.dataset.operation)")


def focused(driver, attribute: str) -> str | None:
    """An attribute of the focused element, read in one step (a live redraw may replace it any time)."""
    return driver.execute_script("return document.activeElement.getAttribute(arguments[0])", attribute)


def open_dashboard(driver, bench) -> None:
    driver.get(bench.url + "/")
    wait(driver, present("#live.on"), message="the live timeline connects")
    assert driver.find_element(By.CSS_SELECTOR, "html").get_attribute("lang") == "fr"


def view_shown(driver, view: str) -> bool:
    return driver.find_element(By.ID, f"view-{view}").is_displayed()


def click(driver, selector: str) -> None:
    """Click what the selector finds, again if a live redraw replaced it in between."""
    for _ in range(20):
        try:
            wait(driver, present(selector), message=selector).click()
            return
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{selector} kept being redrawn")


def text(driver, selector: str) -> str:
    """The text of what the selector finds, read again if a live redraw replaced it in between."""
    for _ in range(20):
        try:
            return wait(driver, present(selector), message=selector).text
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{selector} kept being redrawn")


def tab_to(driver, selector: str, limit: int = 80):
    """Press Tab until an element matching `selector` has the focus, as a keyboard user would."""
    wait(driver, present(selector), message=selector)
    for _ in range(limit):
        if driver.execute_script("return document.activeElement.matches(arguments[0])", selector):
            return active(driver)
        keys(driver, Keys.TAB)
    raise AssertionError(f"{selector} is not reachable with Tab")


@pytest.mark.slow
def test_load_send_and_watch_the_timeline_and_steps(mockbench, browser, screenshot):
    c = mockbench.client
    open_dashboard(browser, mockbench)
    assert view_shown(browser, "timeline")
    keys(browser, "3")
    assert view_shown(browser, "scenario") and not view_shown(browser, "timeline")
    wait(browser, present('#scenario-select option[value="dmp-conf-03-01"]'), message="the catalogue is listed")
    Select(browser.find_element(By.ID, "scenario-select")).select_by_value("dmp-conf-03-01")
    browser.find_element(By.ID, "load-button").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#steps .step[data-status=pending]")) == 4,
         message="four pending steps")
    assert "Supprimer un document" in browser.find_element(By.ID, "scenario-title").text
    assert c.health()["scenario"] == "dmp-conf-03-01"
    screenshot("scenario")

    keys(browser, "1")
    assert view_shown(browser, "timeline")
    patient = c.patient("alice")
    pro = c.call("GET", "/professionals")[0]
    finess = c.call("GET", "/structures")[0]["finess"]
    uid = "1.2.250.1.999.42.1"
    assert send_hl7(mockbench, mdm("T02", patient, pro, finess, uid, control_id="D1")) == ["AA"]
    wait(browser, present('#timeline .entry[data-channel="pfi"][data-operation="MDM^T02"][data-verdict="accepted"]'),
         message="the MDM^T02 in the timeline")
    wait(browser, present('#timeline .entry[data-channel="dmp"][data-operation="TD2.1"]'), message="the TD2.1")
    wait(browser, present('#steps-mini .step[data-step="envoi"][data-status="passed"]'), message="envoi green")
    wait(browser, present('#steps-mini .step[data-step="alimentation"][data-status="passed"]'),
         message="alimentation green")
    row = browser.find_element(By.CSS_SELECTOR, '#timeline .entry[data-operation="MDM^T02"]')
    assert "Alice" in row.text and "accepté" in row.text and "PFI (HL7)" in row.text
    screenshot("timeline")

    # From the keyboard: down the timeline to the MDM^T02, Enter opens it, Escape closes it.
    for _ in range(10):
        keys(browser, "j")
        if focused(browser, "data-operation") == "MDM^T02":
            break
    assert active(browser) == row
    keys(browser, Keys.ENTER)
    wait(browser, present("#detail[open]"), message="the exchange's detail opens")
    raw = wait(browser, lambda d: d.find_element(By.ID, "detail-raw").text.strip() or False)
    segments = raw.splitlines()
    assert segments[0].startswith("MSH|") and segments[1].startswith("EVN|") and segments[2].startswith("PID|")
    assert "MDM^T02" in browser.find_element(By.ID, "detail-title").text
    assert "accepté" in browser.find_element(By.ID, "detail-meta").text
    # The bench's answer beside the request (issue 18 point 12): the ACK the DPI got, one segment a line.
    ack = browser.find_element(By.ID, "detail-response").text.splitlines()
    assert ack[0].startswith("MSH|") and "ACK^T02" in ack[0] and ack[1].startswith("MSA|AA|D1")
    side = browser.execute_script("const r = (id) => document.getElementById(id).getBoundingClientRect();"
                                  "return [r('detail-raw').left, r('detail-response').left, r('detail-raw').top,"
                                  " r('detail-response').top];")
    assert side[1] > side[0] and abs(side[2] - side[3]) < 40, side   # side by side at 1600 px
    screenshot("detail")
    keys(browser, Keys.ESCAPE)
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#detail[open]"), message="the detail closes")
    assert active(browser) == row

    # A SOAP exchange's detail is indented XML; a refused one shows its code.
    response = requests.post(mockbench.url + "/si-dmp-server/v2/services/registry", data=QUERY, timeout=10,
                             headers={"Content-Type": "application/soap+xml; charset=utf-8"})
    assert response.status_code == 400
    soap_row = wait(browser, present('#timeline .entry[data-channel="dmp"][data-verdict="refused"]'),
                    message="the refused SOAP request in the timeline")
    assert "refusé" in soap_row.text
    keys(browser, "k")      # the newest line is at the top: up from the MDM^T02 row is the SOAP request
    keys(browser, "k")
    assert active(browser) == soap_row
    keys(browser, Keys.ENTER)
    wait(browser, present("#detail[open]"))
    xml = wait(browser, lambda d: d.find_element(By.ID, "detail-raw").text.strip() or False).splitlines()
    assert xml[0].startswith("<soap:Envelope") and xml[1].startswith("  <soap:Header")
    assert any(line.startswith("    <query:AdhocQueryRequest") for line in xml)
    assert "refusé" in browser.find_element(By.ID, "detail-meta").text
    fault = browser.find_element(By.ID, "detail-response").text
    assert fault.startswith("<") and ":Fault" in fault and "MessageAddressingHeaderRequired" in fault, fault
    refused = next(e for e in c.journal() if e["channel"] == "dmp" and e["verdict"] == "refused")
    shown = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#detail-findings li")]
    assert refused["findings"] and len(shown) == len(refused["findings"])
    assert all(line.endswith(f"{f['rule']} : {f['message_fr']}") for line, f in zip(shown, refused["findings"], strict=True))
    screenshot("detail-soap")
    keys(browser, Keys.ESCAPE)
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#detail[open]"))

    keys(browser, "2")
    card = f'.doc[data-unique-id="{uid}"]'
    wait(browser, present(f'[data-patient="alice"] {card}[data-status="approved"]'), message="the document's card")
    assert "Actif" in text(browser, card)
    screenshot("world")
    assert send_hl7(mockbench, mdm("T04", patient, pro, finess, uid, control_id="D2")) == ["AA"]
    wait(browser, present(f'{card}[data-status="deleted"]'), message="the card shows the deletion")
    assert "Supprimé" in text(browser, card)
    assert [(s["id"], s["status"]) for s in c.steps()] == [
        ("envoi", "passed"), ("alimentation", "passed"), ("suppression", "passed"), ("suppression_dmp", "passed")]
    keys(browser, "1")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#steps-mini .step[data-status=passed]")) == 4,
         message="every step green")
    screenshot("timeline-all-green")


def test_fire_a_manual_transition_from_the_keyboard(mockbench, browser, screenshot):
    open_dashboard(browser, mockbench)
    keys(browser, "g")
    assert focused(browser, "id") == "scenario-select"
    wait(browser, present('#scenario-select option[value="dmp-authorization-withdrawn"]'))
    Select(active(browser)).select_by_value("dmp-authorization-withdrawn")
    keys(browser, Keys.TAB, Keys.ENTER)                       # the "Charger" button
    wait(browser, present('#transitions [data-transition="retrait_chu"][data-fired="false"]'),
         message="the manual transition is listed")
    assert mockbench.client.health()["scenario"] == "dmp-authorization-withdrawn"
    # The automatic transition has no button, the manual one has.
    assert not browser.find_elements(By.CSS_SELECTOR, 'button.fire[data-transition="retrait_clinique"]')
    keys(browser, "2")
    chu = '[data-patient="bernard"] .auth[data-subject="chu"]'
    wait(browser, present(f'{chu}[data-status="VALIDE"]'), message="the CHU's authorization is valid")
    assert "valide" in text(browser, chu)
    keys(browser, "3")
    button = tab_to(browser, 'button.fire[data-transition="retrait_chu"]')
    # Something happens and the scenario is redrawn (forgetting what it drew forces the redraw a change causes):
    # the focus stays on the button.
    browser.execute_script("state.scenarioSeen = null")
    mockbench.client.advance("1s")
    wait(browser, staleness_of(button), message="the transitions are redrawn")
    assert focused(browser, "data-key") == "fire:retrait_chu"
    keys(browser, Keys.ENTER)
    wait(browser, present('#transitions [data-transition="retrait_chu"][data-fired="true"]'),
         message="the transition shows as fired")
    assert "retrait_chu" in browser.find_element(By.ID, "action-message").text
    screenshot("scenario-transition-fired")
    keys(browser, "2")
    wait(browser, present(f'{chu}[data-status="NON_EXISTE"]'), message="the authorization card changes")
    assert "bloqué" in text(browser, '[data-patient="bernard"] .auth[data-subject="dr_roux"][data-status="INTERDIT"]')
    assert {a["subject"]: a["status"] for a in mockbench.client.call("GET", "/patients/bernard/authorizations")} \
        == {"chu": "NON_EXISTE", "clinique": "VALIDE", "dr_roux": "INTERDIT"}


def test_a_transition_masking_a_document_changes_its_card(mockbench, browser, screenshot):
    mockbench.client.load_yaml(MASKING)
    open_dashboard(browser, mockbench)
    keys(browser, "2")
    card = '[data-patient="alice"] .doc[data-doc="cr_alice"]'
    wait(browser, present(f'{card}[data-status="approved"][data-confidentiality=""]:not(.masked)'),
         message="the document's card, not masked")
    keys(browser, "3")
    click(browser, 'button.fire[data-transition="masquage"]')
    keys(browser, "2")
    wait(browser, present(f'{card}.masked[data-confidentiality="MASQUE_PS"]'), message="the card masked")
    assert "Masqué aux PS" in text(browser, card)
    assert "MASQUE_PS" in mockbench.client.documents("alice")[0]["confidentiality"]
    screenshot("world-masked")
    # Ending the play: the step never observed turns red, with its reason.
    keys(browser, "3")
    click(browser, "#finish-button")
    wait(browser, present('#steps .step[data-step="recherche"][data-status="failed"]'), message="the step red")
    assert "non observée : attendu : TD3.1 pour alice" in text(browser, '#steps .step[data-step="recherche"] .reason')
    assert "0 réussie(s), 1 échouée(s)" in text(browser, "#action-message")
    screenshot("scenario-step-failed")


def test_document_cards_show_status_and_the_version_chain(mockbench, browser, screenshot):
    mockbench.client.load("deleted-versions")
    open_dashboard(browser, mockbench)
    keys(browser, "2")
    cards = '[data-patient="camille"] .doc'
    expected = {"bio_v1": "deprecated", "bio_v2": "deprecated", "bio_v3": "approved", "cr_supprime": "deleted",
                "cr_archive": "archived"}
    for doc, status in expected.items():
        wait(browser, present(f'{cards}[data-doc="{doc}"][data-status="{status}"]'), message=f"{doc} {status}")
    assert "Remplacé" in text(browser, f'{cards}[data-doc="bio_v1"]')
    assert "remplacé par bio_v2" in text(browser, f'{cards}[data-doc="bio_v1"]')
    middle = text(browser, f'{cards}[data-doc="bio_v2"]')
    assert "remplace bio_v1" in middle and "remplacé par bio_v3" in middle
    assert "Supprimé" in text(browser, f'{cards}[data-doc="cr_supprime"]')
    assert "Archivé" in text(browser, f'{cards}[data-doc="cr_archive"]')
    tab_to(browser, f'{cards}[data-doc="bio_v3"]')        # cards take the focus, their label says it all
    assert focused(browser, "aria-label").startswith("Document ") and "Actif" in focused(browser, "aria-label")
    screenshot("world-versions")


def test_mailboxes_show_their_messages_and_xdm_contents(mockbench, browser, screenshot):
    mockbench.client.load("mss-ux-05-bis-01")
    patient = mockbench.client.patient("dominique")
    send_mail(mockbench, xdm_package(patient, "1.2.250.1.999.78.1"))
    open_dashboard(browser, mockbench)
    wait(browser, present('#timeline .entry[data-channel="mss"][data-operation="DELIVER"]'),
         message="the delivery in the timeline")
    keys(browser, "2")
    toggle = f'[data-mailbox="{HOSPITAL}"] button[aria-expanded]'
    wait(browser, present(toggle), message="the hospital mailbox")
    tab_to(browser, toggle)
    keys(browser, Keys.ENTER)
    doc = text(browser, f'[data-mailbox="{HOSPITAL}"] .xdm li[data-unique-id="1.2.250.1.999.78.1"]')
    assert "CR de microbiologie" in doc and "envoi initial" in doc
    box = text(browser, f'[data-mailbox="{HOSPITAL}"]')
    assert "IHE_XDM/SUBSET01/METADATA.XML" in box and "biolo@labo.mssante.fr" in box
    assert focused(browser, "aria-expanded") == "true"   # the redraw kept the focus on the toggle
    browser.execute_script("document.querySelector('#mailboxes').scrollIntoView()")
    screenshot("world-mailbox")


def test_advance_the_clock_and_use_the_help(mockbench, browser, screenshot):
    mockbench.client.load("hidden-documents")
    open_dashboard(browser, mockbench)
    keys(browser, "?")
    wait(browser, present("#help[open]"), message="the help opens")
    assert "Raccourcis clavier" in browser.find_element(By.ID, "help").text
    keys(browser, Keys.ESCAPE)
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#help[open]"))
    keys(browser, "h")
    field = active(browser)
    assert focused(browser, "id") == "clock-input" and view_shown(browser, "scenario")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys("2h", Keys.ENTER)
    wait(browser, lambda d: "avance de 2 h" in d.find_element(By.ID, "clock-offset").text, message="offset 2 h")
    assert mockbench.client.call("GET", "/clock")["offset"] == 7200
    click(browser, 'button.advance[data-advance="1d"]')
    wait(browser, lambda d: "avance de 1 j 2 h" in d.find_element(By.ID, "clock-offset").text,
         message="offset 1 day 2 h")
    assert mockbench.client.call("GET", "/clock")["offset"] == 93600
    keys(browser, Keys.TAB)   # leave the form: shortcuts are off while typing
    screenshot("scenario-clock")
    tab = browser.find_element(By.ID, "tab-scenario")
    tab.send_keys(Keys.ARROW_RIGHT)              # arrows move between tabs, wrapping around
    assert view_shown(browser, "config") and focused(browser, "id") == "tab-config"
    active(browser).send_keys(Keys.ARROW_RIGHT)
    assert view_shown(browser, "timeline") and focused(browser, "id") == "tab-timeline"
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, '#timeline .entry[data-operation="clock"]')) == 2,
         message="both clock moves in the timeline")
    # Reset: an empty world, a journal holding only the reset, no scenario.
    keys(browser, "3")
    click(browser, "#reset-button")                 # asks first; Escape keeps everything
    wait(browser, lambda d: d.find_element(By.ID, "confirm-reset").is_displayed(), message="the confirmation")
    assert focused(browser, "id") == "confirm-reset-cancel"
    keys(browser, Keys.ESCAPE)
    wait(browser, lambda d: not d.find_element(By.ID, "confirm-reset").is_displayed(), message="dismissed")
    assert "reset" not in [e["operation"] for e in mockbench.client.journal()]
    assert "reset" not in timeline_operations(browser)
    click(browser, "#reset-button")
    click(browser, "#confirm-reset-ok")
    wait(browser, lambda d: timeline_operations(d) == ["reset"], message="the timeline starts again with the reset")
    wait(browser, lambda d: d.find_element(By.ID, "scenario-title").text == "Aucun scénario chargé")
    assert mockbench.client.health()["scenario"] is None and mockbench.client.patients() == []
    keys(browser, "2")
    wait(browser, lambda d: d.find_element(By.ID, "patients").text == "Aucun patient.", message="no patient")


def test_a_view_can_be_bookmarked_by_its_fragment(mockbench, browser):
    mockbench.client.load("hidden-documents")
    browser.get(mockbench.url + "/#monde")               # what a workshop host projects
    wait(browser, present("#live.on"), message="the live timeline connects")
    wait(browser, lambda d: view_shown(d, "world"), message="the world view opens from the URL")
    keys(browser, "3")
    wait(browser, lambda d: d.current_url.endswith("#scenario"), message="the URL follows the view")
    browser.execute_script("location.hash = '#chronologie'")
    wait(browser, lambda d: view_shown(d, "timeline"), message="a changed fragment switches the view")
    browser.get(mockbench.url + "/#nope")
    wait(browser, present("#live.on"))
    assert view_shown(browser, "timeline")               # an unknown fragment falls back to the timeline


@pytest.mark.slow
def test_the_page_recovers_when_the_timeline_refused_it(mockbench_factory, browser):
    running = mockbench_factory()
    hub = running.bench.app.extensions["mockbench.events"]
    hub.limits = EventLimits(max_subscribers=0)          # every screen refused: 429
    browser.get(running.url + "/")
    wait(browser, present("#live.off"), message="the page shows it is not live")
    hub.limits = EventLimits()
    wait(browser, present("#live.on"), timeout=15, message="the page connects again by itself")
    running.client.advance("1s")
    wait(browser, present('#timeline .entry[data-operation="clock"]'), message="and follows the timeline")


def test_the_page_and_its_assets_come_from_the_package_with_no_network(mockbench):
    page = requests.get(mockbench.url + "/", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    for path in ("/_dashboard/dashboard.js", "/_dashboard/dashboard.css"):
        assert f'"{path}"' in page.text
        asset = requests.get(mockbench.url + path, timeout=5)
        assert asset.status_code == 200 and len(asset.content) > 1000
        assert b"://" not in asset.content                  # no CDN, no remote font: nothing to fetch
    assert "://" not in page.text


def paris_time(iso: str) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M:%S")


def viewport(driver, width: int, height: int) -> None:
    """The page's own size (a projector's 1280x720), whatever the headless window's frame takes."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def in_view(driver, selector: str) -> bool:
    """The element is wholly inside the window, without scrolling."""
    return driver.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return r.width > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth",
        selector)


def test_search_and_filter_the_timeline(mockbench, browser, screenshot):
    c = mockbench.client
    c.load("dmp-conf-03-01")
    open_dashboard(browser, mockbench)
    patient, pro = c.patient("alice"), c.call("GET", "/professionals")[0]
    finess = c.call("GET", "/structures")[0]["finess"]
    assert send_hl7(mockbench, mdm("T02", patient, pro, finess, "1.2.250.1.999.7.1", control_id="F1")) == ["AA"]
    c.advance("5m")
    requests.post(f"{mockbench.url}/si-dmp-server/v2/services/registry", data=QUERY, timeout=5,
                  headers={"Content-Type": "application/soap+xml"})   # no VIHF: refused
    wait(browser, lambda d: len(timeline_operations(d)) >= 5, message="the exchanges arrive")
    total = len(timeline_operations(browser))
    visible = lambda d: d.execute_script(  # noqa: E731
        "return Array.from(document.querySelectorAll('#timeline li:not([hidden]) .entry'))"
        ".map((e) => e.dataset.channel + ' ' + e.dataset.operation + ' ' + e.dataset.verdict)")
    Select(browser.find_element(By.ID, "filter-channel")).select_by_value("pfi")
    wait(browser, lambda d: visible(d) == ["pfi MDM^T02 accepted"], message="only the PFI's message")
    assert browser.find_element(By.ID, "filter-count").text == f"1 échange sur {total}"
    Select(browser.find_element(By.ID, "filter-channel")).select_by_value("")
    Select(browser.find_element(By.ID, "filter-verdict")).select_by_value("refused")
    wait(browser, lambda d: visible(d) and all(v.endswith(" refused") for v in visible(d)), message="refusals")
    assert any(v.startswith("dmp ") for v in visible(browser))
    browser.find_element(By.ID, "filter-clear").click()
    wait(browser, lambda d: len(visible(d)) == total, message="everything again")
    # "/" goes to the search field; words are ANDed over operation, patient, code, actor, document...
    browser.find_element(By.TAG_NAME, "body").click()
    keys(browser, "/")
    assert focused(browser, "id") == "filter-text"
    keys(browser, "alice td2.1")
    wait(browser, lambda d: visible(d) == ["dmp TD2.1 accepted"], message="the feed of Alice's document")
    keys(browser, Keys.ESCAPE)
    Select(browser.find_element(By.ID, "filter-patient")).select_by_value("alice")
    browser.find_element(By.ID, "filter-text").clear()
    browser.find_element(By.ID, "filter-text").send_keys(" ")
    wait(browser, lambda d: visible(d) and all(" clock " not in f" {v} " for v in visible(d)),
         message="only Alice's exchanges")
    screenshot("timeline-filtered")
    # j/k move among the rows shown only
    browser.find_element(By.ID, "filter-clear").click()
    Select(browser.find_element(By.ID, "filter-channel")).select_by_value("control")
    wait(browser, lambda d: visible(d) and all(v.startswith("control ") for v in visible(d)), message="control")
    browser.find_element(By.TAG_NAME, "body").click()
    keys(browser, "j")
    assert focused(browser, "data-channel") == "control"
    keys(browser, "j", "j", "j")
    assert focused(browser, "data-channel") == "control"


def test_transitions_fire_once_and_show_their_text_times_in_paris(mockbench, browser, screenshot):
    c = mockbench.client
    c.load("dmp-authorization-withdrawn")
    viewport(browser, 1280, 720)
    open_dashboard(browser, mockbench)
    keys(browser, "3")
    description = wait(browser, lambda d: d.find_element(By.ID, "scenario-description").text, message="description")
    spec = c.call("GET", "/scenario")
    assert description == spec["description"].strip()
    click(browser, 'button.fire[data-transition="retrait_chu"]')
    wait(browser, present('button.fire[data-transition="retrait_chu"][disabled]'), message="fired once")
    fired_at = next(t for t in c.call("GET", "/scenario")["transitions"] if t["id"] == "retrait_chu")["fired_at"]
    assert text(browser, 'button.fire[data-transition="retrait_chu"]') == f"Déclenchée à {paris_time(fired_at)}"
    again = requests.post(f"{mockbench.url}/_bench/transitions/retrait_chu", timeout=5)
    assert again.status_code == 409 and again.json()["error"] == "TRANSITION_ALREADY_FIRED"
    screenshot("scenario-1280x720")
    for name in ("reset-button", "finish-button", "load-button", "clock-button"):
        assert in_view(browser, f"#{name}"), f"#{name} is out of view at 1280x720"
    keys(browser, "1")
    say = next(t["say"] for t in spec["transitions"] if t["id"] == "retrait_chu")
    row = '#timeline .entry[data-operation="transition"]'
    wait(browser, lambda d: say in d.find_element(By.CSS_SELECTOR, row).text, message="the transition's text")
    entry = [e for e in c.journal() if e["operation"] == "transition"][0]
    assert paris_time(entry["time"]) in text(browser, row)
    assert "(Paris)" in browser.find_element(By.ID, "clock").text
    assert in_view(browser, "#filter-text") and in_view(browser, "#steps-mini")
    screenshot("timeline-1280x720")
    viewport(browser, 1920, 1080)
    screenshot("timeline-1920x1080")


def test_a_red_step_says_why_in_french_and_opens_the_nearest_exchange(mockbench, browser, screenshot):
    c = mockbench.client
    c.load("dmp-conf-03-01")
    open_dashboard(browser, mockbench)
    patient, pro = c.patient("alice"), c.call("GET", "/professionals")[0]
    finess = c.call("GET", "/structures")[0]["finess"]
    t02 = mdm("T02", patient, pro, finess, "1.2.250.1.999.8.1", control_id="N1")
    t10 = mdm("T10", patient, pro, finess, "1.2.250.1.999.8.2", "1.2.250.1.999.8.1", control_id="N2")
    assert send_hl7(mockbench, t02, t10) == ["AA", "AA"]     # a replacement where the deletion was due
    steps = {s["id"]: s for s in c.finish()}
    failed = next(s for s in steps.values() if s["reason_code"] == "NOT_OBSERVED" and s["nearest_seq"])
    nearest = [e for e in c.journal() if e["seq"] == failed["nearest_seq"]][0]
    assert (nearest["channel"], nearest["operation"]) == ("pfi", "MDM^T10")
    step = f'#steps-mini .step[data-step="{failed["id"]}"]'
    wait(browser, present(f'{step}[data-status="failed"]'), message="the step red in the timeline's panel")
    assert text(browser, f"{step} .reason") == failed["reason_fr"]
    assert failed["reason_fr"].startswith("non observée : attendu : MDM^T04 ou ORU^R01 pour alice")
    click(browser, f"{step} button.nearest")
    wait(browser, lambda d: d.find_element(By.ID, "detail").is_displayed(), message="the exchange opens")
    assert text(browser, "#detail-title").startswith(f"Échange {failed['nearest_seq']} · PFI (HL7) MDM^T10")
    screenshot("timeline-nearest-miss")


def test_a_host_switches_a_fault_off_and_on(mockbench, browser, screenshot):
    mockbench.client.load("annuaire-429")
    open_dashboard(browser, mockbench)
    keys(browser, "3")
    wait(browser, present('#faults [data-fault="quota"][data-active="true"]'), message="the fault rule is listed")
    assert "L'Annuaire Santé répond 429" in text(browser, '#faults [data-fault="quota"]')
    button = tab_to(browser, 'button[data-key="fault:quota"]')
    assert button.text == "Désactiver"
    keys(browser, Keys.ENTER)
    wait(browser, present('#faults [data-fault="quota"][data-active="false"]'), message="the rule shows as off")
    assert mockbench.client.faults()[0]["enabled"] is False
    r = requests.get(mockbench.url + "/fhir/v2/Practitioner", headers={"ESANTE-API-KEY": "mockbench"}, timeout=5)
    assert r.status_code == 200                               # switched off: the search is served
    screenshot("scenario-fault-off")
    browser.find_element(By.CSS_SELECTOR, 'button[data-key="fault:quota"]').click()
    wait(browser, present('#faults [data-fault="quota"][data-active="true"]'), message="the rule shows as on")
    r = requests.get(mockbench.url + "/fhir/v2/Practitioner", headers={"ESANTE-API-KEY": "mockbench"}, timeout=5)
    assert r.status_code == 429


@pytest.mark.slow
def test_configure_your_dpi_shows_the_benchs_own_addresses_and_identities(mockbench, browser, screenshot):
    """Issue 18 point 4: the panel draws GET /_bench/endpoints; a new world redraws its identities."""
    c = mockbench.client
    c.load("hidden-documents")
    endpoints = requests.get(mockbench.url + "/_bench/endpoints", timeout=10).json()
    viewport(browser, 1280, 720)
    open_dashboard(browser, mockbench)
    keys(browser, "4")
    assert view_shown(browser, "config") and browser.current_url.endswith("#configurer")
    dmp = text(browser, "#config-dmp")
    for service in endpoints["dmp"]["services"]:
        assert service["http"] in dmp and service["wsdl"] in dmp
    psc = text(browser, "#config-oidc-psc")
    assert endpoints["oidc"][0]["urls"]["http"]["token_endpoint"] in psc and "mockbench-secret" in psc
    assert f"127.0.0.1:{mockbench.ports['mllp']}" in text(browser, "#config-pfi")
    assert "ESANTE-API-KEY: mockbench" in text(browser, "#config-annuaire")
    patients = text(browser, "#config-patients")
    for patient in c.call("GET", "/patients"):
        assert patient["ins"] in patients and patient["family_name"] in patients
    assert all(s["idnst"] in text(browser, "#config-structures") for s in c.call("GET", "/structures"))
    screenshot("config-1280x720")
    viewport(browser, 1920, 1080)
    screenshot("config-1920x1080")
    # another world loaded meanwhile: the identities follow
    c.load("mss-conf-01")
    wait(browser, lambda d: "dpi@chu-test.mssante.fr" in text(d, "#config-mailboxes"),
         message="the new world's mailboxes")
