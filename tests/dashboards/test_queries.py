"""Every panel and variable query of the dashboards, expanded as Grafana and the ClickHouse
plugin expand it, runs on the test database (ClickHouse 18.16 in CI) and on chDB (current
ClickHouse), and returns what its panel reads: the columns below, of the right kinds, and rows
wherever the data guarantees some.
"""

import json
import re
import urllib.parse
from dataclasses import dataclass

import pytest

from clickhouse_http import quote
from dashboards import BY_UID, field_links, override_fields, panel_queries, variable_queries, variables
from expand import QueryContext, Variable, apply_conditional_all, expand, replace_variables

# ------------------------------------------------------------------------------------------
# What each panel expects. `witness` counts the rows in the database that guarantee the panel
# rows (None: it always has rows); `{session}` stands for the session the detail dashboard shows.

SESSIONS = "SELECT count() FROM sessions_current"
TURNS = "SELECT count() FROM turns_current"
TOOL_CALLS = "SELECT count() FROM tool_calls_current"
# Sessions with an outcome (the rates' denominator), and with a detected issue.
DECIDED = "SELECT count() FROM sessions_current WHERE outcome != 'In Progress'"
WITH_ISSUES = "SELECT count() FROM sessions_current WHERE notEmpty(detected_issues)"
# Answers to a question with a low confidence or a thumbs-down (uncited ones need more).
WEAK_ANSWERS = ("SELECT count() FROM answers_current WHERE question_key != '' "
                "AND (ifNull(confidence < 0.5, 0) = 1 OR feedback = 'down')")
ERROR_SPANS = ("SELECT count() FROM spans FINAL WHERE status_code = 'ERROR' "
               "AND trace_id GLOBAL IN (SELECT arrayJoin(trace_ids) FROM sessions_current)")


def measured(column):
    return f"SELECT count() FROM turns_current WHERE {column} IS NOT NULL"


@dataclass
class Expect:
    columns: list
    witness: str = None


STAGE_PERCENTILES = ["time", "p50", "p90", "p95", "p99"]

