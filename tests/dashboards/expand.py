"""What happens to a panel's SQL between the dashboard JSON and ClickHouse.

Three steps, in the order Grafana and the grafana-clickhouse-datasource plugin run them:

1. The plugin's frontend replaces `$__conditionalAll(condition, $var)` with `1=1` when `$var`
   selects everything (All, or nothing at all), and with `condition` otherwise.
2. Grafana's template service replaces dashboard variables: `$var`, `${var}`, `${var:format}`.
   Without a format the plugin's own formatter applies: a multi-value variable becomes
   `'a','b'`, a single value is written as is.
3. The plugin's backend strips SQL comments and expands its macros (`$__timeFilter(col)`,
   `$__fromTime`, `$__interval_s`, ...) for the query's time range and interval.

This module reimplements the three steps for the variables, formats and macros the convolog
dashboards may use; anything else raises, so a dashboard cannot use a construct the tests
would silently pass through.
"""

import re
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone

ALL = "$__all"


@dataclass
class Variable:
    """A dashboard variable's current state: selected values (a list for multi-value
    variables, a string otherwise), or everything when `all` is set."""

    value: object = ""
    all: bool = False
    options: list = field(default_factory=list)

    def current(self):
        """The values the template service interpolates."""
        if self.all:
            return list(self.options)
        return self.value

    def raw_current(self):
        """What the plugin's `$__conditionalAll` looks at: `current.value.toString()`."""
        if self.all:
            return ALL
        if isinstance(self.value, list):
            return ",".join(self.value)
        return self.value


@dataclass
class QueryContext:
    """Time range (unix seconds) and interval (seconds) of one query."""

    from_s: int
    to_s: int
    interval_s: float

    @property
    def from_ms(self):
        return self.from_s * 1000

    @property
    def to_ms(self):
        return self.to_s * 1000


# --- 1. The plugin frontend's $__conditionalAll ------------------------------------------

def _macro_args(text, open_index):
    """Arguments of the call whose `(` is at `open_index`, split at top-level commas.
    Mirrors the plugin's frontend helper: parentheses are counted, quotes are not."""
    args, depth, last = [], 0, open_index + 1
    for i in range(open_index, len(text)):
        char = text[i]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 1:
            args.append(text[last:i])
            last = i + 1
        if depth == 0:
            args.append(text[last:i])
            return args
    return []


