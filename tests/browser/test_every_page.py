"""Every console page is opened in headless Chromium by some test, which asserts what the page shows.

Each GET the console answers with HTML, by endpoint, its address, and the browser tests that open it
(``test_console_routes_are_all_listed`` fails when a GET route appears under ``/console`` that is in
neither list below, and when a named test does not exist):

Pages
* ``console.login`` ``/console/login``: test_console.py::test_login_wrong_then_right_password,
  test_console_accounts.py::test_an_admin_adds_an_operator_who_logs_in_and_shows_in_the_audit,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* ``console.overview`` ``/console/``: test_console.py::test_overview_with_its_charts,
  test_console_pages.py::test_the_funnel_block_adds_up_in_plain_words,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* ``console.leads`` ``/console/leads``: test_console.py::test_leads_filter_by_tier,
  test_lead_work.py::test_leads_search_count_sort_page_and_the_badge,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* ``console.lead`` ``/console/leads/<ref>``: test_lead_work.py::test_note_assignee_and_status_show_in_the_history,
  test_lead_work.py::test_the_advice_is_the_one_for_the_answers_level,
  test_erase.py::test_the_operator_deletes_a_person_from_the_lead_page,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* ``console.person`` ``/console/people/<ref>``: test_every_page.py::test_a_persons_page_shows_each_diagnosis,
  test_every_page.py::test_a_crawl_reaches_the_booking_the_request_with_no_diagnosis_and_the_team,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* ``console.bookings`` ``/console/bookings``: test_consultations.py::test_the_bookings_page,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* ``console.availability`` ``/console/availability``: test_consultations.py::test_the_availability_editor,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* ``console.teams`` ``/console/teams``:
  test_console_pages.py::test_the_empty_overview_shows_how_to_see_data_and_the_demo_comes_and_goes,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* ``console.team`` ``/console/teams/<team_id>``:
  test_console_pages.py::test_the_empty_overview_shows_how_to_see_data_and_the_demo_comes_and_goes,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* ``console.delivery`` ``/console/delivery``:
  test_console_pages.py::test_a_parked_message_says_who_what_why_and_can_be_discarded,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* ``console.audit`` ``/console/audit``:
  test_console_accounts.py::test_an_admin_adds_an_operator_who_logs_in_and_shows_in_the_audit,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* ``console.operators`` ``/console/operators``:
  test_console_accounts.py::test_the_first_admin_is_made_from_the_shared_login,
  test_console_accounts.py::test_an_admin_adds_an_operator_who_logs_in_and_shows_in_the_audit,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* ``console.profile`` ``/console/profile``: test_console_accounts.py::test_totp_enrolment_then_a_login_needs_the_code,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* ``console_try.page`` ``/console/try/``: test_try.py::test_take_the_diagnosis_in_the_browser,
  test_try.py::test_the_menu_bar_does_what_the_rich_menu_does_and_a_new_result_shows_from_its_top,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* ``console.webhooks`` ``/console/webhooks``:
  test_console_webhooks.py::test_an_endpoint_is_added_its_secret_shown_once_and_events_arrive_signed
* ``console.nurture`` ``/console/nurture``:
  test_console_nurture.py::test_the_nurture_page_shows_each_step_and_nudge_with_withheld_counts_as_a_dash
* ``console.experiments`` ``/console/experiments``:
  test_console_experiments.py::test_the_page_counts_each_variant_and_ending_shows_the_winner,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* ``console.content`` ``/console/content``:
  test_console_content.py::test_a_bad_upload_then_a_draft_tried_published_and_rolled_back,
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english

Error pages (no route of their own: the blueprint's handlers)
* not found (404), any unknown ``/console/...`` address, and a lead whose reference matches no lead:
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* the form has expired (400, a POST whose CSRF token is wrong):
  test_every_page.py::test_every_page_names_itself_in_japanese, test_every_page_en.py::test_every_page_in_english
* temporarily unavailable (503, Redis down) and the console switched off (no password): through Flask's test
  client only (tests/bot/console/test_sessions.py, test_auth.py), as a real server can't lose Redis on cue.

Not pages (GETs that answer no HTML)
* ``console.chart`` (SVG): test_console.py::test_overview_with_its_charts
* ``console.team_trend`` (SVG):
  test_console_pages.py::test_the_empty_overview_shows_how_to_see_data_and_the_demo_comes_and_goes
* ``console_try.messages`` (JSON): test_try.py::test_take_the_diagnosis_in_the_browser
* ``console_tools.funnel`` (JSON): test_console.py::test_a_try_it_diagnosis_shows_in_no_figure
* ``console_tools.export_leads``, ``console_tools.export_audit``, ``console_tools.export_kpi`` (CSV),
  ``console_bookings.get_availability``, ``console_bookings.bookings``, ``console_bookings.calendar``,
  ``console_bookings.api_webhooks``, ``console_tools.nurture`` (JSON),
  ``console_calendar.feed`` (iCalendar): Flask's test client (tests/bot/console/)
* ``console.content_file`` (a version's TOML file): Flask's test client (tests/bot/console/test_content_page.py)
* ``console.static``, ``console_try.static``: the pages' style sheets and script
"""

