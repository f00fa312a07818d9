"""Just enough ClickHouse for the dashboard tests: the HTTP interface of a server through
urllib, an in-process current ClickHouse through chDB, and the project's migrations for both.

Both clients answer `query(sql)` with a `Result` (column names, column types, rows) read
from `FORMAT JSONCompact`, which ClickHouse 18.16 and current releases write alike.
"""

import json
import pathlib
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

REPO = pathlib.Path(__file__).resolve().parents[2]
MIGRATIONS = REPO / "migrations"

# Every query gets a server-side limit too: an old server can spin on a bad query for
# longer than any client timeout, and a dashboard query that needs this long is a bug.
MAX_EXECUTION_SECONDS = 30


class ClickHouseError(Exception):
    pass


@dataclass
class Result:
    names: list
    types: list
    rows: list

    def column(self, name):
        index = self.names.index(name)
        return [row[index] for row in self.rows]


def quote(value):
    """A ClickHouse string literal."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _parse_json_compact(text):
    doc = json.loads(text)
    meta = doc["meta"]
    return Result([m["name"] for m in meta], [m["type"] for m in meta], doc["data"])


def migration_statements():
    """The statements of migrations/*.sql in order: `--` comment lines dropped, split on `;`."""
    statements = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("--")]
        for statement in "\n".join(lines).split(";"):
            if statement.strip():
                statements.append(statement.strip())
    return statements


def base_tables(statements):
    """Names of the tables (not views) the migrations leave, in creation order: a table
    renamed or dropped by a later migration goes by its last name or not at all."""
    names = []
    for statement in statements:
        create = re.match(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", statement, re.I)
        drop = re.match(r"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(\w+)", statement, re.I)
        rename = re.match(r"RENAME\s+TABLE\s+(.*)", statement, re.I | re.S)
        if create and create.group(1) not in names:
            names.append(create.group(1))
        elif drop and drop.group(1) in names:
            names.remove(drop.group(1))
        elif rename:
            pairs = [re.split(r"\s+TO\s+", pair.strip(), flags=re.I) for pair in rename.group(1).split(",")]
            renamed = {old: new for old, new in pairs}
            names = [renamed.get(name, name) for name in names]
    return names


class Server:
    """A ClickHouse server over HTTP, with one current database."""

    def __init__(self, url, database):
        self.url = url.rstrip("/")
        self.database = database

    def _post(self, sql, database=True, timeout=MAX_EXECUTION_SECONDS + 15):
        params = {"max_execution_time": str(MAX_EXECUTION_SECONDS)}
        if database:
            params["database"] = self.database
        request = urllib.request.Request(
            f"{self.url}/?{urllib.parse.urlencode(params)}", data=sql.encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read().decode()
        except urllib.error.HTTPError as error:
            raise ClickHouseError(error.read().decode(errors="replace").strip()) from None

    def execute(self, sql, database=True):
        """Runs a statement that returns nothing worth reading (DDL, INSERT)."""
        self._post(sql, database=database)

    def insert(self, table, fmt, body):
        self._post(f"INSERT INTO {table} FORMAT {fmt}\n{body}")

    def text(self, sql):
        return self._post(sql)

    def query(self, sql):
        return _parse_json_compact(self._post(f"{sql}\nFORMAT JSONCompact"))

    def version(self):
        return self._post("SELECT version()", database=False).strip()

    def create_database(self):
        self.execute(f"CREATE DATABASE IF NOT EXISTS {self.database}", database=False)

    def drop_database(self):
        self.execute(f"DROP DATABASE IF EXISTS {self.database}", database=False)

    def apply_migrations(self):
        for statement in migration_statements():
            self.execute(statement)


class Chdb:
    """Current ClickHouse in this process (chDB), holding a copy of a server's base tables.

    The views come from the migrations, exactly as on the server; only rows are copied.
    """

    DATABASE = "convolog"

    def __init__(self, timezone):
        from chdb import session  # imported here: only the query tests need chDB

        self._session = session.Session()
        # Text DateTimes from the server are written in the server's time zone.
        self._run(f"SET session_timezone = '{timezone}'")
        self._run(f"CREATE DATABASE IF NOT EXISTS {self.DATABASE}")
        self._run(f"USE {self.DATABASE}")
        for statement in migration_statements():
            self._run(statement)

    def _run(self, sql, fmt="TabSeparated"):
        try:
            return self._session.query(sql, fmt)
        except Exception as error:  # chDB raises its own ChdbError for every server error
            raise ClickHouseError(str(error)) from None

    def copy_from(self, server):
        for table in base_tables(migration_statements()):
            rows = server.text(f"SELECT * FROM {table} FORMAT TabSeparated")
            if rows:
                self._run(f"INSERT INTO {self.DATABASE}.{table} FORMAT TabSeparated\n{rows}")

    def query(self, sql):
        return _parse_json_compact(self._run(sql, "JSONCompact").bytes().decode())

    def close(self):
        self._session.close()
