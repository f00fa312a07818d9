"""The dashboard files, checked for what breaks an import or a provisioning run, or leaves a
panel empty in Grafana: ids, uids, data source references, panel types, query settings,
variables and links. No database needed."""

import re

import pytest

from dashboards import (
    BY_UID,
    DASHBOARDS,
    DATASOURCE_REF,
    PLUGIN,
    field_links,
    panel_queries,
    panels,
    read_provisioning,
    variables,
)
from expand import Variable, apply_conditional_all

FILES = sorted(DASHBOARDS)

# Panel types that ship with Grafana (no plugin to install besides the data source).
KNOWN_PANEL_TYPES = {"timeseries", "stat", "table", "barchart", "bargauge", "piechart", "traces", "text", "row"}

# The plugin's query formats (sqlds): 0 time series, 1 table, 2 logs, 3 traces; the query
# type the plugin's editor pairs with each.
FORMAT_QUERY_TYPE = {0: "timeseries", 1: "table", 2: "logs", 3: "traces"}
FORMAT_FOR_PANEL = {"timeseries": 0, "traces": 3}

# Variables Grafana itself provides, and the plugin's macros.
GRAFANA_VARIABLES = {"__interval", "__interval_ms", "__from", "__to", "__url_time_range", "__data", "__field",
                     "__value", "__series", "__all", "__dashboard", "__org", "__user", "__timezone"}
PLUGIN_MACROS = {"__timeFilter", "__timeFrom", "__timeTo", "__fromTime", "__toTime", "__interval_s",
                 "__conditionalAll"}

# Views that pick each session's current revision; raw spans are read with FINAL.
READABLE_TABLES = {"sessions_current", "turns_current", "messages_current", "tool_calls_current",
                   "interruptions_current", "answers_current", "spans"}

# What ClickHouse 18.16 lacks, and macros that expand into it. (Running every query on an
# 18.16 server is the real check; these catch it before a server is at hand.)
NOT_ON_18_16 = [
    r"toStartOfInterval", r"\$__timeInterval", r"\$__timeGroup", r"\$__\w+_ms\b", r"DateTime64", r"JSONExtract",
    r"\bILIKE\b", r"\bOVER\s*\(", r"LowCardinality", r"\bMap\(", r"\bmap\(", r"toJSONString", r"\bWITH\b.*\bAS\s*\(",
]

MULTI_VALUE_FILTERS = {"environment", "channel", "agent", "service", "outcome", "state", "issue", "search", "trace_id"}

VARIABLE_REFERENCE = re.compile(r"\$(\w+)|\[\[(\w+)(?::\w+)?\]\]|\$\{(\w+)(?:\.[^:}]+)?(?::[^}]+)?\}")


def references(text):
    return {a or b or c for a, b, c in VARIABLE_REFERENCE.findall(text)}


def texts(board):
    """(where, text) for every string of a dashboard Grafana interpolates variables into."""
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield f"{panel['title']} query", target.get("rawSql", "")
        for _, link in field_links(panel):
            yield f"{panel['title']} link", link["url"]
        if panel["type"] == "text":
            yield f"{panel['title']} content", panel["options"]["content"]
        yield f"{panel['title']} display name", panel.get("fieldConfig", {}).get("defaults", {}).get("displayName", "")
    for variable in variables(board).values():
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["query"]["rawSql"]
    for link in board.get("links", []):
        yield f"dashboard link {link['title']}", link.get("url", "")


@pytest.fixture(params=FILES)
def board(request):
    return DASHBOARDS[request.param]


def test_every_dashboard_has_a_stable_identity():
    uids = [board["uid"] for board in DASHBOARDS.values()]
    titles = [board["title"] for board in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids), uids
    assert len(set(titles)) == len(titles), titles
    assert set(BY_UID) == {"convolog-overview", "convolog-latency", "convolog-tools-errors", "convolog-interruptions",
                           "convolog-conversations", "convolog-session"}


def test_dashboard_importable(board):
    assert re.fullmatch(r"convolog-[a-z0-9-]+", board["uid"]) and len(board["uid"]) <= 40
    assert board["title"].startswith("convolog / ")
    assert board["id"] is None, "an id ties a dashboard to one Grafana database; import assigns one"
    assert isinstance(board["schemaVersion"], int)
    assert "convolog" in board["tags"]
    assert {"from", "to"} <= set(board["time"])