EXPECTED = {
    ("convolog-overview", "Sessions"): Expect(["sessions"]),
    ("convolog-overview", "Success rate"): Expect(["success_rate"], DECIDED),
    ("convolog-overview", "Handoff rate"): Expect(["handoff_rate"], DECIDED),
    ("convolog-overview", "Error rate"): Expect(["error_rate"], DECIDED),
    ("convolog-overview", "Active sessions"): Expect(["active_sessions"], SESSIONS),
    ("convolog-overview", "Cost"): Expect(["total_usd", "llm_usd", "stt_usd", "tts_usd"], SESSIONS),
    ("convolog-overview", "Turns"): Expect(["turns"]),
    ("convolog-overview", "Median session duration"): Expect(["median_duration_s"], SESSIONS),
    ("convolog-overview", "Cost per session"): Expect(["total_usd", "llm_usd", "stt_usd", "tts_usd"], SESSIONS),
    ("convolog-overview", "Sessions with error spans"): Expect(["sessions_with_errors"], SESSIONS),
    ("convolog-overview", "Tool error rate"): Expect(["tool_error_rate"], TOOL_CALLS),
    ("convolog-overview", "Voice-to-voice p95"): Expect(["voice_to_voice_p95_ms"], measured("voice_to_voice_ms")),
    ("convolog-overview", "Sessions by outcome"): Expect(["time", "outcome_name", "sessions"], SESSIONS),
    ("convolog-overview", "Sessions by state"): Expect(["state_name", "sessions"], SESSIONS),
    ("convolog-overview", "Outcome rates"): Expect(["time", "success_rate", "handoff_rate", "error_rate"], SESSIONS),
    ("convolog-overview", "Cost over time"): Expect(["time", "llm_usd", "stt_usd", "tts_usd"], SESSIONS),
    ("convolog-overview", "Sessions by channel"): Expect(["time", "channel_name", "sessions"], SESSIONS),
    ("convolog-overview", "Sessions by agent"): Expect(["time", "agent", "sessions"], SESSIONS),
    ("convolog-overview", "Detected issues"): Expect(["time", "issue", "sessions"], WITH_ISSUES),
    ("convolog-overview", "Top detected issues"): Expect(["issue", "sessions"], WITH_ISSUES),
    ("convolog-overview", "Top intents"): Expect(["intent", "sessions"], "SELECT count() FROM sessions_current WHERE intent != ''"),
    ("convolog-overview", "Top skills"): Expect(["skill", "sessions"], "SELECT count() FROM sessions_current WHERE notEmpty(skills)"),
    ("convolog-overview", "Top tools"): Expect(["tool", "calls"], TOOL_CALLS),
    ("convolog-overview", "Call status (voice)"): Expect(
        ["call_status", "sessions"], "SELECT count() FROM sessions_current WHERE channel = 'voice' AND call_status != ''"),
    ("convolog-overview", "Ended reason (voice)"): Expect(
        ["ended_reason", "sessions"], "SELECT count() FROM sessions_current WHERE channel = 'voice' AND ended_reason != ''"),
    ("convolog-overview", "Sessions by framework"): Expect(["framework_name", "sessions"], SESSIONS),
    ("convolog-overview", "Concurrent sessions"): Expect(["time", "concurrent_sessions"], SESSIONS),
    ("convolog-overview", "Error spans over time"): Expect(["time", "with_error_spans", "with_tool_errors"], SESSIONS),
    ("convolog-overview", "Session duration"): Expect(["time", "p50", "p95"], SESSIONS),
    ("convolog-overview", "Tokens"): Expect(["time", "input_tokens", "output_tokens"], SESSIONS),
    ("convolog-overview", "Top knowledge gaps"): Expect(["question", "weak_answers"], WEAK_ANSWERS),

    ("convolog-latency", "End of utterance"): Expect(STAGE_PERCENTILES, measured("end_of_utterance_ms")),
    ("convolog-latency", "Speech to text"): Expect(STAGE_PERCENTILES, measured("stt_ms")),
    ("convolog-latency", "LLM time to first token"): Expect(STAGE_PERCENTILES, measured("llm_ttft_ms")),
    ("convolog-latency", "TTS time to first audio"): Expect(STAGE_PERCENTILES, measured("tts_ttfb_ms")),
    ("convolog-latency", "Voice to voice"): Expect(STAGE_PERCENTILES, measured("voice_to_voice_ms")),
    ("convolog-latency", "Median per stage"): Expect(
        ["end_of_utterance_ms", "stt_ms", "llm_ttft_ms", "tts_ttfb_ms", "voice_to_voice_ms"],
        measured("voice_to_voice_ms")),
    ("convolog-latency", "LLM time to first token p95 by model"): Expect(
        ["time", "model", "ttft_p95_ms"], measured("llm_ttft_ms")),
    ("convolog-latency", "LLM by model"): Expect(
        ["provider", "model", "turns", "ttft_p50_ms", "ttft_p95_ms", "voice_to_voice_p50_ms", "voice_to_voice_p95_ms"],
        "SELECT count() FROM turns_current WHERE llm_model != ''"),
    ("convolog-latency", "Speech to text by provider"): Expect(
        ["provider", "model", "turns", "stt_p50_ms", "stt_p95_ms", "end_of_utterance_p50_ms",
         "end_of_utterance_p95_ms"],
        "SELECT count() FROM turns_current WHERE stt_provider != ''"),
    ("convolog-latency", "Text to speech by provider and voice"): Expect(
        ["provider", "voice", "turns", "ttfb_p50_ms", "ttfb_p95_ms", "ttfb_p99_ms"],
        "SELECT count() FROM turns_current WHERE tts_provider != ''"),
    ("convolog-latency", "Voice-to-voice distribution"): Expect(["latency_bucket", "turns"], measured("voice_to_voice_ms")),
    ("convolog-latency", "Where the numbers come from"): Expect(["stage", "origin", "detail", "turns"], TURNS),
    ("convolog-latency", "Slowest turns"): Expect(
        ["time", "session_id", "turn", "voice_to_voice_ms", "end_of_utterance_ms", "stt_ms", "llm_ttft_ms",
         "tts_ttfb_ms", "tool_ms", "llm_model", "tts_voice", "interrupted", "user_text"],
        measured("voice_to_voice_ms")),

    ("convolog-tools-errors", "Tool calls by tool"): Expect(["time", "tool", "calls"], TOOL_CALLS),
    ("convolog-tools-errors", "Tool error rate"): Expect(["time", "error_rate"], TOOL_CALLS),
    ("convolog-tools-errors", "Tool call duration p95 by tool"): Expect(["time", "tool", "duration_p95_ms"], TOOL_CALLS),
    ("convolog-tools-errors", "Tools"): Expect(
        ["tool", "calls", "errors", "error_rate", "duration_p50_ms", "duration_p95_ms", "duration_max_ms", "sessions"],
        TOOL_CALLS),
    ("convolog-tools-errors", "Recent tool errors"): Expect(
        ["time", "session_id", "turn", "tool", "error_message", "arguments", "duration_ms"],
        "SELECT count() FROM tool_calls_current WHERE is_error = 1"),
    ("convolog-tools-errors", "Error spans by stage"): Expect(["time", "stage", "error_spans"], ERROR_SPANS),
    ("convolog-tools-errors", "Turns with errors"): Expect(["time", "turns_with_errors"], TURNS),
    ("convolog-tools-errors", "Errors by stage and provider"): Expect(
        ["stage", "provider", "service", "error_spans", "traces", "example_message"], ERROR_SPANS),

    ("convolog-interruptions", "Barge-in rate"): Expect(["time", "barge_in_rate"], TURNS),
    ("convolog-interruptions", "Interruptions by signal"): Expect(
        ["time", "signal_name", "interruptions"], "SELECT count() FROM interruptions_current"),
    ("convolog-interruptions", "Barge-in rate by turn position"): Expect(["turn", "barge_in_rate", "turns"], TURNS),
    ("convolog-interruptions", "Interruptions by agent and channel"): Expect(
        ["agent", "channel", "sessions", "turns", "interruptions", "interruptions_per_turn"], SESSIONS),
    ("convolog-interruptions", "Recent interruptions"): Expect(
        ["time", "session_id", "turn", "signal", "agent_text", "spoken_text"],
        "SELECT count() FROM interruptions_current"),

    ("convolog-conversations", "Turns"): Expect(["turns"]),
    ("convolog-conversations", "With error spans"): Expect(["conversations_with_errors"]),
    ("convolog-conversations", "With interruptions"): Expect(["conversations_with_interruptions"]),

    ("convolog-session", "Session"): Expect(
        ["agent", "channel", "environment", "service", "framework", "direction", "duration_s", "turns",
         "interruptions", "tool_calls", "error_spans", "tokens", "models"], None),
    ("convolog-session", "Status"): Expect(
        ["state", "outcome", "call_status", "ended_reason", "intent", "cost_usd", "issues", "user", "feedback"], None),
    ("convolog-session", "Transcript"): Expect(
        ["time", "turn", "speaker", "text", "spoken_text", "interrupted", "tool_name"], None),
    ("convolog-session", "Latency per turn"): Expect(
        ["turn", "end_of_utterance_ms", "stt_ms", "llm_ttft_ms", "tts_ttfb_ms", "tool_ms", "voice_to_voice_ms"],
        "SELECT count() FROM turns_current WHERE session_id = {session}"),
    ("convolog-session", "Turns"): Expect(
        ["turn", "time", "user_text", "agent_text", "agent_spoken_text", "interrupted", "voice_to_voice_ms",
         "voice_to_voice_source", "llm_ttft_ms", "llm_ttft_source", "llm_provider", "llm_model", "stt_provider",
         "tts_provider", "tts_voice", "input_tokens", "output_tokens", "tool_calls", "errors"],
        "SELECT count() FROM turns_current WHERE session_id = {session}"),
    ("convolog-session", "Tool calls"): Expect(
        ["time", "turn", "tool", "arguments", "result", "is_error", "error_message", "duration_ms"],
        "SELECT count() FROM tool_calls_current WHERE session_id = {session}"),
    ("convolog-session", "Interruptions"): Expect(
        ["time", "turn", "signal", "agent_text", "spoken_text"],
        "SELECT count() FROM interruptions_current WHERE session_id = {session}"),
    ("convolog-session", "Span waterfall"): Expect(
        ["traceID", "spanID", "parentSpanID", "serviceName", "operationName", "startTime", "duration", "tags",
         "serviceTags", "logs", "references", "kind", "statusCode", "statusMessage", "instrumentationLibraryName",
         "instrumentationLibraryVersion", "traceState"],
        "SELECT count() FROM spans WHERE trace_id GLOBAL IN "
        "(SELECT arrayJoin(trace_ids) FROM sessions_current WHERE session_id = {session})"),
}

