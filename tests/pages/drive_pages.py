"""The conversation pages driven in Chromium through WebDriver, as a support lead uses them.

Run by tests/pages.rs against a real `convolog` (its API address in CONVOLOG_PAGES_URL)
holding the fixture sessions and one Pipecat call ("page-1") with a recording served from
another origin. Filters the list by outcome and detected issue, pages forward, exports CSV
and JSON Lines and parses them, opens the session, adds and removes a label, flags it, plays
from the third transcript line, and takes screenshots of both pages at 1400 and 400 px.
Exits non-zero with a message on the first thing that is not as expected.
"""

import csv
import json
import os
import pathlib
import sys
import time
import urllib.parse
import urllib.request

# Never fetch drivers from the network: the test names Debian's chromium and chromedriver.
os.environ["SE_OFFLINE"] = "true"

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BASE = os.environ["CONVOLOG_PAGES_URL"]
SHOTS = pathlib.Path(os.environ["CONVOLOG_PAGES_SHOTS"])
DOWNLOADS = pathlib.Path(os.environ["CONVOLOG_PAGES_DOWNLOADS"])
SESSION = "page-1"


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CONVOLOG_TEST_CHROMIUM", "/usr/bin/chromium")
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--hide-scrollbars",
        "--mute-audio",
        "--window-size=1400,1000",
    ]:
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(DOWNLOADS),
            "download.prompt_for_download": False,
        },
    )
    service = Service(os.environ.get("CONVOLOG_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


def wait(driver, what, predicate, seconds=20):
    # An element read while the page reloads (after a form is sent) is stale: look again.
    waiting = WebDriverWait(
        driver,
        seconds,
        poll_frequency=0.1,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    try:
        return waiting.until(lambda d: predicate(d))
    except Exception as e:
        raise AssertionError(f"timed out waiting for {what} on {driver.current_url}") from e


def screenshot(driver, name, width):
    driver.set_window_size(width, 1000)
    driver.execute_script("window.scrollTo(0, 0)")
    # Let the layout settle at the new width.
    time.sleep(0.3)
    path = SHOTS / f"{name}-{width}.png"
    png = driver.get_screenshot_as_png()
    path.write_bytes(png)
    check(png.startswith(b"\x89PNG\r\n\x1a\n"), f"{path} is not a PNG")
    # A blank page compresses to a few kilobytes; a page with text and tables does not.
    check(len(png) > 20_000, f"{path} looks empty: {len(png)} bytes")
    width_seen = driver.execute_script("return document.documentElement.clientWidth")
    scroll = driver.execute_script("return document.documentElement.scrollWidth")
    check(scroll <= width_seen + 1, f"{name} scrolls sideways at {width} px: {scroll} > {width_seen}")
    print(f"screenshot {path} ({len(png)} bytes)")


# Every visible form control has a label (a <label>, or aria-label on icon buttons), and every
# text meets WCAG AA contrast against the background it is drawn on (4.5:1; 3:1 for large
# text). Returns what fails.
ACCESSIBILITY = """
function rgb(s) { var m = s.match(/[\\d.]+/g) || []; return m.map(Number); }
function lum(c) {
  var v = c.slice(0, 3).map(function (x) { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
  return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
}
function background(el) {
  for (; el; el = el.parentElement) {
    var c = rgb(getComputedStyle(el).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c;
  }
  return [255, 255, 255];
}
var problems = [];
document.querySelectorAll("input:not([type=hidden]), select, textarea, button").forEach(function (el) {
  if (el.offsetParent === null && el.type !== "checkbox") return;
  var named = (el.labels && el.labels.length) || el.getAttribute("aria-label") || (el.tagName === "BUTTON" && el.textContent.trim());
  if (!named) problems.push("unlabelled " + el.outerHTML.slice(0, 80));
});
var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
var seen = new Set();
while (walker.nextNode()) {
  var el = walker.currentNode.parentElement;
  if (!walker.currentNode.textContent.trim() || seen.has(el) || el.offsetParent === null) continue;
  seen.add(el);
  var style = getComputedStyle(el);
  var fg = rgb(style.color), bg = background(el);
  var a = lum(fg), b = lum(bg);
  var ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  var size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
  var needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
  if (ratio < needed) problems.push(ratio.toFixed(2) + ":1 for " + JSON.stringify(el.textContent.trim().slice(0, 40)) + " (" + el.className + ")");
}
return problems;
"""


def accessible(driver, page):
    problems = driver.execute_script(ACCESSIBILITY)
    check(not problems, f"{page}: {problems}")


def api(path):
    with urllib.request.urlopen(BASE + path, timeout=10) as r:
        return json.load(r)


def row_ids(driver):
    links = driver.find_elements(By.CSS_SELECTOR, "table.list tbody td[data-label='First words'] a")
    return [urllib.parse.unquote(a.get_attribute("href").rsplit("/", 1)[1]) for a in links]


def downloaded(name, seconds=20):
    path = DOWNLOADS / name
    deadline = time.time() + seconds
    while time.time() < deadline:
        if path.exists() and not (DOWNLOADS / (name + ".crdownload")).exists():
            return path.read_text(encoding="utf-8-sig")
        time.sleep(0.1)
    raise AssertionError(f"{name} was not downloaded into {DOWNLOADS}")


def list_page(driver):
    driver.get(BASE + "/sessions?limit=1")
    total = driver.find_element(By.ID, "match-count").text
    check(total.startswith("6 conversations"), f"match count: {total!r}")
    for pick in driver.find_elements(By.CSS_SELECTOR, "details.pick, details.more"):
        pick.find_element(By.TAG_NAME, "summary").click()
    accessible(driver, "list page")
    driver.get(BASE + "/sessions?limit=1")
    screenshot(driver, "list", 1400)
    screenshot(driver, "list", 400)
    driver.set_window_size(1400, 1000)

    # Filter by outcome and detected issue with the form, as a person does.
    for group, value in [("Outcome", "Skill Error"), ("Detected issue", "tool_error")]:
        summary = driver.find_element(By.XPATH, f"//details[@class='pick']/summary[starts-with(., '{group}')]")
        summary.click()
        box = summary.find_element(By.XPATH, f"..//input[@type='checkbox' and @value='{value}']")
        box.click()
        check(box.is_selected(), f"{group} {value} not checked")
    driver.find_element(By.CSS_SELECTOR, ".actions button[type=submit]").click()
    wait(driver, "the filtered list", lambda d: "outcome=Skill+Error" in d.current_url)
    query = urllib.parse.parse_qs(urllib.parse.urlparse(driver.current_url).query)
    check(query.get("detected_issue") == ["tool_error"], f"URL lost the issue filter: {driver.current_url}")
    count = driver.find_element(By.ID, "match-count").text
    check(count.startswith("2 conversations"), f"filtered count: {count!r}")
    first = row_ids(driver)
    check(len(first) == 1, f"one row per page, got {first}")
    outcomes = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "td[data-label='Outcome']")]
    check(outcomes == ["Skill Error"], f"outcome column: {outcomes}")
    marks = driver.find_element(By.CSS_SELECTOR, "td[data-label='Marks']").text
    check("tool_error" in marks, f"marks column lacks the issue: {marks!r}")

    # The filter is in the URL: opened afresh, the same page.
    filtered_url = driver.current_url
    driver.get(filtered_url)
    check(row_ids(driver) == first, "the URL does not reproduce the page")

    # Page forward with the cursor.
    driver.find_element(By.CSS_SELECTOR, "a.next").click()
    wait(driver, "the second page", lambda d: "cursor=" in d.current_url)
    second = row_ids(driver)
    check(len(second) == 1 and second != first, f"second page: {second} after {first}")
    check("outcome=Skill+Error" in driver.current_url, "paging dropped the filter")
    seen = set(first + second)
    check(seen == {"s4", SESSION}, f"the filtered sessions: {seen}")

    # Export exactly what is filtered, in both formats, and read the files.
    driver.get(filtered_url)
    driver.find_element(By.LINK_TEXT, "CSV").click()
    rows = list(csv.DictReader(downloaded("sessions.csv").splitlines()))
    check({r["session_id"] for r in rows} == seen, f"CSV export: {[r['session_id'] for r in rows]}")
    check(all(r["outcome"] == "Skill Error" for r in rows), "CSV outcome column")
    driver.find_element(By.LINK_TEXT, "JSON Lines").click()
    lines = [json.loads(line) for line in downloaded("sessions.jsonl").splitlines() if line]
    check({r["session_id"] for r in lines} == seen, f"JSONL export: {lines}")
    check(all("tool_error" in r["detected_issues"] for r in lines), "JSONL detected issues")

    # Sorting by a column header keeps the filter.
    driver.get(filtered_url)
    driver.find_element(By.XPATH, "//th/a[starts-with(., 'Turns')]").click()
    wait(driver, "sorted by turns", lambda d: "sort=turns" in d.current_url)
    check("outcome=Skill+Error" in driver.current_url, "sorting dropped the filter")
    check(row_ids(driver) == ["s4"], f"most turns first: {row_ids(driver)}")
    header = driver.find_element(By.XPATH, "//th[@aria-sort]")
    check(header.get_attribute("aria-sort") == "descending", "sorted column not marked")


def session_page(driver):
    driver.get(BASE + "/sessions")
    driver.find_element(By.LINK_TEXT, "Hello, I need help with my booking.").click()
    wait(driver, "the session page", lambda d: d.current_url.endswith(f"/sessions/{SESSION}"))
    check(driver.title == f"Session {SESSION} · convolog", driver.title)

    # Add a label, then remove it.
    field = driver.find_element(By.ID, "new-label")
    check(field.get_attribute("id") and driver.find_element(By.XPATH, "//label[input[@id='new-label']]"), "label field unlabelled")
    field.send_keys("callback")
    field.submit()
    wait(driver, "the new label", lambda d: "callback" in d.find_element(By.ID, "marks").text)
    check(api(f"/v1/sessions/{SESSION}")["labels"] == ["callback"], "label not stored")
    driver.find_element(By.CSS_SELECTOR, "button[aria-label='Remove label callback']").click()
    wait(driver, "the label gone", lambda d: "callback" not in d.find_element(By.ID, "marks").text)
    check(api(f"/v1/sessions/{SESSION}")["labels"] == [], "label not removed")

    # Flag it with a reason.
    reason = driver.find_element(By.ID, "flag-reason")
    reason.send_keys("wrong day booked")
    reason.submit()
    wait(driver, "the flag", lambda d: "Flagged: wrong day booked" in d.find_element(By.ID, "marks").text)
    summary = api(f"/v1/sessions/{SESSION}")
    check(summary["flagged"] is True and summary["flag_reason"] == "wrong day booked", f"flag: {summary}")

    # The waterfall: a span opens to its attributes.
    waterfall = driver.find_element(By.CSS_SELECTOR, "#turn-2 details.waterfall")
    waterfall.find_element(By.TAG_NAME, "summary").click()
    span = waterfall.find_element(By.XPATH, ".//details[contains(@class,'span')][.//span[@class='sname' and normalize-space()='llm']]")
    span.find_element(By.TAG_NAME, "summary").click()
    attrs = span.find_element(By.CSS_SELECTOR, "table.attrs").text
    check("gen_ai.request.model" in attrs or "llm" in attrs, f"span attributes: {attrs!r}")
    stages = driver.find_element(By.CSS_SELECTOR, "#turn-2 .stages").text
    check("reported:" in stages or "derived:" in stages, f"stage sources: {stages!r}")

    # Play from the third transcript line.
    driver.get(BASE + f"/sessions/{SESSION}")
    wait(
        driver,
        "the recording and its cues",
        lambda d: d.execute_script(
            "var a = document.getElementById('recording');"
            "var c = a && a.textTracks[0] && a.textTracks[0].cues;"
            "return a && a.readyState >= 1 && c && c.length >= 3;"
        ),
    )
    lines = driver.find_elements(By.CSS_SELECTOR, ".msg[data-cue]")
    check(len(lines) == 6, f"transcript lines with cues: {len(lines)}")
    third = lines[2]
    check(third.get_attribute("data-cue") == "3", f"third line's cue: {third.get_attribute('data-cue')}")
    third.find_element(By.CSS_SELECTOR, ".text").click()
    state = driver.execute_script(
        "var a = document.getElementById('recording'); a.pause();"
        "var cue = a.textTracks[0].cues.getCueById('3');"
        "var on = document.querySelectorAll('.msg.speaking');"
        "return {time: a.currentTime, start: cue.startTime, end: cue.endTime,"
        "  speaking: Array.prototype.map.call(on, function (l) { return l.getAttribute('data-cue'); }),"
        "  text: on.length ? on[0].querySelector('.text').textContent : ''};"
    )
    check(state["start"] > 0, f"cue 3 starts at {state['start']}")
    check(state["start"] - 0.05 <= state["time"] <= state["start"] + 1.5, f"player time after the click: {state}")
    check(state["speaking"] == ["3"], f"highlighted lines: {state}")
    check(state["text"] == third.find_element(By.CSS_SELECTOR, ".text").text, f"highlighted text: {state}")
    print(f"played from line 3: cue {state['start']:.3f}-{state['end']:.3f} s, player at {state['time']:.3f} s")

    # The same from the keyboard: the fifth line's Play button, Enter.
    lines[4].find_element(By.CSS_SELECTOR, "button.seek").send_keys(Keys.ENTER)
    state = driver.execute_script(
        "var a = document.getElementById('recording'); a.pause();"
        "return {time: a.currentTime, start: a.textTracks[0].cues.getCueById('5').startTime,"
        "  speaking: document.querySelector('.msg.speaking').getAttribute('data-cue')};"
    )
    check(state["start"] - 0.05 <= state["time"] <= state["start"] + 1.5, f"keyboard seek: {state}")
    check(state["speaking"] == "5", f"keyboard seek highlight: {state}")

    for details in driver.find_elements(By.CSS_SELECTOR, "details.waterfall"):
        details.find_element(By.TAG_NAME, "summary").click()
    accessible(driver, "session page")
    screenshot(driver, "session", 1400)
    screenshot(driver, "session", 400)


def main():
    SHOTS.mkdir(parents=True, exist_ok=True)
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    started = time.time()
    driver = browser()
    try:
        list_page(driver)
        session_page(driver)
        errors = [
            e for e in driver.get_log("browser") if e.get("level") == "SEVERE" and "favicon" not in e.get("message", "")
        ]
        check(not errors, f"browser console errors: {errors}")
    finally:
        driver.quit()
    print(f"browser checks took {time.time() - started:.1f} s")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
