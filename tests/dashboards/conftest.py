"""Fixtures for the dashboard tests.

The query tests read a database the way Grafana would, through the dashboards' SQL:

- `CONVOLOG_TEST_CLICKHOUSE_URL` (e.g. http://127.0.0.1:18123) and `CONVOLOG_TEST_DATABASE`
  name a database that `convolog-simulate` has filled; it is used as it is, as the data
  source's default database.
- `--seed-synthetic` instead creates a fresh database on that server (default
  http://127.0.0.1:18123), fills it with synthetic conversations (synthetic.py) and drops it
  afterwards: for working on the dashboards before or without `convolog-simulate`.

Every query also runs on chDB (current ClickHouse, in process) over a copy of the same rows.
Without a database the query tests are skipped, except under CI, where they fail.
"""

import os
import uuid
from dataclasses import dataclass

import pytest

import synthetic
from clickhouse_http import Chdb, Server, quote


def pytest_addoption(parser):
    parser.addoption(
        "--seed-synthetic",
        action="store_true",
        help="create a throwaway database with synthetic conversations instead of using CONVOLOG_TEST_DATABASE",
    )


@pytest.fixture(scope="session")
def server(request):
    url = os.environ.get("CONVOLOG_TEST_CLICKHOUSE_URL")
    if request.config.getoption("--seed-synthetic"):
        server = Server(url or "http://127.0.0.1:18123", f"convolog_dashboards_{uuid.uuid4().hex[:8]}")
        server.create_database()
        try:
            server.apply_migrations()
            synthetic.seed(server)
            yield server
        finally:
            server.drop_database()
        return
    database = os.environ.get("CONVOLOG_TEST_DATABASE")
    if not url or not database:
        message = ("no database to query: set CONVOLOG_TEST_CLICKHOUSE_URL and CONVOLOG_TEST_DATABASE "
                   "(filled by `convolog-simulate`), or pass --seed-synthetic")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield Server(url, database)


@pytest.fixture(scope="session")
def chdb_copy(server):
    timezone = server.text("SELECT timezone()").strip()
    engine = Chdb(timezone)
    engine.copy_from(server)
    yield engine
    engine.close()


@pytest.fixture(scope="session", params=["clickhouse", "chdb"])
def engine(request, server):
    """Each query test runs twice: on the ClickHouse server (18.16 in CI) and on chDB."""
    if request.param == "clickhouse":
        return server
    return request.getfixturevalue("chdb_copy")


@dataclass
class Data:
    """What the database holds, as far as choosing variables and time ranges goes."""

    first_start_s: int
    last_end_s: int
    sessions: int
    session: dict
    search_text: str
    distinct: dict

    def witness(self, server, sql):
        """Rows the data guarantees for a panel: the count a witness query returns."""
        return int(server.query(sql).rows[0][0])


@pytest.fixture(scope="session")
def data(server):
    summary = server.query(
        "SELECT toUInt32(min(start_time)), "
        "toUInt32(max(greatest(intDiv(end_time_unix_nano, 1000000000), toUInt32(start_time)))), count() "
        "FROM sessions_current"
    ).rows[0]
    sessions = int(summary[2])
    if sessions == 0:
        pytest.fail(f"database {server.database} has no sessions: did `convolog-simulate` run?")
    chosen = server.query(
        """
        SELECT session_id, environment, channel, agent_name, service_name, trace_ids,
               outcome, state, detected_issues, agents,
               toUInt32(start_time) AS start_s,
               greatest(toUInt32(intDiv(end_time_unix_nano, 1000000000)), toUInt32(start_time)) AS end_s
        FROM sessions_current
        ORDER BY tool_call_count > 0 DESC, interruption_count > 0 DESC, error_span_count > 0 DESC,
                 turn_count DESC, session_id
        LIMIT 1
        """
    )
    session = dict(zip(chosen.names, chosen.rows[0]))
    texts = server.query(
        "SELECT text FROM messages_current "
        f"WHERE session_id = {quote(session['session_id'])} AND text != '' AND position(text, '\\\\') = 0 "
        "ORDER BY message_index LIMIT 1"
    ).rows
    distinct = {}
    for column in ("environment", "channel", "agent_name", "service_name"):
        rows = server.query(f"SELECT DISTINCT {column} FROM sessions_current WHERE {column} != '' ORDER BY {column}")
        distinct[column] = [row[0] for row in rows.rows]
    for column in ("outcome", "state"):
        rows = server.query(f"SELECT DISTINCT {column} FROM sessions_current WHERE {column} != '' ORDER BY {column}")
        distinct[column] = [row[0] for row in rows.rows]
    # Arrays the filters look into: every detected issue, and every agent (the session's own
    # and those that took part).
    rows = server.query("SELECT DISTINCT arrayJoin(detected_issues) AS issue FROM sessions_current ORDER BY issue")
    distinct["issue"] = [row[0] for row in rows.rows]
    rows = server.query(
        "SELECT DISTINCT agent FROM (SELECT arrayJoin(arrayPushFront(agents, agent_name)) AS agent "
        "FROM sessions_current) WHERE agent != '' ORDER BY agent")
    distinct["any_agent"] = [row[0] for row in rows.rows]
    return Data(
        first_start_s=int(summary[0]),
        last_end_s=int(summary[1]),
        sessions=sessions,
        session=session,
        search_text=texts[0][0][:24] if texts else "",
        distinct=distinct,
    )
