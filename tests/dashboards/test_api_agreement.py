"""The convolog API and the dashboards count the same outcomes and states.

For every session of the test database (the one `convolog-simulate` filled through a running
`convolog serve`), the outcome and state the API returns in
`GET {CONVOLOG_TEST_API_URL}/v1/sessions/{id}/transcript` are counted, and compared with what
the Overview's "Sessions by outcome" and "Sessions by state" panels show: their SQL expanded
as Grafana and the plugin expand it, every variable at All and a time range covering all data.

State and outcome depend on the clock (an idle session becomes EXPIRED, and its outcome is no
longer In Progress, without a new span), so a session could change between the panel query
and the API call. The panels are queried before and after the API calls; when both answers
agree nothing changed in between (a session only ever expires once), and the API must match
them. Otherwise the round is repeated.

`CONVOLOG_TEST_API_URL` is the base URL of the `convolog serve` that writes the test database
(scripts/test.sh sets it). Without it the test is skipped, except under CI, where it fails.
"""

import collections
import json
import os
import urllib.error
import urllib.parse
import urllib.request

import pytest

from dashboards import BY_UID
from expand import expand
from test_queries import PANEL_QUERIES, scenario_context, scenario_variables

ROUNDS = 3


@pytest.fixture(scope="module")
def api_url(request):
    url = os.environ.get("CONVOLOG_TEST_API_URL")
    message = None
    if request.config.getoption("--seed-synthetic"):
        message = "--seed-synthetic writes a database no convolog API serves"
    elif not url:
        message = ("set CONVOLOG_TEST_API_URL to the convolog API (GET /v1/sessions/{id}/transcript) "
                   "that serves CONVOLOG_TEST_DATABASE")
    if message:
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url.rstrip("/")


def transcript(api_url, session_id):
    url = f"{api_url}/v1/sessions/{urllib.parse.quote(session_id, safe='')}/transcript"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read().decode())
    except urllib.error.HTTPError as error:
        raise AssertionError(f"GET {url}: {error.code} {error.read().decode(errors='replace')}") from None


def panel_counts(engine, data, title, label):
    """{label value: sessions} as the Overview panel shows it, summed over its time buckets."""
    query = next(q for q in PANEL_QUERIES if q.key == ("convolog-overview", title))
    board = BY_UID[query.uid]
    sql = expand(query.target["rawSql"], scenario_variables(board, "all", data),
                 scenario_context("all", data, query.panel))
    result = engine.query(sql)
    counts = collections.Counter()
    for row in result.rows:
        record = dict(zip(result.names, row))
        counts[record[label]] += int(record["sessions"])
    return counts


def dashboard_counts(engine, data):
    return {
        "outcome": panel_counts(engine, data, "Sessions by outcome", "outcome_name"),
        "state": panel_counts(engine, data, "Sessions by state", "state_name"),
    }


def api_counts(api_url, session_ids):
    counts = {"outcome": collections.Counter(), "state": collections.Counter()}
    for session_id in session_ids:
        body = transcript(api_url, session_id)
        assert body["session_id"] == session_id
        for field in counts:
            # The panels show an empty value as "unknown".
            counts[field][body[field] or "unknown"] += 1
    return counts


def test_api_and_dashboards_agree_on_outcomes_and_states(api_url, engine, server, data):
    session_ids = [row[0] for row in server.query("SELECT session_id FROM sessions_current ORDER BY session_id").rows]
    assert len(session_ids) == data.sessions
    for attempt in range(ROUNDS):
        before = dashboard_counts(engine, data)
        from_api = api_counts(api_url, session_ids)
        after = dashboard_counts(engine, data)
        if before == after:
            break
    else:
        pytest.fail(f"the panels changed during each of {ROUNDS} rounds of API calls; last:\n{before}\n{after}")
    for field in ("outcome", "state"):
        assert sum(after[field].values()) == len(session_ids), f"sessions by {field}: {after[field]}"
        assert dict(from_api[field]) == dict(after[field]), (
            f"sessions by {field}\n  API:       {dict(sorted(from_api[field].items()))}\n"
            f"  dashboard: {dict(sorted(after[field].items()))}")