def test_panels_have_unique_ids_and_fit_the_grid(board):
    ids = [panel["id"] for panel in panels(board)]
    assert len(set(ids)) == len(ids), ids
    titles = [(panel["title"], panel["type"]) for panel in panels(board)]
    assert len(set(titles)) == len(titles), "two panels of one type share a title"
    cells = {}
    for panel in panels(board):
        pos = panel["gridPos"]
        assert all(isinstance(pos[k], int) for k in ("h", "w", "x", "y")), panel["title"]
        assert 1 <= pos["w"] <= 24 and pos["x"] + pos["w"] <= 24 and pos["h"] >= 1, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_panel_types_are_grafanas_own(board):
    for panel in panels(board):
        assert panel["type"] in KNOWN_PANEL_TYPES, panel["type"]


def test_data_source_is_always_the_variable(board):
    assert variables(board)["datasource"]["type"] == "datasource"
    assert variables(board)["datasource"]["query"] == PLUGIN
    for panel in panels(board):
        if panel["type"] in ("row", "text"):
            assert "targets" not in panel, panel["title"]
            continue
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_REF, panel["title"]
    for variable in variables(board).values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE_REF, variable["name"]
    for annotation in board["annotations"]["list"]:
        assert annotation["datasource"] == {"type": "grafana", "uid": "-- Grafana --"}


def test_targets_are_raw_sql_in_the_right_format(board):
    for panel in panels(board):
        targets = panel.get("targets", [])
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        for target in targets:
            assert target["editorType"] == "sql" and target["rawSql"].strip(), panel["title"]
            assert target["format"] == FORMAT_FOR_PANEL.get(panel["type"], 1), panel["title"]
            assert target["queryType"] == FORMAT_QUERY_TYPE[target["format"]], panel["title"]
            # Queries without a plugin version of 4 or later are migrated as v3 queries on load.
            major = int(target["pluginVersion"].split(".")[0])
            assert major >= 4, panel["title"]


def test_sql_runs_on_clickhouse_18_16(board):
    for where, text in texts(board):
        for pattern in NOT_ON_18_16:
            assert not re.search(pattern, text, re.S), f"{where}: {pattern}"


def test_sql_reads_current_revisions(board):
    for where, text in texts(board):
        if not where.endswith("query") and not where.startswith("variable"):
            continue
        for table, after in re.findall(r"\b(?:FROM|JOIN)\s+(\w+)(\s+\w+)?", text):
            assert table in READABLE_TABLES, f"{where} reads {table}: read the *_current views"
            if table == "spans":
                assert after.strip() == "FINAL", f"{where}: deduplicate raw spans with FINAL"


def test_referenced_variables_exist(board):
    names = set(variables(board)) | GRAFANA_VARIABLES | PLUGIN_MACROS
    for where, text in texts(board):
        missing = references(text) - names
        assert not missing, f"{where} refers to {missing}"


def test_all_never_expands_into_a_value_list(board):
    """Multi-value filters are wrapped in $__conditionalAll, so All costs nothing."""
    everything = {name: Variable(all=True) for name in variables(board)}
    for where, text in texts(board):
        if "link" in where or "content" in where:
            continue
        left = references(apply_conditional_all(text, everything)) & MULTI_VALUE_FILTERS
        assert not left, f"{where}: {left} outside $__conditionalAll"


def test_filter_variables(board):
    for name, variable in variables(board).items():
        if variable["type"] == "query":
            assert variable["query"]["editorType"] == "sql"
            assert variable["definition"] == variable["query"]["rawSql"]
            assert variable["multi"] and variable["includeAll"], name
            assert variable["refresh"] == 2, f"{name}: refresh on time range change"
        if variable["type"] == "textbox":
            assert variable["current"]["value"] == variable["query"], name


def check_internal_link(url, where):
    match = re.match(r"/d/([\w-]+)(\?|$)", url)
    assert match, f"{where}: {url}"
    target = BY_UID.get(match.group(1))
    assert target, f"{where}: no dashboard with uid {match.group(1)}"
    for name in re.findall(r"var-(\w+)=", url):
        assert name in variables(target), f"{where}: {target['uid']} has no variable {name}"
    assert "${__url_time_range}" in url, f"{where}: keep the time range"
    assert "${datasource:queryparam}" in url, f"{where}: keep the data source"