# The Conversations dashboard has a stat and a table titled "Conversations"; they differ by type.
EXPECTED_BY_TYPE = {
    ("convolog-conversations", "Conversations", "stat"): Expect(["conversations"]),
    ("convolog-conversations", "Conversations", "table"): Expect(
        ["time", "session_id", "agent", "channel", "state", "outcome", "intent", "user_name", "cost_usd",
         "issues", "feedback", "environment", "service", "framework", "direction", "duration_s",
         "turns", "interruptions", "tool_calls", "tool_errors", "error_spans", "voice_to_voice_p50_ms",
         "voice_to_voice_p95_ms", "preview"], SESSIONS),
}

# Grafana's trace view reads these (see the plugin's trace query builder and Grafana's trace
# data frame): numbers in milliseconds, and JSON text the panel's convertFieldType
# transformation turns into the arrays the view expects.
TRACE_JSON_COLUMNS = {"tags", "serviceTags", "logs", "references"}

PANEL_QUERIES = panel_queries()


def expectation(query):
    key = query.key
    by_type = EXPECTED_BY_TYPE.get((*key, query.panel["type"]))
    if by_type is not None:
        return by_type
    if key not in EXPECTED:
        raise AssertionError(f"no expectation for panel {key}: add one to EXPECTED")
    return EXPECTED[key]