from __future__ import annotations

import importlib
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bot.app import build_services, create_app
from bot.config import Config
from bot.console.operators import OperatorStore
from bot.console.texts import JA, try_texts
from conversations.analytics import Analytics
from conversations.booking import Bookings
from conversations.content import load_script
from conversations.keys import Subject, TeamRef
from conversations.teams import TeamStore
from tests.bot.line.helpers import LineUser
from tests.bot.line.test_booking import AVAILABILITY, postbacks
from tests.browser.conftest import Http, Server, eventually, until
from tests.browser.test_lead_work import crawl

ADMIN = ("pages@example.jp", "pages password 1", "確認 太郎")
SHOP = "みなと商店"
ASKER = "はまべ商店"  # asked for a consultation with no diagnosis, and booked
TEAM = TeamRef("T0PAGES", "C0PAGES")


def listed() -> tuple[dict[str, list[str]], set[str]]:
    """The docstring's lists: {page endpoint: its tests}, and the endpoints that answer no HTML."""
    doc = __doc__ or ""
    rest = doc.split("\nPages\n", 1)[1]
    pages_part, rest = rest.split("\nError pages", 1)
    other = rest.split("\nNot pages", 1)[1]
    items = re.split(r"\n\* ", "\n" + pages_part.strip())
    pages: dict[str, list[str]] = {}
    for item in filter(None, (x.strip() for x in items)):
        endpoint = re.match(r"``([\w.]+)``", item)
        assert endpoint, item
        pages[endpoint.group(1)] = re.findall(r"(test_[\w]+\.py::test_\w+)", item)
    return pages, set(re.findall(r"``(console[\w]*\.\w+)``", other))


def make_app(redis_url: str, tmp_path: Path) -> Any:
    config = Config(redis_url=redis_url, console_password="x" * 20, secret_key="s" * 40, data_dir=tmp_path)
    return create_app(services=build_services(config))