def test_links_lead_somewhere(board):
    for panel in panels(board):
        for field, link in field_links(panel):
            url = link["url"]
            where = f"{panel['title']} link {link['title']!r}"
            if url.startswith("/"):
                check_internal_link(url, where)
            else:
                assert re.fullmatch(r"\$\{convolog_url\}/(sessions/[^/]+|v1/sessions/[^/]+/transcript(\?format=text)?)", url), where
            for ref in re.findall(r"\$\{__data\.fields\.(\w+)(:\w+)?\}", url):
                assert ref[1] == ":percentencode", f"{where}: encode {ref[0]} for a URL"
    for link in board["links"]:
        if link["type"] == "dashboards":
            tagged = [b for b in DASHBOARDS.values() if set(link["tags"]) <= set(b["tags"])]
            assert len(tagged) > 1, link
        else:
            assert link["url"].startswith("${convolog_url}/"), link
    for panel in panels(board):
        if panel["type"] == "text":
            for url in re.findall(r"\]\(([^)]+)\)", panel["options"]["content"]):
                assert url.startswith("${convolog_url}/") or url.startswith("/d/"), url


def test_trace_panel_gets_what_grafanas_trace_view_reads():
    board = BY_UID["convolog-session"]
    traces = [panel for panel in panels(board) if panel["type"] == "traces"]
    assert len(traces) == 1
    panel = traces[0]
    assert [t["format"] for t in panel["targets"]] == [3]
    conversions = {c["targetField"]: c["destinationType"]
                   for t in panel["transformations"] if t["id"] == "convertFieldType"
                   for c in t["options"]["conversions"]}
    # The JSON text columns become the arrays of objects the trace view expects.
    assert conversions == {"tags": "other", "serviceTags": "other", "logs": "other", "references": "other"}


def test_every_panel_query_is_collected():
    counted = sum(len(panel.get("targets", [])) for board in DASHBOARDS.values() for panel in panels(board))
    assert counted == len(panel_queries())


def yaml_value(text, key):
    match = re.search(rf"^\s*{key}:\s*(.+?)\s*$", text, re.M)
    return match.group(1).strip("'\"") if match else None


def test_provisioned_data_source():
    text = read_provisioning("datasources/convolog.yaml")
    assert yaml_value(text, "apiVersion") == "1"
    assert yaml_value(text, "type") == PLUGIN
    uid = yaml_value(text, "uid")
    for board in DASHBOARDS.values():
        assert variables(board)["datasource"]["current"]["value"] == uid
    assert yaml_value(text, "protocol") == "http"
    assert yaml_value(text, "defaultDatabase") == "convolog"
    assert yaml_value(text, "username") == "default"
    assert re.search(r"secureJsonData:\s*\n(\s*#.*\n)*\s+password:\s*\$\{?\w+\}?", text), "password from the environment"
    assert yaml_value(text, "port").isdigit()


def test_provisioned_dashboards():
    text = read_provisioning("dashboards/convolog.yaml")
    assert yaml_value(text, "apiVersion") == "1"
    assert yaml_value(text, "type") == "file"
    assert yaml_value(text, "path").startswith("/")


def test_readme_section_names_every_dashboard():
    from clickhouse_http import REPO

    text = (REPO / "README.md").read_text()
    for file, board in DASHBOARDS.items():
        assert f"dashboards/{file}" in text and board["title"] in text, file
    assert "config/grafana/provisioning" in text


# The sessions_current view is the one definition of state, outcome, call status and ended
# reason; the columns it derives them from are not for the dashboards to read.
VIEW_INPUTS = ["derived_state", "ended_outcome", "outcome_explicit", "derived_call_status", "derived_ended_reason",
               "expires_at", "last_activity_unix_nano"]


def semantics_names():
    """Outcomes and states as src/sessionize/semantics.rs names them."""
    from clickhouse_http import REPO

    source = (REPO / "src" / "sessionize" / "semantics.rs").read_text()
    outcomes = re.search(r"pub const OUTCOMES: &\[&str\] = &\[(.*?)\];", source, re.S).group(1)
    states = re.search(r"pub mod state \{(.*?)\}", source, re.S).group(1)
    return set(re.findall(r'"([^"]*)"', outcomes)), set(re.findall(r'&str = "([^"]*)"', states))


def test_state_and_outcome_come_from_the_view(board):
    outcomes, states = semantics_names()
    assert "Success" in outcomes and "RESOLVED" in states
    for where, text in texts(board):
        if not where.endswith("query") and not where.startswith("variable"):
            continue
        for column in VIEW_INPUTS:
            assert not re.search(rf"\b{column}\b", text), f"{where} reads {column}: use the view's columns"
        # Every value compared with outcome or state is one convolog produces.
        for column, known in (("outcome", outcomes), ("state", states)):
            for operator, operand in re.findall(rf"\b{column}\s*(NOT\s+IN|IN|!=|=)\s*(\([^)]*\)|'[^']*')", text):
                for value in re.findall(r"'([^']*)'", operand):
                    assert value == "" or value in known, f"{where}: {column} {operator} {value!r} is not a {column}"