def test_every_expectation_has_its_panel():
    panels_present = {q.key for q in PANEL_QUERIES} | {(*q.key, q.panel["type"]) for q in PANEL_QUERIES}
    stale = (set(EXPECTED) | set(EXPECTED_BY_TYPE)) - panels_present
    assert not stale, f"expectations for panels that do not exist: {stale}"


# ------------------------------------------------------------------------------------------
# Variables and time ranges, as a user would set them.

SCENARIOS = ["all", "filtered"]
DATASOURCE_UID = "convolog-clickhouse"
CONVOLOG_URL = "http://localhost:8080"


def variable_column(board, name):
    """The key of `Data.distinct` a filter variable offers: a column of sessions_current, or
    for the Conversations dashboard's agent, every agent that took part (`agents` too)."""
    if name == "agent" and board["uid"] == "convolog-conversations":
        return "any_agent"
    return {"agent": "agent_name", "service": "service_name"}.get(name, name)


def scenario_variables(board, scenario, data):
    session = data.session
    values = {}
    for name, variable in variables(board).items():
        if name == "datasource":
            values[name] = Variable(DATASOURCE_UID)
        elif name in ("environment", "channel", "agent", "service"):
            column = {"agent": "agent_name", "service": "service_name"}.get(name, name)
            chosen = session[column]
            options = data.distinct[variable_column(board, name)]
            if scenario == "all" or chosen == "":
                values[name] = Variable(all=True, options=options)
            else:
                values[name] = Variable([chosen], options=options)
        elif name in ("outcome", "state"):
            chosen = session[name]
            if scenario == "all" or chosen == "":
                values[name] = Variable(all=True, options=data.distinct[name])
            else:
                values[name] = Variable([chosen], options=data.distinct[name])
        elif name == "issue":
            issues = list(session["detected_issues"])
            if scenario == "all" or not issues:
                values[name] = Variable(all=True, options=data.distinct["issue"])
            else:
                values[name] = Variable(issues[:1], options=data.distinct["issue"])
        elif name == "search":
            values[name] = Variable("" if scenario == "all" else data.search_text)
        elif name == "convolog_url":
            values[name] = Variable(CONVOLOG_URL)
        elif name == "session_id":
            values[name] = Variable(session["session_id"])
        elif name == "trace_id":
            traces = list(session["trace_ids"])
            values[name] = Variable(all=True, options=traces) if scenario == "all" else Variable(traces[:1], options=traces)
        else:
            raise AssertionError(f"{board['uid']}: the tests do not know how to set variable ${name}")
    return values