def test_console_routes_are_all_listed(redis_url: str, tmp_path: Path) -> None:
    app = make_app(redis_url, tmp_path)
    gets = {rule.endpoint for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/console") and "GET" in (rule.methods or ())}
    pages, others = listed()
    assert len(pages) >= 14
    unlisted = gets - set(pages) - others
    assert not unlisted, f"console GET routes in no list of {__name__}'s docstring: {sorted(unlisted)}"
    assert not (set(pages) | others) - gets, "listed but no longer a route"
    for endpoint, tests in pages.items():
        assert tests, f"{endpoint}: no browser test named"
        for name in tests:
            module, function = name.split("::")
            found = importlib.import_module(f"tests.browser.{module.removesuffix('.py')}")
            assert callable(getattr(found, function, None)), f"{endpoint}: {name} does not exist"


def test_an_unknown_console_address_is_the_consoles_not_found_page(redis_url: str, tmp_path: Path) -> None:
    http = make_app(redis_url, tmp_path).test_client()
    res = http.get("/console/nothing-here")
    assert res.status_code == 404 and 'id="console-error"' in res.get_data(as_text=True)
    assert f"<h1>{JA['not_found']}</h1>" in res.get_data(as_text=True)
    other = http.get("/nothing-here")  # outside the console: Flask's own answer
    assert other.status_code == 404 and "console-error" not in other.get_data(as_text=True)


# ---- every page, as an operator sees it ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(server: Server) -> dict[str, str]:
    """A LINE user who took the diagnosis twice (a retake: two diagnoses on their page), another who asked
    for a consultation with no diagnosis and booked it in LINE, a Slack team, an admin to log in as."""
    user = LineUser(Http(server.base), server.fake_line, time.time)
    user.follow()
    user.tap("s")
    for q, letter in enumerate("AAAAAAAAAA"):
        user.tap(f"a:1:{q}:{letter}")
    figures = Analytics(server.redis)
    eventually(lambda: figures.funnel()["finished"] == 1
               and not list(server.redis.scan_iter(match="crmbot:{u:line:*}:out")), "the diagnosis counted")
    user.tap("s")
    for q, letter in enumerate("DD"):
        user.tap(f"a:2:{q}:{letter}")
    eventually(lambda: len(figures.person("line", user.user_id)) == 2
               and not list(server.redis.scan_iter(match="crmbot:{u:line:*}:out")), "the retake counted")
    figures.set_name("line", user.user_id, SHOP)
    # another asks for a consultation with no diagnosis (a lead numbered 0) and books the first free slot
    Bookings(server.redis, clock=time.time).set_availability(AVAILABILITY)
    asker = LineUser(Http(server.base), server.fake_line, time.time)
    asker.follow()
    asker.say("consult")  # a keyword of both languages' scripts
    slots = eventually(lambda: [m for m in server.fake_line.delivered(asker.user_id) if m["type"] == "flex"],
                       "the free slots")[0]
    asker.tap(postbacks(slots)[0]["data"])
    eventually(lambda: Bookings(server.redis, clock=time.time).bookings_of(Subject("line", asker.user_id)),
               "the booking")
    eventually(lambda: figures.person("line", asker.user_id), "the request counted")
    figures.set_name("line", asker.user_id, ASKER)
    TeamStore(server.redis).register(TEAM, "ページ確認チーム", "Asia/Tokyo", "U0PAGES", time.time())
    store = OperatorStore(server.redis, time.time)
    if store.by_email(ADMIN[0]) is None:
        store.create(ADMIN[0], ADMIN[2], "admin", ADMIN[1], first=not store.any())
    return {"user": user.user_id, "asker": asker.user_id, "team": TEAM.id}


def log_in_as_admin(browser: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server.url("/console/login"))
    until(browser, lambda b: b.find_elements(By.ID, "email"), "the e-mail field")[0].send_keys(ADMIN[0])
    browser.find_element(By.ID, "password").send_keys(ADMIN[1])
    browser.find_element(By.ID, "login-submit").click()
    until(browser, lambda b: b.current_url.rstrip("/").endswith("/console"), "the overview after the login")


def sweep(browser: Any, server: Server, locale: str) -> None:
    """Each page in ``locale``: its language, its heading, its nav item marked, the nav in its words; the
    booking asked for with no diagnosis leads to its lead page (numbered 0), as its row in the leads list does;
    a lead's and a person's page name the shop; the error pages say what went wrong."""
    from selenium.webdriver.common.by import By

    from bot.console.texts import TEXTS

    t = TEXTS[locale]
    script = load_script(locale)

    def h1() -> str:
        return str(until(browser, lambda b: b.find_elements(By.TAG_NAME, "h1"), f"{browser.current_url}'s heading")[0]
                   .text)

    def lang() -> str:
        return str(browser.find_element(By.TAG_NAME, "html").get_attribute("lang"))

    browser.get(server.url("/console/login"))
    assert (lang(), h1()) == (locale, t["login_title"])
    assert browser.find_element(By.ID, "login-submit").text == t["login_submit"]
    log_in_as_admin(browser, server)
    nav = {"overview": "nav_overview", "leads": "nav_leads", "bookings": "nav_bookings",
           "availability": "nav_availability", "teams": "nav_teams", "delivery": "nav_delivery", "audit": "nav_audit",
           "operators": "nav_operators", "experiments": "nav_experiments", "content": "nav_content"}
    for path, item, heading in [
            ("/console/", "overview", t["overview_title"]), ("/console/leads", "leads", t["leads_title"]),
            ("/console/bookings", "bookings", t["bookings_title"]),
            ("/console/availability", "availability", t["availability_title"]),
            ("/console/teams", "teams", t["teams_title"]), (f"/console/teams/{TEAM.id}", "teams", "ページ確認チーム"),
            ("/console/delivery", "delivery", t["delivery_title"]), ("/console/audit", "audit", t["audit_title"]),
            ("/console/operators", "operators", t["operators_title"]), ("/console/profile", "", t["profile_title"]),
            ("/console/experiments", "experiments", t["exp_title"]),
            ("/console/content", "content", t["content_title"])]:
        browser.get(server.url(path))
        assert (lang(), h1()) == (locale, heading), path
        marked = [e.get_attribute("id")
                  for e in browser.find_elements(By.CSS_SELECTOR, "#nav a.active, a.whoami.active")]
        assert marked == [f"nav-{item or 'profile'}"], path
        assert [browser.find_element(By.ID, f"nav-{k}").text for k in nav] == [t[v] for v in nav.values()], path
        assert browser.find_element(By.ID, "nav-profile").text == ADMIN[2]
    # the booking asked for with no diagnosis, on the bookings page; its request a lead numbered 0 in the list
    browser.get(server.url("/console/bookings"))
    [booked] = browser.find_elements(By.CSS_SELECTOR, "#bookings-table tr.booking-row")
    assert ASKER in booked.text and booked.get_attribute("data-status") == "booked"
    booked.find_element(By.LINK_TEXT, ASKER).click()  # to the request's lead (no diagnosis: no tier)
    until(browser, lambda b: b.find_elements(By.ID, "lead-work"), "the request's lead page")
    assert h1() == ASKER
    browser.get(server.url("/console/leads"))
    asked = [r for r in browser.find_elements(By.CSS_SELECTOR, "#leads-table tr.lead-row") if ASKER in r.text]
    assert len(asked) == 1 and asked[0].get_attribute("data-consult") == "new"
    asked[0].find_element(By.TAG_NAME, "a").click()
    until(browser, lambda b: b.find_elements(By.ID, "lead-work"), "the request's lead page from the list")
    assert h1() == ASKER
    # a lead's page, from its row; the person's page from the lead's
    browser.get(server.url("/console/leads"))
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#leads-table tr.lead-row")
               if r.get_attribute("data-tier") == "A")
    row.find_element(By.TAG_NAME, "a").click()
    until(browser, lambda b: b.find_elements(By.ID, "lead-work"), "the lead's page")
    assert h1() == f"{SHOP} {script.tiers['A'].label}"
    assert browser.find_element(By.ID, "lead-a-count").text == "10/10"
    browser.find_element(By.ID, "lead-person").click()
    until(browser, lambda b: b.find_elements(By.ID, "person-diagnoses"), "the person's page")
    assert h1() == SHOP and lang() == locale
    assert "/people/" in browser.current_url
    # the try page
    browser.get(server.url("/console/try/"))
    assert lang() == locale and h1() == f"{script.title} {try_texts(locale)['test_badge']}"
    assert browser.find_element(By.CSS_SELECTOR, ".try-console").text == f"← {try_texts(locale)['console']}"
    # not found: an unknown address, and a lead reference that matches no lead
    for path in ("/console/nothing-here", "/console/leads/0-00000000000000000000"):
        browser.get(server.url(path))
        assert h1() == t["not_found"] and browser.find_elements(By.ID, "console-error"), path
    # a form whose CSRF token is wrong: the form has expired, and nothing changed
    browser.get(server.url("/console/profile"))
    browser.execute_script("document.querySelectorAll('input[name=csrf_token]').forEach("
                           "function (e) { e.value = 'not-the-token'; });")
    browser.find_element(By.CSS_SELECTOR, "#logout-form button").click()
    until(browser, lambda b: b.find_elements(By.ID, "console-error"), "the expired form's page")
    assert h1() == t["csrf_title"]
    assert t["csrf_body"] in browser.find_element(By.ID, "console-error").text
    browser.get(server.url("/console/profile"))  # still logged in: the logout was refused
    assert h1() == t["profile_title"]


