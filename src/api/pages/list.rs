//! `/sessions`: the conversation list for people. The form holds every filter of
//! `GET /v1/sessions` (built from `query::FILTERS`, so a new filter shows up by itself): the
//! ones a support lead uses all day in front, the rest under "More filters". The URL is the
//! filter; the export links carry the same filter.

use std::fmt::Write;

use super::super::ApiError;
use super::session::{escape, ms, seconds, short_time, STYLE};
use crate::model::conversation::SessionView;
use crate::query::{FilterKind, FilterSpec, Sort, FILTERS, SORTS};
use crate::sessionize::semantics::closed_value;
use crate::store::Store;

/// The time presets of the form's `period` field (a page-only field: it becomes `from`).
const PERIODS: &[(&str, &str)] = &[
    ("1h", "Last hour"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
];

/// Filters in front, in this order; every other filter is under "More filters".
const FRONT: &[&str] = &[
    "outcome",
    "state",
    "call_status",
    "detected_issue",
    "channel",
    "environment",
    "agent",
    "voice_to_voice_p95_ms",
    "cost_usd",
    "has_interruptions",
    "has_tool_errors",
    "feedback",
];

/// What people call a filter, where its parameter name is not enough.
const TITLES: &[(&str, &str)] = &[
    ("call_status", "Call status"),
    ("detected_issue", "Detected issue"),
    ("voice_to_voice_p95_ms", "Voice-to-voice p95 (ms)"),
    ("voice_to_voice_p50_ms", "Voice-to-voice p50 (ms)"),
    ("llm_ttft_p50_ms", "LLM first token p50 (ms)"),
    ("cost_usd", "Cost (USD)"),
    ("duration_ms", "Duration (ms)"),
    ("has_interruptions", "Interrupted"),
    ("has_tool_errors", "Tool errors"),
    ("has_errors", "Failed spans"),
    ("has_handoff", "Handed off"),
    ("handoff_target", "Handed off to"),
    ("ended_reason", "Ended reason"),
    ("tool_errors", "Failed tool calls"),
    ("session", "Session id contains"),
    ("contact", "Contact contains"),
    ("user", "User pseudonym"),
];

fn title(param: &str) -> String {
    TITLES
        .iter()
        .find(|(p, _)| *p == param)
        .map(|(_, t)| (*t).to_owned())
        .unwrap_or_else(|| {
            let text = param.replace('_', " ");
            let mut chars = text.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
}

/// The values an open filter offers as checkboxes: what the store holds now.
pub struct Options {
    by_param: Vec<(&'static str, Vec<String>)>,
}

impl Options {
    fn of(&self, param: &str) -> Option<&[String]> {
        self.by_param
            .iter()
            .find(|(p, _)| *p == param)
            .map(|(_, v)| v.as_slice())
    }
}

/// Open filters shown as checkboxes of the values stored (at most this many each).
const PICKED_FROM_STORE: &[&str] = &["detected_issue", "channel", "environment", "agent"];
const MAX_OPTIONS: u64 = 100;

pub async fn options(store: &Store) -> Result<Options, ApiError> {
    let specs: Vec<&'static FilterSpec> = PICKED_FROM_STORE
        .iter()
        .filter_map(|p| FILTERS.iter().find(|f| f.param == *p))
        .collect();
    let lists = futures::future::try_join_all(specs.iter().map(|spec| {
        store.distinct_values(spec.column, spec.kind == FilterKind::HasAny, MAX_OPTIONS)
    }))
    .await?;
    let mut by_param: Vec<(&'static str, Vec<String>)> =
        specs.iter().map(|s| s.param).zip(lists).collect();
    by_param.push(("feedback", vec!["up".into(), "down".into()]));
    Ok(Options { by_param })
}

/// The API's parameters for the page's: `period` becomes `from`, and a custom range from
/// the form's date-time fields (minutes, UTC) becomes RFC 3339.
pub fn api_pairs(pairs: &[(String, String)]) -> Vec<(String, String)> {
    let period = pairs
        .iter()
        .find(|(n, _)| n == "period")
        .map(|(_, v)| v.as_str());
    let preset = period.filter(|p| PERIODS.iter().any(|(v, _)| v == p));
    let mut out: Vec<(String, String)> = pairs
        .iter()
        .filter(|(n, _)| n != "period" && !(preset.is_some() && (n == "from" || n == "to")))
        .map(|(n, v)| {
            let minutes_only =
                (n == "from" || n == "to") && v.len() == 16 && v.as_bytes().get(10) == Some(&b'T');
            let v = if minutes_only {
                format!("{v}:00Z")
            } else {
                v.clone()
            };
            (n.clone(), v)
        })
        .collect();
    if let Some(preset) = preset {
        out.push(("from".into(), preset.into()));
    }
    out
}

pub struct ListPage<'a> {
    pub rows: &'a [SessionView],
    /// The page's own query (what the form shows back).
    pub pairs: &'a [(String, String)],
    /// The same as the API's parameters.
    pub api_pairs: &'a [(String, String)],
    pub sort: Sort,
    pub limit: u32,
    pub count: u64,
    pub next_cursor: Option<&'a str>,
    pub options: &'a Options,
    pub keyed: bool,
    /// This browser's CSRF token, for the "forget my key" form.
    pub csrf: &'a str,
}

impl ListPage<'_> {
    /// Every value given for `param` (repeated and comma-separated).
    fn values(&self, param: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == param)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    fn value(&self, param: &str) -> &str {
        self.pairs
            .iter()
            .find(|(n, _)| n == param)
            .map_or("", |(_, v)| v.as_str())
    }

    /// `/sessions?` with the page's query, minus `drop`, plus `add`.
    fn link(&self, drop: &[&str], add: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .pairs
            .iter()
            .filter(|(n, _)| !drop.contains(&n.as_str()))
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        pairs.extend_from_slice(add);
        format!(
            "/sessions?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    }

    fn export_link(&self, format: &str) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .api_pairs
            .iter()
            .filter(|(n, _)| n != "cursor" && n != "limit")
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        pairs.push(("format", format));
        format!(
            "/pages/export?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    }
}

pub fn render(page: &ListPage) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Conversations · convolog</title><style>{STYLE}{LIST_STYLE}</style></head><body class=\"wide\">\n\
         <header><h1>Conversations</h1></header>\n\
         <form class=\"filters\" method=\"get\" action=\"/sessions\" aria-label=\"Filters\">"
    );
    render_when_and_text(&mut out, page);
    out.push_str("<div class=\"groups\">");
    for param in FRONT {
        if let Some(spec) = FILTERS.iter().find(|f| f.param == *param) {
            render_filter(&mut out, page, spec);
        }
    }
    render_marks_filters(&mut out, page);
    out.push_str(
        "</div><details class=\"more\"><summary>More filters</summary><div class=\"groups\">",
    );
    for spec in FILTERS.iter().filter(|f| !FRONT.contains(&f.param)) {
        render_filter(&mut out, page, spec);
    }
    text_input(
        &mut out,
        "span_name",
        "Span name",
        page.value("span_name"),
        "a span the session has",
    );
    out.push_str("</div></details>");
    render_sort(&mut out, page);
    out.push_str(
        "<div class=\"actions\"><button type=\"submit\">Show</button>\
         <a href=\"/sessions\">Clear filters</a></div></form>\n",
    );

    let shown = page.rows.len();
    let _ = write!(
        out,
        "<div class=\"summary\"><p id=\"match-count\" role=\"status\"><b>{}</b> {} match{}</p>\
         <p class=\"export\">Export what is filtered: <a download href=\"{}\">CSV</a> · \
         <a download href=\"{}\">JSON Lines</a></p></div>",
        page.count,
        if page.count == 1 {
            "conversation"
        } else {
            "conversations"
        },
        if page.count == 1 { "es" } else { "" },
        escape(&page.export_link("csv")),
        escape(&page.export_link("jsonl")),
    );
    render_table(&mut out, page);
    if shown == 0 {
        out.push_str("<p class=\"meta\">No conversations match.</p>");
    }
    out.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
    if !page.value("cursor").is_empty() {
        let _ = write!(
            out,
            "<a href=\"{}\">← First page</a>",
            escape(&page.link(&["cursor"], &[]))
        );
    }
    if let Some(cursor) = page.next_cursor {
        let _ = write!(
            out,
            "<a class=\"next\" rel=\"next\" href=\"{}\">Next page →</a>",
            escape(&page.link(&["cursor"], &[("cursor", cursor)]))
        );
    }
    out.push_str("</nav>");
    out.push_str("<footer>convolog · the same filters work on /v1/sessions and /v1/export");
    if page.keyed {
        let _ = write!(
            out,
            " · <form class=\"inline\" method=\"post\" action=\"/pages/key\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" name=\"forget\" value=\"1\">Forget my key</button></form>",
            escape(page.csrf)
        );
    }
    out.push_str("</footer></body></html>\n");
    out
}

fn render_when_and_text(out: &mut String, page: &ListPage) {
    out.push_str("<div class=\"row\">");
    text_input(
        out,
        "q",
        "Search the transcripts",
        page.value("q"),
        "words someone said",
    );
    let period = page.value("period");
    let custom =
        period.is_empty() && (!page.value("from").is_empty() || !page.value("to").is_empty());
    out.push_str("<label>When <select name=\"period\"><option value=\"\">Any time</option>");
    for (value, text) in PERIODS {
        let selected = if period == *value { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{value}\"{selected}>{text}</option>");
    }
    let _ = write!(
        out,
        "<option value=\"custom\"{}>Custom range</option></select></label>",
        if period == "custom" || custom {
            " selected"
        } else {
            ""
        }
    );
    for (name, text) in [("from", "From (UTC)"), ("to", "To (UTC)")] {
        let value = page.value(name);
        // The date-time field takes minutes; anything else the API accepts stays as text.
        let (kind, shown) = match value.len() {
            0 => ("datetime-local", String::new()),
            _ if value.len() >= 16 && value.as_bytes().get(10) == Some(&b'T') => {
                ("datetime-local", value[..16].to_owned())
            }
            _ => ("text", value.to_owned()),
        };
        let _ = write!(
            out,
            "<label>{text} <input type=\"{kind}\" name=\"{name}\" value=\"{}\"></label>",
            escape(&shown)
        );
    }
    out.push_str("</div>");
}

fn text_input(out: &mut String, name: &str, label: &str, value: &str, hint: &str) {
    let _ = write!(
        out,
        "<label>{} <input name=\"{name}\" value=\"{}\" placeholder=\"{}\"></label>",
        escape(label),
        escape(value),
        escape(hint)
    );
}

fn render_filter(out: &mut String, page: &ListPage, spec: &FilterSpec) {
    let name = spec.param;
    let label = title(name);
    let choices: Option<Vec<String>> = if !spec.allowed.is_empty() {
        Some(spec.allowed.iter().map(|v| (*v).to_owned()).collect())
    } else {
        page.options.of(name).map(<[String]>::to_vec)
    };
    match (spec.kind, choices) {
        (FilterKind::EqualsAny | FilterKind::HasAny, Some(mut choices)) => {
            let given = page.values(name);
            // A value given in the URL stays visible (and checked) even if not offered.
            for value in &given {
                let known = choices.iter().any(|c| same_choice(spec, c, value));
                if !known {
                    choices.push((*value).to_owned());
                }
            }
            let checked: Vec<&String> = choices
                .iter()
                .filter(|c| given.iter().any(|g| same_choice(spec, c, g)))
                .collect();
            let _ = write!(
                out,
                "<details class=\"pick\"{}><summary>{}{}</summary><fieldset><legend>{}</legend>",
                if checked.is_empty() { "" } else { " open" },
                escape(&label),
                if checked.is_empty() {
                    String::new()
                } else {
                    format!(" <span class=\"n\">({})</span>", checked.len())
                },
                escape(&label)
            );
            if choices.is_empty() {
                out.push_str("<p class=\"meta\">none stored yet</p>");
            }
            for choice in &choices {
                let on = if checked.contains(&choice) {
                    " checked"
                } else {
                    ""
                };
                let _ = write!(
                    out,
                    "<label><input type=\"checkbox\" name=\"{name}\" value=\"{v}\"{on}> {v}</label>",
                    v = escape(choice)
                );
            }
            out.push_str("</fieldset></details>");
        }
        (FilterKind::EqualsAny | FilterKind::HasAny, None) => {
            text_input(out, name, &label, &page.values(name).join(","), spec.doc)
        }
        (FilterKind::Contains | FilterKind::Contact, _) => {
            text_input(out, name, &label, page.value(name), spec.doc)
        }
        (FilterKind::Range, _) => {
            let _ = write!(
                out,
                "<fieldset class=\"range\"><legend>{}</legend>",
                escape(&label)
            );
            for (bound, text) in [("min", "at least"), ("max", "at most")] {
                let field = format!("{name}_{bound}");
                let _ = write!(
                    out,
                    "<label>{text} <input type=\"number\" step=\"any\" name=\"{field}\" value=\"{}\"></label>",
                    escape(page.value(&field))
                );
            }
            out.push_str("</fieldset>");
        }
        (FilterKind::NonZero, _) => {
            tri_state(out, name, &label, page.value(name), ("yes", "no"));
        }
    }
}

/// Whether two spellings are the same value of a filter (closed lists: any form, any case).
fn same_choice(spec: &FilterSpec, choice: &str, given: &str) -> bool {
    if spec.allowed.is_empty() {
        choice == given
    } else {
        closed_value(given, spec.allowed) == Some(choice)
    }
}

fn tri_state(out: &mut String, name: &str, label: &str, value: &str, (yes, no): (&str, &str)) {
    let _ = write!(
        out,
        "<label>{} <select name=\"{name}\"><option value=\"\">any</option>",
        escape(label)
    );
    for (v, text) in [("true", yes), ("false", no)] {
        let selected = if value == v { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{v}\"{selected}>{text}</option>");
    }
    out.push_str("</select></label>");
}

fn render_marks_filters(out: &mut String, page: &ListPage) {
    text_input(
        out,
        "label",
        "Label",
        &page.values("label").join(","),
        "vip, callback (any of)",
    );
    tri_state(
        out,
        "flagged",
        "Flag",
        page.value("flagged"),
        ("flagged", "not flagged"),
    );
}

/// What the sort menu calls each sort.
fn sort_title(param: &str) -> &str {
    match param {
        "start_time" => "start time",
        "duration" => "duration",
        "latency" => "p95 voice-to-voice (latency)",
        "voice_to_voice_p95" => "p95 voice-to-voice",
        "voice_to_voice_p50" => "p50 voice-to-voice",
        "llm_ttft_p50" => "p50 LLM first token",
        "turns" => "turns",
        "cost" => "cost",
        other => other,
    }
}

fn render_sort(out: &mut String, page: &ListPage) {
    out.push_str("<div class=\"row\"><label>Sort by <select name=\"sort\">");
    for spec in SORTS {
        let selected = if page.sort.spec.param == spec.param {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<option value=\"{}\"{selected}>{}</option>",
            spec.param,
            sort_title(spec.param)
        );
    }
    out.push_str("</select></label><label>Order <select name=\"order\">");
    for (value, text, descending) in [
        ("desc", "highest / newest first", true),
        ("asc", "lowest / oldest first", false),
    ] {
        let selected = if page.sort.descending == descending {
            " selected"
        } else {
            ""
        };
        let _ = write!(out, "<option value=\"{value}\"{selected}>{text}</option>");
    }
    out.push_str("</select></label><label>Per page <select name=\"limit\">");
    let mut sizes = vec![25, 50, 100, 200];
    if !sizes.contains(&page.limit) {
        sizes.push(page.limit);
        sizes.sort_unstable();
    }
    for size in sizes {
        let selected = if size == page.limit { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{size}\"{selected}>{size}</option>");
    }
    out.push_str("</select></label></div>");
}

fn render_table(out: &mut String, page: &ListPage) {
    out.push_str("<table class=\"list\"><thead><tr>");
    for (text, sort) in [
        ("Started", Some("start_time")),
        ("First words", None),
        ("Channel", None),
        ("Agent", None),
        ("Duration", Some("duration")),
        ("Turns", Some("turns")),
        ("Outcome", None),
        ("State", None),
        ("Call", None),
        ("Voice-to-voice p95", Some("voice_to_voice_p95")),
        ("Cost", Some("cost")),
        ("Marks", None),
    ] {
        let Some(sort) = sort else {
            let _ = write!(out, "<th scope=\"col\">{text}</th>");
            continue;
        };
        let current = page.sort.spec.column
            == SORTS
                .iter()
                .find(|s| s.param == sort)
                .map_or("", |s| s.column);
        let (aria, next_order, arrow) = match (current, page.sort.descending) {
            (true, true) => (" aria-sort=\"descending\"", "asc", " ↓"),
            (true, false) => (" aria-sort=\"ascending\"", "desc", " ↑"),
            (false, _) => ("", "desc", ""),
        };
        let _ = write!(
            out,
            "<th scope=\"col\"{aria}><a href=\"{}\">{text}{arrow}</a></th>",
            escape(&page.link(
                &["sort", "order", "cursor"],
                &[("sort", sort), ("order", next_order)]
            ))
        );
    }
    out.push_str("</tr></thead><tbody>");
    for r in page.rows {
        let path = super::super::sessions::percent_encode(&r.session_id);
        let preview = if r.preview.is_empty() {
            r.session_id.as_str()
        } else {
            r.preview.as_str()
        };
        let mut marks = String::new();
        for issue in &r.detected_issues {
            let _ = write!(marks, "<span class=\"issue\">{}</span>", escape(issue));
        }
        for label in &r.labels {
            let _ = write!(marks, "<span class=\"label\">{}</span>", escape(label));
        }
        if r.flagged == 1 {
            let _ = write!(
                marks,
                "<span class=\"flag\" title=\"{}\">⚑ flagged</span>",
                escape(&r.flag_reason)
            );
        }
        if r.interruption_count > 0 {
            let _ = write!(
                marks,
                "<span class=\"badge\">{} interrupted</span>",
                r.interruption_count
            );
        }
        if r.tool_error_count > 0 {
            let _ = write!(
                marks,
                "<span class=\"badge\">{} tool errors</span>",
                r.tool_error_count
            );
        }
        let cells: [(&str, String); 12] = [
            ("Started", escape(&short_time(r.start_time_unix_nano))),
            (
                "First words",
                format!("<a href=\"/sessions/{path}\">{}</a>", escape(preview)),
            ),
            ("Channel", escape(&r.channel)),
            ("Agent", escape(&r.agent_name)),
            ("Duration", escape(&seconds(r.duration_ms))),
            ("Turns", r.turn_count.to_string()),
            ("Outcome", escape(&r.outcome)),
            ("State", escape(&r.state)),
            ("Call", escape(&r.call_status)),
            ("Voice-to-voice p95", escape(&ms(r.voice_to_voice_p95_ms))),
            ("Cost", format!("${:.4}", r.cost_usd)),
            ("Marks", marks),
        ];
        out.push_str("<tr>");
        for (name, cell) in cells {
            let _ = write!(out, "<td data-label=\"{name}\">{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

const LIST_STYLE: &str = r#"
body.wide { max-width: 1400px; }
.filters { margin: 8px 0 12px; }
.filters .row, .filters .groups { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: end;
  margin: 0 0 10px; }
.filters label { font-size: 13px; color: var(--muted); display: flex; flex-direction: column; gap: 2px; }
.filters input, .filters select { font: inherit; color: var(--fg); padding: 3px 6px;
  border: 1px solid #8a93a0; border-radius: 4px; min-width: 110px; background: #fff; }
.filters input[type=number] { width: 110px; min-width: 0; }
.filters input[type=checkbox] { min-width: 0; }
.filters fieldset { border: 1px solid var(--line); border-radius: 6px; padding: 4px 10px 8px; margin: 0;
  display: flex; flex-wrap: wrap; gap: 4px 10px; }
.filters legend { font-size: 13px; color: var(--muted); padding: 0 4px; }
.pick { border: 1px solid #8a93a0; border-radius: 4px; background: #fff; align-self: end; }
.pick summary { cursor: pointer; padding: 3px 10px; font-size: 14px; }
.pick fieldset { border: 0; flex-direction: column; max-height: 260px; overflow-y: auto; }
.pick legend { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
.pick label { flex-direction: row; align-items: center; gap: 6px; color: var(--fg); font-size: 14px; }
.pick .n { color: #1e3a8a; font-weight: 600; }
.more { margin: 0 0 10px; } .more > summary { cursor: pointer; color: #2456b3; margin-bottom: 8px; }
.actions { display: flex; gap: 16px; align-items: center; }
.actions button { font: inherit; padding: 5px 18px; background: #2456b3; color: #fff; border: 0;
  border-radius: 4px; cursor: pointer; }
.summary { display: flex; flex-wrap: wrap; justify-content: space-between; gap: 4px 20px;
  border-top: 1px solid var(--line); padding-top: 8px; }
.summary p { margin: 4px 0; }
table.list { border-collapse: collapse; width: 100%; font-size: 14px; }
.list th { text-align: left; color: var(--muted); font-weight: 600; border-bottom: 1px solid var(--line);
  padding: 6px 8px; white-space: nowrap; }
.list th a { color: inherit; }
.list td { border-bottom: 1px solid var(--line); padding: 6px 8px; vertical-align: top; }
.list td:first-child { white-space: nowrap; font-variant-numeric: tabular-nums; }
.list td a { color: #2456b3; }
.issue { display: inline-block; font-size: 12px; border-radius: 4px; padding: 0 6px; margin: 0 4px 2px 0;
  background: #fff1d6; color: #7a4a00; }
.pager { display: flex; gap: 24px; margin: 14px 0; }
.pager a { color: #2456b3; }
:focus-visible { outline: 3px solid #2456b3; outline-offset: 2px; }
@media (max-width: 760px) {
  body { padding: 12px; }
  .list thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  .list, .list tbody, .list tr, .list td { display: block; width: 100%; }
  .list tr { border: 1px solid var(--line); border-radius: 6px; margin: 0 0 10px; padding: 4px 0; }
  .list td { border: 0; padding: 2px 10px; display: grid; grid-template-columns: 40% 60%; }
  .list td::before { content: attr(data-label); color: var(--muted); font-size: 13px; }
  .list td:first-child { white-space: normal; }
  .filters .groups { display: grid; grid-template-columns: 1fr 1fr; }
  .filters .row label { width: 100%; }
  .filters fieldset.range { grid-column: 1 / -1; flex-wrap: nowrap; }
  .filters fieldset.range label { flex: 1; }
  .filters input, .filters select { width: 100%; min-width: 0; }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_become_from_and_custom_minutes_become_rfc3339() {
        let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            api_pairs(&p(&[
                ("period", "7d"),
                ("from", "2026-01-01T00:00"),
                ("q", "x")
            ])),
            p(&[("q", "x"), ("from", "7d")])
        );
        assert_eq!(
            api_pairs(&p(&[("period", "custom"), ("from", "2026-01-01T10:30")])),
            p(&[("from", "2026-01-01T10:30:00Z")])
        );
        assert_eq!(api_pairs(&p(&[("from", "24h")])), p(&[("from", "24h")]));
    }

    #[test]
    fn the_form_offers_every_filter_of_the_api() {
        let options = Options {
            by_param: Vec::new(),
        };
        let page = ListPage {
            rows: &[],
            pairs: &[],
            api_pairs: &[],
            sort: Sort::default(),
            limit: 50,
            count: 0,
            next_cursor: None,
            options: &options,
            keyed: false,
            csrf: "",
        };
        let html = render(&page);
        for spec in FILTERS {
            let field = match spec.kind {
                FilterKind::Range => format!("name=\"{}_min\"", spec.param),
                _ => format!("name=\"{}\"", spec.param),
            };
            assert!(html.contains(&field), "no field for {}", spec.param);
        }
        for name in [
            "q",
            "period",
            "from",
            "to",
            "label",
            "flagged",
            "span_name",
            "sort",
            "order",
            "limit",
        ] {
            assert!(
                html.contains(&format!("name=\"{name}\"")),
                "no field {name}"
            );
        }
        for spec in SORTS {
            assert!(html.contains(&format!("value=\"{}\"", spec.param)));
        }
    }
}