def parse_interval(text):
    match = re.fullmatch(r"(\d+)([smhd])", text or "")
    if not match:
        return 0
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def scenario_context(scenario, data, panel=None):
    if scenario == "all":
        from_s, to_s = data.first_start_s - 3600, data.last_end_s + 3600
    else:
        from_s, to_s = int(data.session["start_s"]) - 300, int(data.session["end_s"]) + 300
    # Grafana's interval: the range over the panel's data points (about its width in pixels),
    # but never below the panel's minimum interval.
    auto = max((to_s - from_s) // 1000, 1)
    minimum = parse_interval(panel.get("interval")) if panel else 0
    return QueryContext(from_s, to_s, max(auto, minimum))


# ------------------------------------------------------------------------------------------
# Column kinds

NUMBER = re.compile(r"^(Nullable\()?(U?Int(8|16|32|64|128|256)|Float(32|64)|Decimal.*)\)?$")
TIME = re.compile(r"^(Nullable\()?DateTime(\(.*\))?\)?$")
STRING = re.compile(r"^(Nullable\()?(LowCardinality\()?String\)?\)?$")


def kinds(result):
    return dict(zip(result.names, result.types))


def check_columns(query, result, expect):
    assert result.names == expect.columns, f"{query.id}: columns {result.names}, expected {expect.columns}"
    types = kinds(result)
    for name, kind in types.items():
        # Arrays, tuples and the like reach Grafana as JSON, which no panel here shows.
        assert NUMBER.match(kind) or TIME.match(kind) or STRING.match(kind), f"{query.id}: {name} is {kind}"
    panel = query.panel
    ptype = panel["type"]
    if query.target["format"] == 0:
        assert TIME.match(types["time"]) and result.names[0] == "time", f"{query.id}: time series need `time` first"
        rest = result.names[1:]
        labels = [name for name in rest if STRING.match(types[name])]
        numbers = [name for name in rest if NUMBER.match(types[name])]
        assert labels + numbers == rest, f"{query.id}: after time, label strings then numbers: {types}"
        assert numbers, f"{query.id}: no numeric column"
        times = result.column("time")
        assert times == sorted(times), f"{query.id}: a time series must be sorted by time"
        display = panel["fieldConfig"]["defaults"].get("displayName", "")
        for label in re.findall(r"\$\{__field\.labels\.(\w+)\}", display):
            assert label in labels, f"{query.id}: displayName uses label {label!r}, not a string column"
    elif ptype == "stat":
        fields = panel["options"]["reduceOptions"].get("fields", "")
        if fields != "/.*/":
            for name in result.names:
                assert NUMBER.match(types[name]), f"{query.id}: stat column {name} is {types[name]}, not a number"
    elif ptype in ("barchart", "piechart", "bargauge"):
        # A bar chart has a category column; a pie chart or bar gauge has one when it shows
        # each row (values: true), and only numbers when it reduces each column to one value.
        has_category = ptype == "barchart" or panel["options"]["reduceOptions"].get("values")
        x = (panel["options"].get("xField") or result.names[0]) if has_category else None
        if x is not None:
            assert STRING.match(types[x]), f"{query.id}: the category column {x} must be a string"
        for name in result.names:
            if name != x:
                assert NUMBER.match(types[name]), f"{query.id}: {name} is {types[name]}, not a number"
    elif ptype == "traces":
        for name in ("startTime", "duration"):
            assert NUMBER.match(types[name]), f"{query.id}: {name} must be a number of milliseconds"
        for name in ("traceID", "spanID", "parentSpanID", "serviceName", "operationName", *TRACE_JSON_COLUMNS):
            assert STRING.match(types[name]), f"{query.id}: {name} must be a string"
    if "time" in types and ptype == "table":
        assert TIME.match(types["time"]), f"{query.id}: `time` must be a DateTime"
    for field in override_fields(panel):
        assert field in result.names, f"{query.id}: an override refers to missing column {field!r}"
    for field, link in field_links(panel):
        for name in re.findall(r"\$\{__data\.fields\.(\w+)", link["url"]):
            assert name in result.names, f"{query.id}: link {link['title']!r} reads missing column {name!r}"
    fields = panel.get("options", {}).get("reduceOptions", {}).get("fields", "")
    if fields.startswith("/") and fields.endswith("/"):
        assert any(re.search(fields[1:-1], name) for name in result.names), f"{query.id}: no field matches {fields}"


def check_trace_frame(query, result):
    """What Grafana's trace view does with each row after the convertFieldType transformation."""
    for row in result.rows:
        record = dict(zip(result.names, row))
        for name in ("tags", "serviceTags"):
            pairs = json.loads(record[name])
            assert all(set(pair) == {"key", "value"} and isinstance(pair["value"], str) for pair in pairs), record[name]
        for log in json.loads(record["logs"]):
            assert isinstance(log["timestamp"], (int, float)) and all(set(f) == {"key", "value"} for f in log["fields"])
        for reference in json.loads(record["references"]):
            assert set(reference) == {"traceID", "spanID", "tags"}
        assert float(record["duration"]) >= 0 and float(record["startTime"]) > 1e12, record
    span_ids = {row[result.names.index("spanID")] for row in result.rows}
    assert len(span_ids) == len(result.rows), f"{query.id}: a span appears twice (raw spans must be deduplicated)"


# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("query", PANEL_QUERIES, ids=[q.id for q in PANEL_QUERIES])
def test_panel_query(query, scenario, engine, server, data):
    board = BY_UID[query.uid]
    sql = expand(query.target["rawSql"], scenario_variables(board, scenario, data),
                 scenario_context(scenario, data, query.panel))
    result = engine.query(sql)
    expect = expectation(query)
    check_columns(query, result, expect)
    if query.panel["type"] == "traces":
        check_trace_frame(query, result)

    # Rows: the whole time range with every variable at All must show what the data holds;
    # the session detail dashboard must show its session in both scenarios.
    if scenario == "all" or query.uid == "convolog-session":
        witness = expect.witness
        guaranteed = True
        if witness is not None:
            guaranteed = data.witness(server, witness.format(session=quote(data.session["session_id"]))) > 0
        if guaranteed:
            assert result.rows, f"{query.id}: no rows, though the data has some for it\n{sql}"
            if query.panel["type"] == "stat":
                assert any(value is not None for value in result.rows[0]), f"{query.id}: only NULLs\n{sql}"


VARIABLE_QUERIES = variable_queries()


@pytest.mark.parametrize("query", VARIABLE_QUERIES, ids=[q.id for q in VARIABLE_QUERIES])
def test_variable_query(query, engine, data):
    board = BY_UID[query.uid]
    raw = query.variable["query"]["rawSql"]
    result = engine.query(expand(raw, scenario_variables(board, "all", data), scenario_context("all", data)))
    assert len(result.names) == 1 and STRING.match(result.types[0]), f"{query.id}: one string column: {result.types}"
    values = [row[0] for row in result.rows]
    if query.variable["name"] == "trace_id":
        assert sorted(values) == sorted(data.session["trace_ids"])
    else:
        assert values == data.distinct[variable_column(board, query.variable["name"])]


def test_all_matches_every_value(server, data):
    """Selecting every value of the filter variables by hand counts what All counts, less the
    sessions where one of those columns is empty (an empty value is not offered)."""
    board = BY_UID["convolog-overview"]
    query = next(q for q in PANEL_QUERIES if q.key == ("convolog-overview", "Sessions"))
    ctx = scenario_context("all", data)
    everything = scenario_variables(board, "all", data)
    columns = {"environment": "environment", "channel": "channel", "agent": "agent_name", "service": "service_name",
               "outcome": "outcome"}
    selectable = [name for name in columns if everything[name].options]
    by_hand = dict(everything)
    for name in selectable:
        by_hand[name] = Variable(list(everything[name].options), options=everything[name].options)
    all_count = server.query(expand(query.target["rawSql"], everything, ctx)).rows[0][0]
    hand_count = server.query(expand(query.target["rawSql"], by_hand, ctx)).rows[0][0]
    unselectable = " OR ".join(f"{columns[name]} = ''" for name in selectable) or "0"
    empty = server.query(f"SELECT count() FROM sessions_current WHERE {ctx_filter(ctx)} AND ({unselectable})").rows[0][0]
    assert int(all_count) == int(hand_count) + int(empty)


def ctx_filter(ctx):
    return f"start_time >= toDateTime({ctx.from_s}) AND start_time <= toDateTime({ctx.to_s})"


LINKED = [q for q in PANEL_QUERIES if list(field_links(q.panel))]


@pytest.mark.parametrize("query", LINKED, ids=[q.id for q in LINKED])
def test_data_links_resolve(query, server, data):
    """Each data link, built from a row of its panel, is a well-formed URL to a convolog
    transcript or to a convolog dashboard with variables that dashboard has."""
    board = BY_UID[query.uid]
    values = scenario_variables(board, "all", data)
    ctx = scenario_context("all", data, query.panel)
    result = server.query(expand(query.target["rawSql"], values, ctx))
    if not result.rows:
        pytest.skip("the panel has no rows to build links from")
    row = dict(zip(result.names, result.rows[0]))
    for _, link in field_links(query.panel):
        url = replace_variables(apply_conditional_all(link["url"], values), values, ctx, data_fields=row,
                                default_format="uriencode")
        check_url(url, row.get("session_id"))


def check_url(url, session_id):
    assert "$" not in url, f"unexpanded variable in {url}"
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme:
        assert parsed.scheme in ("http", "https") and parsed.netloc, url
        assert url.startswith(CONVOLOG_URL + "/"), url
        path = urllib.parse.unquote(parsed.path)
        assert path in (f"/sessions/{session_id}", f"/v1/sessions/{session_id}/transcript"), url
        assert parsed.query in ("", "format=text"), url
        return
    match = re.fullmatch(r"/d/([\w-]+)", parsed.path)
    assert match and match.group(1) in BY_UID, f"link to an unknown dashboard: {url}"
    target_variables = variables(BY_UID[match.group(1)])
    params = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    for name, value in params.items():
        if name.startswith("var-"):
            assert name[4:] in target_variables, f"{url}: the target has no variable {name[4:]}"
        else:
            assert name in ("from", "to") and value[0].isdigit(), f"{url}: unexpected parameter {name}"
    if session_id is not None and "var-session_id" in params:
        assert params["var-session_id"] == [session_id], url


def same_value(a, b):
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    # Equal first: some hex ids read as huge floats ("328898998e725026" is inf).
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return a == b
    return abs(x - y) <= 1e-6 * max(1.0, abs(x), abs(y))


@pytest.mark.parametrize("query", PANEL_QUERIES, ids=[q.id for q in PANEL_QUERIES])
def test_old_and_current_clickhouse_agree(query, server, chdb_copy, data):
    """The server and chDB answer each panel alike over the same rows."""
    board = BY_UID[query.uid]
    sql = expand(query.target["rawSql"], scenario_variables(board, "all", data), scenario_context("all", data, query.panel))
    old, current = server.query(sql), chdb_copy.query(sql)
    assert old.names == current.names
    assert len(old.rows) == len(current.rows), f"{query.id}: {len(old.rows)} rows against {len(current.rows)}"
    for row_old, row_current in zip(old.rows, current.rows):
        assert same_value(row_old, row_current), f"{query.id}:\n{row_old}\n{row_current}"


def test_trace_tags_carry_the_span_attributes(server, data):
    """The waterfall's JSON tags hold each span's attributes unchanged, except that control
    characters (which JSON text cannot hold raw) become spaces."""
    query = next(q for q in PANEL_QUERIES if q.panel["type"] == "traces")
    board = BY_UID[query.uid]
    result = server.query(expand(query.target["rawSql"], scenario_variables(board, "all", data),
                                 scenario_context("all", data, query.panel)))
    session = quote(data.session["session_id"])
    raw = server.query(
        "SELECT span_id, attributes.key, attributes.value, resource_attributes.key, resource_attributes.value "
        "FROM spans FINAL WHERE trace_id GLOBAL IN "
        f"(SELECT arrayJoin(trace_ids) FROM sessions_current WHERE session_id = {session})")
    expected = {row[0]: (dict(zip(row[1], row[2])), dict(zip(row[3], row[4]))) for row in raw.rows}
    assert len(expected) == len(result.rows)

    def printable(text):
        return "".join(" " if ord(char) < 32 else char for char in text)

    for row in result.rows:
        record = dict(zip(result.names, row))
        tags, resource = expected[record["spanID"]]
        assert [(t["key"], t["value"]) for t in json.loads(record["tags"])] == \
            [(printable(k), printable(v)) for k, v in tags.items()]
        assert [(t["key"], t["value"]) for t in json.loads(record["serviceTags"])] == \
            [(printable(k), printable(v)) for k, v in resource.items()]