def test_every_page_names_itself_in_japanese(page: Any, server: Server, data: dict[str, str]) -> None:
    assert JA["lang"] == "ja"
    sweep(page, server, "ja")


def test_a_persons_page_shows_each_diagnosis(page: Any, server: Server, data: dict[str, str]) -> None:
    from selenium.webdriver.common.by import By

    log_in_as_admin(page, server)
    page.get(server.url("/console/leads?q=" + SHOP))
    page.find_element(By.CSS_SELECTOR, "#leads-table tr.lead-row a").click()
    until(page, lambda b: b.find_elements(By.ID, "lead-person"), "the lead's page")[0].click()
    table = until(page, lambda b: b.find_elements(By.ID, "person-diagnoses"), "the person's page")[0]
    heads = [th.text.split("\n")[0] for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    assert heads == ["", "#1", "#2"]  # both diagnoses, oldest first
    body = {tr.find_element(By.TAG_NAME, "th").text: [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")}
    assert body[JA["tier"]] == ["A", ""]  # the retake is not finished
    assert body[JA["a_count"]] == ["10", ""]
    q1 = next(v for k, v in body.items() if k.startswith("Q1 "))
    assert q1[0].startswith("A") and q1[1].startswith("D")
    assert f"{JA['retakes']}: 2" in page.find_element(By.TAG_NAME, "main").text
    assert data["user"] not in page.current_url and data["user"] not in page.page_source


def test_a_crawl_reaches_the_booking_the_request_with_no_diagnosis_and_the_team(page: Any, server: Server,
                                                                                data: dict[str, str]) -> None:
    """Every link from the overview, as tests/browser/test_lead_work.py crawls them, on this module's data: the
    two diagnoses, the request with no diagnosis (a lead numbered 0, reached from the bookings and the leads
    list), the Slack team; no address or page names either LINE user."""
    log_in_as_admin(page, server)
    seen = crawl(page, server, [data["user"], data["asker"]])
    paths = {urlsplit(u).path for u in seen}
    assert len([p for p in paths if p.startswith("/console/leads/")]) == 3, sorted(paths)
    # a person's page is addressed by one of their leads: the shop who retook has two addresses
    assert len([p for p in paths if p.startswith("/console/people/")]) == 3, sorted(paths)
    assert {"/console/bookings", "/console/availability", f"/console/teams/{data['team']}",
            "/console/operators", "/console/profile",
            "/console/audit", "/console/try/"} <= paths
