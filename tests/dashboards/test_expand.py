"""The expansion the query tests rely on behaves as the plugin and Grafana do (cases read off
the plugin's macro handlers, its $__conditionalAll and Grafana's variable formats)."""

import pytest

from expand import (
    QueryContext,
    Variable,
    apply_conditional_all,
    expand,
    expand_backend,
    replace_variables,
    strip_comments,
)

CTX = QueryContext(from_s=1_700_000_000, to_s=1_700_003_600, interval_s=30)


def test_time_macros():
    assert expand_backend("WHERE $__timeFilter(start_time)", CTX) == \
        "WHERE start_time >= toDateTime(1700000000) AND start_time <= toDateTime(1700003600)"
    assert expand_backend("$__fromTime, $__toTime", CTX) == "toDateTime(1700000000), toDateTime(1700003600)"
    assert expand_backend("$__timeFrom(t) AND $__timeTo(t)", CTX) == \
        "t >= toDateTime(1700000000) AND t <= toDateTime(1700003600)"
    assert expand_backend("$__dateFilter(d)", CTX) == "d >= toDate('2023-11-14') AND d <= toDate('2023-11-14')"


def test_interval_macros():
    assert expand_backend("intDiv(t, $__interval_s) * $__interval_s", CTX) == "intDiv(t, 30) * 30"
    assert expand_backend("$__interval_s", QueryContext(0, 1, 0.2)) == "1"  # at least one second
    assert expand_backend("$__interval_ms $__interval", QueryContext(0, 1, 90)) == "90000 1m30s"
    assert expand_backend("$__timeInterval(t)", CTX) == "toStartOfInterval(toDateTime(t), INTERVAL 30 second)"


def test_longest_name_wins_and_arguments_nest():
    assert expand_backend("$__timeFilter_ms(t)", CTX) == \
        "t >= fromUnixTimestamp64Milli(1700000000000) AND t <= fromUnixTimestamp64Milli(1700003600000)"
    assert expand_backend("$__timeFilter(toDateTime(intDiv(n, 1000)))", CTX).startswith(
        "toDateTime(intDiv(n, 1000)) >= toDateTime(1700000000)")


def test_comments_are_stripped_before_expansion():
    sql = "SELECT 1 -- $__fromTime\n/* $__toTime */ , '-- kept' , 'it\\'s -- kept'"
    assert strip_comments(sql) == "SELECT 1               \n                , '-- kept' , 'it\\'s -- kept'"
    assert "toDateTime" not in expand_backend(sql, CTX)


def test_conditional_all():
    sql = "WHERE $__conditionalAll(env IN (${env:singlequote}), $env) AND $__conditionalAll(f(a, b) > 0, ${q})"
    everything = {"env": Variable(all=True, options=["a", "b"]), "q": Variable("")}
    assert apply_conditional_all(sql, everything) == "WHERE 1=1 AND 1=1"
    chosen = {"env": Variable(["prod"]), "q": Variable("x")}
    assert apply_conditional_all(sql, chosen) == "WHERE env IN (${env:singlequote}) AND f(a, b) > 0"


def test_variable_formats():
    values = {"env": Variable(["prod", "it's"]), "one": Variable("a b/c"), "ds": Variable("uid-1")}
    assert replace_variables("$env", values, CTX) == "'prod','it's'"  # the plugin's own formatter
    assert replace_variables("${env:singlequote}", values, CTX) == "'prod','it\\'s'"
    assert replace_variables("${one:percentencode}", values, CTX) == "a%20b%2Fc"
    assert replace_variables("${one}", values, CTX, default_format="uriencode") == "a%20b/c"
    assert replace_variables("${ds:queryparam}&${__url_time_range}", values, CTX) == \
        "var-ds=uid-1&from=1700000000000&to=1700003600000"
    assert replace_variables("$__timeFilter(t) $unknown", values, CTX) == "$__timeFilter(t) $unknown"
    assert replace_variables("${__data.fields.id:percentencode}", values, CTX, data_fields={"id": "a/b"}) == "a%2Fb"


def test_everything_expanded_or_refused():
    with pytest.raises(ValueError, match="unexpanded"):
        expand("SELECT $nothing", {}, CTX)
    with pytest.raises(ValueError):
        expand("SELECT $__lttb(t, v)", {}, CTX)
    assert expand("SELECT '$kept in a string'", {}, CTX) == "SELECT '$kept in a string'"