def apply_conditional_all(sql, variables):
    macro = "$__conditionalAll("
    index = sql.rfind(macro)
    while index != -1:
        params = _macro_args(sql, index + len(macro) - 1)
        if len(params) != 2:
            raise ValueError(f"$__conditionalAll needs two arguments: {sql[index:index + 80]!r}")
        name = re.search(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", params[1].strip())
        phrase = params[0]
        if name:
            variable = variables.get(name.group(0))
            if variable is None:
                raise KeyError(f"$__conditionalAll refers to unknown variable {name.group(0)!r}")
            if variable.raw_current() in ("", ALL):
                phrase = "1=1"
        sql = sql.replace(f"{macro}{params[0]},{params[1]})", phrase, 1)
        index = sql.rfind(macro)
    return sql


# --- 2. Grafana's template service ----------------------------------------------------------

# The template service's variable syntax: $name, [[name:format]], ${name.fieldPath:format}.
VARIABLE_PATTERN = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")


def _plugin_format(value):
    """The data source plugin's formatter, used when a variable has no explicit format."""
    if isinstance(value, list):
        return "'" + "','".join(value) + "'"
    return value


def _format(name, value, fmt):
    if fmt is None:
        return _plugin_format(value)
    if fmt == "singlequote":
        quote = lambda v: "'" + v.replace("'", "\\'") + "'"  # noqa: E731
        return ",".join(quote(v) for v in value) if isinstance(value, list) else quote(value)
    if fmt == "percentencode":
        if isinstance(value, list):
            raise ValueError(f"${{{name}:percentencode}} of a multi-value variable")
        return urllib.parse.quote(str(value), safe="-_.!~*'()")
    if fmt == "uriencode":  # encodeURI, and !'()* too: what data links apply by default
        if isinstance(value, list):
            value = "{" + ",".join(value) + "}"
        return urllib.parse.quote(str(value), safe=";,/?:@&=+$-_.~#")
    if fmt == "queryparam":
        values = value if isinstance(value, list) else [value]
        return "&".join(f"var-{name}={urllib.parse.quote(str(v), safe='-_.~')}" for v in values)
    if fmt in ("raw", "text"):
        return ",".join(value) if isinstance(value, list) else str(value)
    raise ValueError(f"variable format {fmt!r} is not one the dashboards may use")


def builtin_variables(ctx):
    """Grafana's global variables a panel or a link can use."""
    interval = ctx.interval_s
    text = f"{int(interval)}s" if interval < 60 else f"{int(interval // 60)}m"
    return {
        "__interval": text,
        "__interval_ms": str(int(interval * 1000)),
        "__from": str(ctx.from_ms),
        "__to": str(ctx.to_ms),
        "__url_time_range": f"from={ctx.from_ms}&to={ctx.to_ms}",
    }


def replace_variables(text, variables, ctx, data_fields=None, default_format=None):
    """Grafana's template service. `data_fields` stands for the row a data link is built
    from (`${__data.fields.name}`); unknown names are left alone, as Grafana does.
    `default_format` applies where a reference names no format: None is the data source
    plugin's formatter (queries), "uriencode" is what Grafana applies to data links."""
    builtins = builtin_variables(ctx)

    def substitute(match):
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        path = match.group(5)
        if name == "__data":
            if data_fields is None or not path or not path.startswith("fields."):
                return match.group(0)
            column = path[len("fields."):]
            value = data_fields[column]
            return _format(name, "" if value is None else str(value), fmt or default_format or "raw")
        if name in builtins:
            return builtins[name] if name == "__url_time_range" else _format(name, builtins[name], fmt or default_format)
        variable = variables.get(name)
        if variable is None:
            return match.group(0)
        return _format(name, variable.current(), fmt or default_format)

    return VARIABLE_PATTERN.sub(substitute, text)


# --- 3. The plugin backend's macros ---------------------------------------------------------

def _skip_quoted(s, i):
    """Index after the quoted region starting at s[i] (', " or `), honouring doubled quotes
    and, as ClickHouse does, backslash escapes."""
    quote = s[i]
    j = i + 1
    while j < len(s):
        if s[j] == "\\" and quote != "`":
            j += 2
            continue
        if s[j] == quote:
            if j + 1 < len(s) and s[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return j


def strip_comments(sql):
    """Replaces `-- ...` and `/* ... */` comments outside quotes by spaces (length-preserving)."""
    out, i = [], 0
    while i < len(sql):
        char = sql[i]
        if char in "'\"`":
            end = _skip_quoted(sql, i)
            out.append(sql[i:end])
            i = end
        elif sql.startswith("--", i):
            end = i
            while end < len(sql) and sql[end] not in "\r\n":
                end += 1
            out.append(" " * (end - i))
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = len(sql) if end == -1 else end + 2
            out.append("".join(c if c in "\r\n" else " " for c in sql[i:end]))
            i = end
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _closing_paren(s, open_index):
    depth, i = 0, open_index
    while i < len(s):
        char = s[i]
        if char in "'\"":
            i = _skip_quoted(s, i)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _split_args(raw):
    raw = raw.strip()
    if not raw:
        return []
    args, depth, start, i = [], 0, 0, 0
    while i < len(raw):
        char = raw[i]
        if char in "'\"":
            i = _skip_quoted(raw, i)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            args.append(raw[start:i].strip())
            start = i + 1
        i += 1
    args.append(raw[start:].strip())
    return args


def _one_arg(name, args):
    if len(args) != 1:
        raise ValueError(f"$__{name} expects 1 argument, got {len(args)}")
    return args[0]


def _date(seconds):
    return f"toDate('{datetime.fromtimestamp(seconds, timezone.utc):%Y-%m-%d}')"


def _go_duration(seconds):
    """Go's time.Duration.String() for whole seconds, which is what `$__interval` prints."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def backend_macros(ctx):
    frm, to = f"toDateTime({ctx.from_s})", f"toDateTime({ctx.to_s})"
    frm_ms, to_ms = f"fromUnixTimestamp64Milli({ctx.from_ms})", f"fromUnixTimestamp64Milli({ctx.to_ms})"
    seconds = max(int(ctx.interval_s), 1)
    milliseconds = max(int(ctx.interval_s * 1000), 1)

    def time_group(args):
        if len(args) != 2:
            raise ValueError("$__timeGroup expects 2 arguments")
        raise ValueError("$__timeGroup expands to toStartOfInterval, which ClickHouse 18.16 lacks")

    def column_range(lower, upper):
        return lambda args: (lambda c: f"{c} >= {lower} AND {c} <= {upper}")(_one_arg("timeFilter", args))

    return {
        "timeFilter": column_range(frm, to),
        "timeFilter_ms": column_range(frm_ms, to_ms),
        "dateFilter": column_range(_date(ctx.from_s), _date(ctx.to_s)),
        "timeFrom": lambda args: f"{_one_arg('timeFrom', args)} >= {frm}",
        "timeTo": lambda args: f"{_one_arg('timeTo', args)} <= {to}",
        "fromTime": lambda args: frm,
        "toTime": lambda args: to,
        "fromTime_ms": lambda args: frm_ms,
        "toTime_ms": lambda args: to_ms,
        "interval_s": lambda args: str(seconds),
        "interval_ms": lambda args: str(int(ctx.interval_s * 1000)),
        "interval": lambda args: _go_duration(ctx.interval_s),
        "timeInterval": lambda args: f"toStartOfInterval(toDateTime({_one_arg('timeInterval', args)}), INTERVAL {seconds} second)",
        "timeInterval_ms": lambda args: f"toStartOfInterval(toDateTime64({_one_arg('timeInterval_ms', args)}, 3), INTERVAL {milliseconds} millisecond)",
        "timeGroup": time_group,
    }


# Macros of the plugin this module does not reimplement: statement macros rewrite the whole
# query, and $__table / $__column only make sense in the query builder.
UNSUPPORTED_MACROS = ("$__columns", "$__rateColumns", "$__perSecondColumns", "$__increaseColumns", "$__lttb",
                      "$__table", "$__column")


def expand_backend(sql, ctx):
    for macro in UNSUPPORTED_MACROS:
        if re.search(re.escape(macro) + r"(?!\w)", sql):
            raise ValueError(f"{macro} is not one the dashboards may use")
    sql = strip_comments(sql)
    macros = backend_macros(ctx)
    for name in sorted(macros, key=lambda n: (-len(n), n)):
        token = "$__" + name
        out, rest = [], sql
        while True:
            index = rest.find(token)
            if index == -1:
                out.append(rest)
                break
            after = index + len(token)
            if after < len(rest) and (rest[after].isalnum() or rest[after] == "_"):
                out.append(rest[:after])
                rest = rest[after:]
                continue
            out.append(rest[:index])
            rest = rest[after:]
            args = []
            if rest.startswith("("):
                end = _closing_paren(rest, 0)
                if end != -1:
                    args = _split_args(rest[1:end])
                    rest = rest[end + 1:]
            out.append(macros[name](args))
        sql = "".join(out)
    return sql


# --- All three ------------------------------------------------------------------------------

def unexpanded(sql):
    """`$` tokens left outside string literals: variables or macros nothing expanded."""
    bare, i = [], 0
    while i < len(sql):
        if sql[i] in "'\"`":
            i = _skip_quoted(sql, i)
            bare.append(" ")
            continue
        bare.append(sql[i])
        i += 1
    return re.findall(r"\$\{?\w+", "".join(bare))


def expand(raw_sql, variables, ctx):
    sql = apply_conditional_all(raw_sql, variables)
    sql = replace_variables(sql, variables, ctx)
    sql = expand_backend(sql, ctx)
    leftovers = unexpanded(sql)
    if leftovers:
        raise ValueError(f"unexpanded after expansion: {leftovers}")
    return sql
