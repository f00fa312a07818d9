//! `/sessions/{id}`: the call as a person reads it. The recording with the transcript (the
//! script seeks and highlights by the WebVTT cues), per turn the latency bars, each stage's
//! latency with its source and the turn's spans as a waterfall (a span opens to its
//! attributes and events), tool calls, interruptions, the agent's log lines under their turn,
//! outcome and state; labels and flag as forms; share links. Also the key form and the problem pages the pages answer with.

use std::collections::HashMap;
use std::fmt::Write;

use crate::model::conversation::{speaker, MessageRow, ToolCallRow, TurnRow};
use crate::model::log::{severity_name, SEVERITY_ERROR};
use crate::sessionize::logs::{turn_at, turn_spans};
use crate::store::{LogLine, SessionDetail};
use crate::timefmt::{offset, rfc3339};

use super::super::logs::severity_label;
use super::super::sessions::percent_encode;
use super::super::timeline::WaterfallSpan;
use super::super::transcript::{
    answer_of, citations_of, latencies, speaker_name, Citation, Latency,
};

/// Text and attribute values: the five characters HTML gives meaning to.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub const STYLE: &str = r#"
:root { --fg: #1d2430; --muted: #5b6472; --line: #e3e6eb; --user: #eef4ff; --agent: #f4f6f8;
  --human: #fff6e5; --bad: #b42318; --eou: #8e7cc3; --stt: #4f9d69; --llm: #3b82c4; --tts: #d08a2e;
  --tool: #9b6b43; --v2v: #1d2430; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  margin: 0 auto; max-width: 1100px; padding: 24px 28px 48px; }
h1 { font-size: 20px; margin: 0 0 4px; } h1 code { font-size: 18px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
.meta { color: var(--muted); margin: 0 0 8px; }
.facts { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 10px 0; padding: 0; list-style: none; }
.facts b { font-weight: 600; }
.label { display: inline-block; background: #e8eefc; color: #1e3a8a; border-radius: 10px;
  padding: 0 9px; margin-right: 4px; font-size: 13px; }
.flag { color: var(--bad); font-weight: 600; }
nav a { margin-right: 14px; color: #2456b3; }
.turn { border-top: 1px solid var(--line); padding: 10px 0 6px; }
.turn-head { display: grid; grid-template-columns: 90px 1fr 210px; gap: 12px; align-items: center;
  color: var(--muted); font-size: 13px; }
.bars { position: relative; height: 20px; background: #f1f2f4; border-radius: 3px; overflow: hidden; }
.bars span { position: absolute; top: 10px; height: 10px; }
.bars .eou { background: var(--eou); } .bars .stt { background: var(--stt); }
.bars .llm { background: var(--llm); } .bars .tts { background: var(--tts); }
.bars .v2v { top: 0; height: 8px; background: var(--v2v); }
.legend span { display: inline-block; margin-right: 14px; font-size: 13px; color: var(--muted); }
.legend i { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 5px;
  vertical-align: -1px; }
ol.items { list-style: none; margin: 6px 0 0; padding: 0; }
.msg { display: grid; grid-template-columns: 90px 130px 1fr; gap: 12px; padding: 6px 8px;
  border-radius: 6px; margin: 3px 0; }
.msg.user { background: var(--user); } .msg.agent { background: var(--agent); }
.msg.human_agent { background: var(--human); }
.time { color: var(--muted); font-variant-numeric: tabular-nums; font-size: 13px; padding-top: 1px; }
.who { font-weight: 600; }
.text { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.unheard { color: var(--muted); text-decoration: line-through; }
.badge { display: inline-block; font-size: 12px; border-radius: 4px; padding: 0 6px; margin-left: 6px;
  background: #fde8e7; color: var(--bad); font-weight: 600; }
.tool { display: grid; grid-template-columns: 90px 1fr; gap: 12px; padding: 4px 8px; margin: 3px 0; }
.tool details { border-left: 3px solid var(--tool); padding-left: 10px; }
.tool summary { cursor: pointer; color: var(--tool); font-weight: 600; }
.tool.failed details { border-color: var(--bad); } .tool.failed summary { color: var(--bad); }
.tool pre { background: #f6f7f9; padding: 6px 8px; margin: 4px 0; white-space: pre-wrap;
  overflow-wrap: anywhere; font-size: 13px; }
footer { margin-top: 32px; color: var(--muted); font-size: 13px; }
"#;

pub fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.0} ms"))
}

pub fn seconds(ms: f64) -> String {
    if ms >= 60_000.0 {
        format!(
            "{}m {:02}s",
            (ms / 60_000.0) as u64,
            ((ms / 1000.0) as u64) % 60
        )
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// One transcript line or tool call, in time order within its turn.
enum Item<'a> {
    Message(&'a MessageRow),
    Tool(&'a ToolCallRow),
}

impl Item<'_> {
    fn time(&self) -> u64 {
        match self {
            Item::Message(m) => m.time_unix_nano,
            Item::Tool(c) => c.start_time_unix_nano,
        }
    }
}

/// A recording the page can play: an http(s) URL (its origin is allowed by the page's
/// policy) or a path on this server.
pub struct Recording {
    pub url: String,
    /// `scheme://host[:port]` of a recording served from elsewhere; None for this server.
    pub origin: Option<String>,
}

impl Recording {
    pub fn of(url: &str) -> Option<Recording> {
        let url = url.trim();
        // The origin goes into the Content-Security-Policy header: only plain host characters.
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        };
        if url.starts_with('/') && !url.starts_with("//") {
            return Some(Recording {
                url: url.to_owned(),
                origin: None,
            });
        }
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if !plain(host) {
            return None;
        }
        Some(Recording {
            url: url.to_owned(),
            origin: Some(format!("{scheme}://{host}")),
        })
    }
}

/// What the reader may do on the page.
pub enum Mode<'a> {
    /// A caller with a key (or on this machine without keys): labels, flag and share forms.
    Edit {
        csrf: &'a str,
        /// Keys are configured, so signed read-only links can be made.
        can_share: bool,
        /// A read-only link just made (token, expiry in unix seconds).
        minted: Option<(&'a str, u64)>,
    },
    /// A signed read-only link: the page as it is, nothing to change.
    Shared { token: &'a str, expires: u64 },
}

pub struct SessionPage<'a> {
    pub detail: &'a SessionDetail,
    pub spans: &'a [WaterfallSpan],
    pub spans_truncated: bool,
    /// The session's log records by time, shown under their turns.
    pub logs: &'a [LogLine],
    pub recording: Option<&'a Recording>,
    pub mode: Mode<'a>,
}

/// The opening of every page: head with the shared style and the script.
fn head(out: &mut String, title: &str, extra_style: &str) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}{extra_style}</style>\
         <script src=\"/pages/pages.js\" defer></script></head><body>\n",
        escape(title)
    );
}

pub fn render(page: &SessionPage) -> String {
    let detail = page.detail;
    let s = &detail.view;
    let start = s.start_time_unix_nano;
    let id = escape(&s.session_id);
    let path = percent_encode(&s.session_id);
    let mut out = String::with_capacity(32 * 1024);
    head(
        &mut out,
        &format!("Session {} · convolog", s.session_id),
        SESSION_STYLE,
    );
    let _ = write!(
        out,
        "<header><p class=\"crumbs\"><a href=\"/sessions\">← Conversations</a></p>\
         <h1>Session <code>{id}</code></h1><p class=\"meta\">Started {} · {}</p>",
        escape(&rfc3339(start)),
        escape(&seconds(s.duration_ms))
    );
    if let Mode::Shared { expires, .. } = page.mode {
        let _ = write!(
            out,
            "<p class=\"notice\">A read-only link to this one conversation, valid until {}.</p>",
            escape(&short_time(expires.saturating_mul(1_000_000_000)))
        );
    }
    render_facts(&mut out, detail);
    render_marks(&mut out, page, &path);
    if let Mode::Edit { .. } = page.mode {
        let _ = writeln!(
            out,
            "<nav aria-label=\"Raw data\"><a href=\"/v1/sessions/{path}\">Summary (JSON)</a>\
             <a href=\"/v1/sessions/{path}/transcript\">Transcript (JSON)</a>\
             <a href=\"/v1/sessions/{path}/transcript?format=text\">Text</a>\
             <a href=\"/v1/sessions/{path}/transcript?format=vtt\">WebVTT</a>\
             <a href=\"/v1/sessions/{path}/timeline\">Timeline</a></nav>"
        );
    }
    out.push_str("</header>\n");
    render_player(&mut out, page, &path);

    // Bars share one scale: the slowest turn's voice-to-voice (or stage sum) fills the width.
    // Stages are laid end to end below the voice-to-voice bar; they may overlap in time, so
    // their sum can exceed it.
    let scale = detail
        .turns
        .iter()
        .map(|t| {
            let stages: f64 = [
                t.end_of_utterance_ms,
                t.stt_ms,
                t.llm_ttft_ms,
                t.tts_ttfb_ms,
            ]
            .iter()
            .flatten()
            .sum();
            t.voice_to_voice_ms.unwrap_or(0.0).max(stages)
        })
        .fold(0.0_f64, f64::max)
        .max(1.0);
    out.push_str(
        "<main><h2>Transcript</h2><p class=\"legend\">\
         <span><i style=\"background:var(--eou)\"></i>end of utterance</span>\
         <span><i style=\"background:var(--stt)\"></i>speech-to-text</span>\
         <span><i style=\"background:var(--llm)\"></i>LLM first token</span>\
         <span><i style=\"background:var(--tts)\"></i>TTS first audio</span>\
         <span><i style=\"background:var(--tool)\"></i>tool</span>\
         <span><i style=\"background:var(--v2v)\"></i>voice-to-voice (top bar; stages below, each measured on its own)</span></p>\n",
    );
    // The WebVTT numbers its cues 1, 2, ... over the spoken messages in stored order.
    let cues: HashMap<u32, usize> = detail
        .messages
        .iter()
        .filter(|m| m.speaker != speaker::TOOL)
        .enumerate()
        .map(|(i, m)| (m.message_index, i + 1))
        .collect();
    let windows: Vec<(u32, f64, f64)> = detail
        .turns
        .iter()
        .map(|t| {
            (
                t.turn_number,
                ms_since(start, t.start_time_unix_nano),
                ms_since(start, t.end_time_unix_nano),
            )
        })
        .collect();
    let turn_of = |span: &WaterfallSpan| {
        windows
            .iter()
            .find(|(_, from, to)| {
                span.offset_ms >= *from - 0.5 && span.offset_ms + span.duration_ms <= *to + 0.5
            })
            .map(|(n, _, _)| *n)
    };
    let across: Vec<&WaterfallSpan> = page.spans.iter().filter(|s| turn_of(s).is_none()).collect();
    let mut turn_numbers: Vec<u32> = detail.turns.iter().map(|t| t.turn_number).collect();
    turn_numbers.extend(detail.messages.iter().map(|m| m.turn_number));
    turn_numbers.sort_unstable();
    turn_numbers.dedup();
    let log_windows = turn_spans(&detail.turns);
    let log_turns: Vec<Option<u32>> = page
        .logs
        .iter()
        .map(|l| turn_at(&log_windows, l.time_unix_nano))
        .collect();
    let logs_of = |turn: Option<u32>| {
        page.logs
            .iter()
            .zip(&log_turns)
            .filter(move |(_, t)| **t == turn)
            .map(|(l, _)| l)
    };
    render_logs(&mut out, logs_of(None), start, "before the first turn");
    for number in turn_numbers {
        let turn = detail.turns.iter().find(|t| t.turn_number == number);
        let _ = write!(out, "<section class=\"turn\" id=\"turn-{number}\">");
        render_turn_head(&mut out, number, turn, scale);
        if let Some(t) = turn {
            render_stages(&mut out, t);
        }
        let mut items: Vec<Item> = detail
            .messages
            .iter()
            .filter(|m| m.turn_number == number && m.speaker != speaker::TOOL)
            .map(Item::Message)
            .chain(
                detail
                    .tool_calls
                    .iter()
                    .filter(|c| c.turn_number == number)
                    .map(Item::Tool),
            )
            .collect();
        items.sort_by_key(Item::time);
        out.push_str("<ol class=\"items\">");
        for item in items {
            match item {
                Item::Message(m) => render_message(
                    &mut out,
                    m,
                    start,
                    &s.agent_name,
                    cues.get(&m.message_index),
                ),
                Item::Tool(c) => render_tool(&mut out, c, start),
            }
        }
        out.push_str("</ol>");
        render_grounding(&mut out, detail, number);
        render_logs(&mut out, logs_of(Some(number)), start, "");
        let spans: Vec<&WaterfallSpan> = page
            .spans
            .iter()
            .filter(|s| turn_of(s) == Some(number))
            .collect();
        let marks: Vec<f64> = detail
            .interruptions
            .iter()
            .filter(|i| i.turn_number == number)
            .map(|i| ms_since(start, i.time_unix_nano))
            .collect();
        render_waterfall(&mut out, &format!("Spans of turn {number}"), &spans, &marks);
        out.push_str("</section>\n");
    }
    if detail.messages.is_empty() {
        out.push_str("<p class=\"meta\">No transcript for this session.</p>");
    }
    if !across.is_empty() {
        out.push_str("<section class=\"turn\" id=\"session-spans\"><h2>Spans across turns</h2>");
        render_waterfall(&mut out, "The session's other spans", &across, &[]);
        out.push_str("</section>");
    }
    if page.spans_truncated {
        let _ = write!(
            out,
            "<p class=\"meta\">The waterfall shows the first {} spans only.</p>",
            page.spans.len()
        );
    }
    let _ = writeln!(
        out,
        "</main><footer>Session {id} · traces {} · convolog</footer></body></html>",
        escape(&s.trace_ids.join(", "))
    );
    out
}

/// Under a turn's reply: the answer's confidence and feedback, and the documents it stood on.
fn render_grounding(out: &mut String, detail: &SessionDetail, turn_number: u32) {
    let answer = answer_of(detail, turn_number);
    let citations: Vec<_> = citations_of(detail, turn_number).collect();
    let confidence = answer.and_then(|a| a.confidence);
    let feedback = answer.map_or("", |a| a.feedback.as_str());
    if citations.is_empty() && confidence.is_none() && feedback.is_empty() {
        return;
    }
    out.push_str("<div class=\"grounding\"><p class=\"meta\">");
    if let Some(confidence) = confidence {
        let _ = write!(out, "confidence {confidence:.2} ");
    }
    if !feedback.is_empty() {
        let _ = write!(
            out,
            "<span class=\"badge\">feedback {}</span>",
            escape(feedback)
        );
    }
    out.push_str("</p>");
    if !citations.is_empty() {
        out.push_str("<ol class=\"sources\">");
        for c in citations {
            let _ = write!(out, "<li>{}</li>", escape(&Citation::line(c)));
        }
        out.push_str("</ol>");
    }
    out.push_str("</div>");
}

/// Log records under their step, collapsed; the summary counts them and names the worst
/// severity, so an error shows without opening it.
fn render_logs<'a>(
    out: &mut String,
    lines: impl Iterator<Item = &'a LogLine>,
    start: u64,
    when: &str,
) {
    let lines: Vec<&LogLine> = lines.collect();
    let Some(worst) = lines.iter().max_by_key(|l| l.severity_number) else {
        return;
    };
    let bad = worst.severity_number >= SEVERITY_ERROR;
    let _ = write!(
        out,
        "<details class=\"logs{}\"><summary>Logs {when} ({}) · worst {}</summary><ol class=\"items\">",
        if bad { " failed" } else { "" },
        lines.len(),
        escape(severity_name(worst.severity_number)),
    );
    for line in lines {
        let _ = write!(
            out,
            "<li class=\"log\"><span class=\"time\">{}</span><span class=\"sev{}\">{}</span><span class=\"span\">{}</span><pre>{}</pre></li>",
            escape(&offset(start, line.time_unix_nano)),
            if line.severity_number >= SEVERITY_ERROR { " bad" } else { "" },
            escape(&severity_label(line)),
            escape(&line.span_name),
            escape(&line.body),
        );
    }
    out.push_str("</ol></details>");
}

fn ms_since(start: u64, at: u64) -> f64 {
    at.saturating_sub(start) as f64 / 1e6
}

fn render_facts(out: &mut String, detail: &SessionDetail) {
    let s = &detail.view;
    let mut facts: Vec<String> = Vec::new();
    for (name, value) in [
        ("Channel", &s.channel),
        ("Direction", &s.direction),
        ("Agent", &s.agent_name),
        ("Service", &s.service_name),
        ("Framework", &s.framework),
        ("Environment", &s.environment),
    ] {
        if !value.is_empty() && value != "unknown" {
            facts.push(format!("<li>{name}: <b>{}</b></li>", escape(value)));
        }
    }
    for (name, value) in [
        ("Outcome", &s.outcome),
        ("State", &s.state),
        ("Call", &s.call_status),
        ("Ended", &s.ended_reason),
        ("Intent", &s.intent),
    ] {
        if !value.is_empty() {
            facts.push(format!("<li>{name}: <b>{}</b></li>", escape(value)));
        }
    }
    if !s.handoff_target.is_empty() {
        facts.push(format!(
            "<li>Handed off to <b>{}</b></li>",
            escape(&s.handoff_target)
        ));
    }
    facts.push(format!("<li>Cost: <b>${:.4}</b></li>", s.cost_usd));
    if !detail.issues.is_empty() {
        let issues: Vec<String> = detail
            .issues
            .iter()
            .map(|i| match i.turn_number {
                0 => escape(&i.issue),
                n => format!("{} (<a href=\"#turn-{n}\">turn {n}</a>)", escape(&i.issue)),
            })
            .collect();
        facts.push(format!(
            "<li>Detected issues: <b>{}</b></li>",
            issues.join(", ")
        ));
    }
    facts.push(format!(
        "<li>{} turns · {} messages · {} interruptions · {} tool calls ({} failed)</li>",
        s.turn_count, s.message_count, s.interruption_count, s.tool_call_count, s.tool_error_count
    ));
    facts.push(format!(
        "<li>Voice-to-voice p50 <b>{}</b>, p95 <b>{}</b> · LLM first token p50 <b>{}</b></li>",
        ms(s.voice_to_voice_p50_ms),
        ms(s.voice_to_voice_p95_ms),
        ms(s.llm_ttft_p50_ms)
    ));
    let _ = write!(out, "<ul class=\"facts\">{}</ul>", facts.concat());
}

fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(csrf)
    )
}

/// One label or flag form: the CSRF token and the action, then `fields` (inputs, button).
fn annotation_form(out: &mut String, url: &str, csrf: &str, action: &str, fields: &str) {
    let _ = write!(
        out,
        "<form class=\"inline\" method=\"post\" action=\"{url}\">{}\
         <input type=\"hidden\" name=\"action\" value=\"{action}\">{fields}</form>",
        csrf_field(csrf)
    );
}

/// Labels and flag, with their forms when the reader may change them; then sharing.
fn render_marks(out: &mut String, page: &SessionPage, path: &str) {
    let s = &page.detail.view;
    let action = format!("/sessions/{path}/annotations");
    out.push_str("<section id=\"marks\" class=\"marks\" aria-label=\"Labels and flag\">");
    let csrf = match page.mode {
        Mode::Edit { csrf, .. } => Some(csrf),
        Mode::Shared { .. } => None,
    };
    out.push_str("<div class=\"labels\"><span class=\"what\">Labels</span>");
    if s.labels.is_empty() {
        out.push_str("<span class=\"meta\">none</span>");
    }
    for label in &s.labels {
        let _ = write!(
            out,
            "<span class=\"chip\"><span class=\"label\">{}</span>",
            escape(label)
        );
        if let Some(csrf) = csrf {
            let fields = format!(
                "<input type=\"hidden\" name=\"label\" value=\"{l}\">\
                 <button type=\"submit\" class=\"x\" aria-label=\"Remove label {l}\">×</button>",
                l = escape(label)
            );
            annotation_form(out, &action, csrf, "remove_label", &fields);
        }
        out.push_str("</span>");
    }
    if let Some(csrf) = csrf {
        annotation_form(
            out,
            &action,
            csrf,
            "add_label",
            "<label>Add a label <input name=\"label\" id=\"new-label\" required maxlength=\"64\" \
             placeholder=\"vip, callback, ...\"></label><button type=\"submit\">Add</button>",
        );
    }
    out.push_str("</div><div class=\"flagging\">");
    if s.flagged == 1 {
        let _ = write!(out, "<span class=\"flag\">⚑ Flagged");
        if !s.flag_reason.is_empty() {
            let _ = write!(out, ": {}", escape(&s.flag_reason));
        }
        out.push_str("</span>");
        if let Some(csrf) = csrf {
            annotation_form(
                out,
                &action,
                csrf,
                "unflag",
                "<button type=\"submit\">Unflag</button>",
            );
        }
    } else {
        out.push_str("<span class=\"meta\">Not flagged</span>");
        if let Some(csrf) = csrf {
            annotation_form(
                out,
                &action,
                csrf,
                "flag",
                "<label>Reason <input name=\"reason\" id=\"flag-reason\" maxlength=\"1000\" \
                 placeholder=\"why this call needs a look\"></label><button type=\"submit\">Flag</button>",
            );
        }
    }
    out.push_str("</div>");
    if let Mode::Edit {
        csrf,
        can_share,
        minted,
    } = page.mode
    {
        let _ = write!(
            out,
            "<div class=\"share\"><label>Link to this page \
             <input readonly id=\"page-link\" value=\"/sessions/{path}\" data-absolute></label>\
             <button type=\"button\" data-copy=\"page-link\" hidden>Copy</button>"
        );
        if can_share {
            let _ = write!(
                out,
                "<form class=\"inline\" method=\"post\" action=\"/sessions/{path}/share\">{}\
                 <label>Read-only link for <select name=\"days\"><option value=\"1\">1 day</option>\
                 <option value=\"7\" selected>7 days</option><option value=\"30\">30 days</option>\
                 </select></label><button type=\"submit\">Make link</button></form>",
                csrf_field(csrf)
            );
        }
        if let Some((token, expires)) = minted {
            let _ = write!(
                out,
                "<p class=\"notice\"><label>Read-only link, valid until {} \
                 <input readonly id=\"share-link\" value=\"/sessions/{path}?share={}\" data-absolute></label>\
                 <button type=\"button\" data-copy=\"share-link\" hidden>Copy</button></p>",
                escape(&short_time(expires.saturating_mul(1_000_000_000))),
                escape(token)
            );
        }
        out.push_str("</div>");
    }
    out.push_str("</section>");
}

fn render_player(out: &mut String, page: &SessionPage, path: &str) {
    let url = &page.detail.session.recording_url;
    let Some(recording) = page.recording else {
        if !url.is_empty() {
            let _ = write!(
                out,
                "<p class=\"meta\">Recording: <code>{}</code> (not a web address this page can play)</p>",
                escape(url)
            );
        }
        return;
    };
    let share = match page.mode {
        Mode::Shared { token, .. } => format!("?share={}", percent_encode(token)),
        Mode::Edit { .. } => String::new(),
    };
    let _ = write!(
        out,
        "<section class=\"player\" aria-label=\"Recording\"><h2>Recording</h2>\
         <audio id=\"recording\" controls preload=\"auto\" src=\"{u}\">\
         <track kind=\"captions\" srclang=\"en\" label=\"Transcript\" src=\"/sessions/{path}/captions.vtt{share}\">\
         </audio><p class=\"meta\"><a href=\"{u}\">Open the recording</a> · \
         click a line of the transcript to play from there</p></section>",
        u = escape(&recording.url),
        share = escape(&share)
    );
}

/// Each stage's latency and where it came from: measured by the framework (`reported:`) or
/// worked out from span times (`derived:`).
fn render_stages(out: &mut String, t: &TurnRow) {
    let l = latencies(t);
    let stages: [(&str, &Option<Latency>); 6] = [
        ("end of utterance", &l.end_of_utterance),
        ("speech-to-text", &l.stt),
        ("LLM first token", &l.llm_ttft),
        ("TTS first audio", &l.tts_ttfb),
        ("tool", &l.tool),
        ("voice-to-voice", &l.voice_to_voice),
    ];
    out.push_str("<ul class=\"stages\" aria-label=\"Stage latencies\">");
    for (name, latency) in stages {
        if let Some(latency) = latency {
            let _ = write!(
                out,
                "<li>{name} <b>{:.0} ms</b> <code>{}</code></li>",
                latency.ms,
                escape(&latency.source)
            );
        }
    }
    out.push_str("</ul>");
}

/// What a span is, for its bar's colour.
fn span_class(name: &str) -> &'static str {
    let name = name.to_ascii_lowercase();
    if name.contains("stt") || name.contains("transcri") {
        "stt"
    } else if name.contains("llm") || name.contains("chat") || name.contains("generat") {
        "llm"
    } else if name.contains("tts") || name.contains("speech") {
        "tts"
    } else if name.contains("tool") || name.contains("function") {
        "tool"
    } else if name.contains("utterance") || name.contains("eou") {
        "eou"
    } else {
        "other"
    }
}

/// Spans as bars on one time axis (from the first start to the last end), nested by depth;
/// each opens to its attributes and events. Interruptions are marks on the axis.
fn render_waterfall(out: &mut String, title: &str, spans: &[&WaterfallSpan], marks: &[f64]) {
    if spans.is_empty() {
        return;
    }
    let from = spans.iter().map(|s| s.offset_ms).fold(f64::MAX, f64::min);
    let to = spans
        .iter()
        .map(|s| s.offset_ms + s.duration_ms)
        .fold(f64::MIN, f64::max);
    let width = (to - from).max(1.0);
    let pct = |v: f64| ((v - from) / width * 100.0).clamp(0.0, 100.0);
    let top = spans.iter().map(|s| s.depth).min().unwrap_or(0);
    let _ = write!(
        out,
        "<details class=\"waterfall\"><summary>{} ({} spans, {})</summary>\
         <p class=\"axis\"><span>{}</span><span>{}</span></p><ol class=\"spans\">",
        escape(title),
        spans.len(),
        escape(&format!("{:.0} ms", to - from)),
        escape(&format!("+{:.0} ms", from)),
        escape(&format!("+{:.0} ms", to)),
    );
    for mark in marks {
        let _ = write!(
            out,
            "<li class=\"mark\"><span class=\"sname\">interruption</span><span class=\"track\">\
             <span class=\"interruption\" style=\"left:{:.2}%\" title=\"interruption at +{mark:.0} ms\"></span>\
             </span><span class=\"sdur\">+{mark:.0} ms</span></li>",
            pct(*mark)
        );
    }
    for span in spans {
        let failed = span.status.eq_ignore_ascii_case("error");
        let _ = write!(
            out,
            "<li><details class=\"span{}\"><summary><span class=\"sname\" style=\"padding-left:{}px\">{}</span>\
             <span class=\"track\"><span class=\"sbar {}\" style=\"left:{:.2}%;width:{:.2}%\"></span></span>\
             <span class=\"sdur\">{:.0} ms</span></summary><div class=\"sdetail\">",
            if failed { " failed" } else { "" },
            (span.depth - top).min(8) * 12,
            escape(&span.name),
            span_class(&span.name),
            pct(span.offset_ms),
            (span.duration_ms / width * 100.0).clamp(0.3, 100.0),
            span.duration_ms
        );
        let _ = write!(
            out,
            "<p>{} · {} · starts +{:.0} ms · status {}{}</p><p class=\"ids\">trace {} · span {}</p>",
            escape(&span.kind),
            escape(&span.service_name),
            span.offset_ms,
            escape(if span.status.is_empty() { "unset" } else { &span.status }),
            if span.status_message.is_empty() {
                String::new()
            } else {
                format!(": {}", escape(&span.status_message))
            },
            escape(&span.trace_id),
            escape(&span.span_id)
        );
        if !span.attributes.is_empty() {
            out.push_str("<table class=\"attrs\"><caption>Attributes</caption>");
            for (key, value) in &span.attributes {
                let _ = write!(
                    out,
                    "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
                    escape(key),
                    escape(value)
                );
            }
            out.push_str("</table>");
        }
        if !span.events.is_empty() {
            out.push_str("<p class=\"what\">Events</p><ul class=\"events\">");
            for event in &span.events {
                let _ = write!(
                    out,
                    "<li>+{:.0} ms <b>{}</b> <code>{}</code></li>",
                    event.offset_ms,
                    escape(&event.name),
                    escape(&event.attributes)
                );
            }
            out.push_str("</ul>");
        }
        out.push_str("</div></details></li>");
    }
    out.push_str("</ol></details>");
}

/// The page asking for a key (keyed mode): entered once, kept in an HttpOnly cookie.
pub fn key_form(csrf: &str, next: &str, unknown: bool) -> String {
    let mut out = String::new();
    head(&mut out, "API key · convolog", "");
    let _ = writeln!(
        out,
        "<main class=\"narrow\"><h1>Conversations need a key</h1>{}\
         <p class=\"meta\">A key with the read or admin scope. It is kept in a cookie only this \
         server reads (not scripts, not other sites) until you forget it.</p>\
         <form method=\"post\" action=\"/pages/key\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>API key <input type=\"password\" name=\"key\" id=\"api-key\" required autocomplete=\"off\"></label> \
         <button type=\"submit\">Continue</button></form></main></body></html>",
        if unknown {
            "<p class=\"flag\" role=\"alert\">That key is not one this server knows.</p>"
        } else {
            ""
        },
        escape(csrf),
        escape(next)
    );
    out
}

/// A page saying what went wrong, with the way back.
pub fn problem(message: &str, back: &str) -> String {
    let mut out = String::new();
    head(&mut out, "Problem · convolog", "");
    let _ = writeln!(
        out,
        "<main class=\"narrow\"><h1>That did not work</h1><p role=\"alert\">{}</p>\
         <p><a href=\"{}\">Back</a></p></main></body></html>",
        escape(message),
        escape(back)
    );
    out
}

const SESSION_STYLE: &str = r#"
.crumbs { margin: 0 0 6px; } .crumbs a, footer a { color: #2456b3; }
.notice { background: #eef4ff; border: 1px solid #c7d7fe; border-radius: 6px; padding: 6px 10px; }
.marks { border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; margin: 10px 0;
  display: flex; flex-direction: column; gap: 8px; }
.marks .what, p.what { font-weight: 600; margin-right: 8px; }
.chip { display: inline-flex; align-items: center; gap: 2px; }
.labels, .flagging, .share { display: flex; flex-wrap: wrap; gap: 6px 10px; align-items: center; }
form.inline { display: inline-flex; gap: 6px; align-items: center; margin: 0; }
form.inline label, .share label { display: inline-flex; gap: 6px; align-items: center; color: var(--muted);
  font-size: 14px; }
.marks input, .marks select, .marks button, .share input { font: inherit; font-size: 14px;
  padding: 2px 8px; border: 1px solid #8a93a0; border-radius: 4px; background: #fff; color: var(--fg); }
.marks button { cursor: pointer; }
.share input { min-width: 260px; max-width: 100%; }
button.x { border: 0; background: none; color: #1e3a8a; padding: 0 2px; font-size: 15px; line-height: 1; }
.player { margin: 12px 0; } .player audio { width: 100%; }
.stages { list-style: none; margin: 6px 0 0 102px; padding: 0; display: flex; flex-wrap: wrap;
  gap: 2px 14px; font-size: 13px; color: var(--muted); }
.stages b { color: var(--fg); } .stages code { font-size: 12px; color: #4a5361; }
.msg[data-cue] { cursor: pointer; }
.msg.speaking { outline: 3px solid #2456b3; background: #dbe7ff; }
.msg .seek { display: block; margin-top: 3px; font: inherit; font-size: 12px; padding: 0 6px;
  border: 1px solid #8a93a0; border-radius: 4px; background: #fff; color: #1d2430; cursor: pointer; }
.waterfall { margin: 8px 0 4px; } .waterfall > summary { cursor: pointer; color: #2456b3; font-size: 14px; }
.axis { display: flex; justify-content: space-between; margin: 4px 0 0 172px; padding-right: 76px;
  font-size: 12px; color: var(--muted); }
ol.spans { list-style: none; margin: 0; padding: 0; font-size: 13px; }
.spans summary, .spans li.mark { display: grid; grid-template-columns: 160px 1fr 64px; gap: 12px;
  align-items: center; cursor: pointer; padding: 1px 0; }
.spans summary::-webkit-details-marker { display: none; } .spans summary { list-style: none; }
.sname { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.track { position: relative; height: 14px; background: #f1f2f4; border-radius: 2px; }
.sbar { position: absolute; top: 2px; height: 10px; border-radius: 2px; background: #6b7280; }
.sbar.stt { background: var(--stt); } .sbar.llm { background: var(--llm); }
.sbar.tts { background: var(--tts); } .sbar.tool { background: var(--tool); }
.sbar.eou { background: var(--eou); }
.span.failed .sname { color: var(--bad); font-weight: 600; }
.interruption { position: absolute; top: 0; width: 3px; height: 14px; background: var(--bad); }
.sdur { text-align: right; font-variant-numeric: tabular-nums; color: var(--muted); }
.sdetail { margin: 4px 0 8px 12px; padding: 6px 10px; border-left: 3px solid var(--line); }
.sdetail p { margin: 2px 0; } .ids { color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
table.attrs { border-collapse: collapse; font-size: 12px; margin: 4px 0; width: 100%; }
.attrs caption { text-align: left; font-weight: 600; }
.attrs th, .attrs td { text-align: left; border-bottom: 1px solid var(--line); padding: 2px 6px;
  vertical-align: top; overflow-wrap: anywhere; }
.attrs th { font-weight: 500; color: #4a5361; width: 35%; }
ul.events { margin: 2px 0; padding-left: 18px; } .events code { font-size: 12px; overflow-wrap: anywhere; }
main.narrow { max-width: 560px; } main.narrow input { font: inherit; padding: 3px 6px; }
.grounding { margin: 6px 0 0 102px; font-size: 13px; } .sources { margin: 2px 0; padding-left: 20px; }
.logs { margin: 6px 0 0 102px; font-size: 13px; } .logs summary { cursor: pointer; color: var(--muted); }
.logs.failed summary { color: var(--bad); font-weight: 600; }
.log { display: grid; grid-template-columns: 90px 60px 140px 1fr; gap: 8px; }
.log pre { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.log .bad { color: var(--bad); font-weight: 600; }
:focus-visible { outline: 3px solid #2456b3; outline-offset: 2px; }
@media (max-width: 760px) {
  .logs, .grounding { margin-left: 0; } .log { grid-template-columns: 70px 1fr; } .log pre { grid-column: 1 / -1; }
  body { padding: 12px; }
  .turn-head { grid-template-columns: 60px 1fr; } .turn-head > span:last-child { grid-column: 1 / -1; }
  .msg { grid-template-columns: 70px 1fr; } .msg .text { grid-column: 1 / -1; }
  .stages { margin-left: 0; }
  .spans summary, .spans li.mark { grid-template-columns: 96px 1fr 52px; gap: 6px; }
  .axis { margin-left: 102px; padding-right: 58px; }
  .share input { min-width: 0; width: 100%; }
}
"#;

fn render_turn_head(out: &mut String, number: u32, turn: Option<&TurnRow>, scale: f64) {
    let _ = write!(out, "<div class=\"turn-head\"><span>Turn {number}</span>");
    let Some(t) = turn else {
        out.push_str("<span></span><span></span></div>");
        return;
    };
    let pct = |v: f64| (v / scale * 100.0).clamp(0.0, 100.0);
    let mut title = Vec::new();
    let _ = write!(out, "<div class=\"bars\" role=\"img\"");
    let mut left = 0.0;
    let mut segments = String::new();
    for (class, label, value) in [
        ("eou", "end of utterance", t.end_of_utterance_ms),
        ("stt", "speech-to-text", t.stt_ms),
        ("llm", "LLM first token", t.llm_ttft_ms),
        ("tts", "TTS first audio", t.tts_ttfb_ms),
    ] {
        if let Some(v) = value {
            let _ = write!(
                segments,
                "<span class=\"{class}\" style=\"left:{:.2}%;width:{:.2}%\"></span>",
                pct(left),
                pct(v)
            );
            left += v;
            title.push(format!("{label} {v:.0} ms"));
        }
    }
    if let Some(v) = t.voice_to_voice_ms {
        let _ = write!(
            segments,
            "<span class=\"v2v\" style=\"left:0;width:{:.2}%\"></span>",
            pct(v)
        );
        title.push(format!("voice-to-voice {v:.0} ms"));
    }
    let title = escape(&title.join(", "));
    let _ = write!(
        out,
        " aria-label=\"{title}\" title=\"{title}\">{segments}</div><span>voice-to-voice <b>{}</b>{}</span></div>",
        ms(t.voice_to_voice_ms),
        if t.interrupted == 1 {
            "<span class=\"badge\">interrupted</span>"
        } else {
            ""
        }
    );
}

fn render_message(
    out: &mut String,
    m: &MessageRow,
    start: u64,
    agent_name: &str,
    cue: Option<&usize>,
) {
    let _ = write!(
        out,
        "<li class=\"msg {}\"{}><span class=\"time\">{}</span><span class=\"who\">{}</span><p class=\"text\">",
        escape(&m.speaker),
        cue.map(|c| format!(" data-cue=\"{c}\"")).unwrap_or_default(),
        escape(&offset(start, m.time_unix_nano)),
        escape(&speaker_name(&m.speaker, &m.tool_name, agent_name))
    );
    match (m.interrupted == 1, &m.spoken_text) {
        (true, Some(heard)) if m.text.starts_with(heard.as_str()) => {
            let _ = write!(
                out,
                "<span class=\"heard\">{}</span><span class=\"unheard\" title=\"not heard\">{}</span>",
                escape(heard),
                escape(&m.text[heard.len()..])
            );
        }
        (true, Some(heard)) => {
            let _ = write!(
                out,
                "{} <span class=\"meta\">(heard: “{}”)</span>",
                escape(&m.text),
                escape(heard)
            );
        }
        _ => out.push_str(&escape(&m.text)),
    }
    if m.interrupted == 1 {
        out.push_str("<span class=\"badge\">interrupted</span>");
    }
    out.push_str("</p></li>");
}

fn render_tool(out: &mut String, c: &ToolCallRow, start: u64) {
    let failed = c.is_error == 1;
    let _ = write!(
        out,
        "<li class=\"tool{}\"><span class=\"time\">{}</span><details><summary>Tool {} — {} ({:.0} ms)</summary>",
        if failed { " failed" } else { "" },
        escape(&offset(start, c.start_time_unix_nano)),
        escape(&c.name),
        if failed { "failed" } else { "ok" },
        c.duration_ms
    );
    if !c.arguments.is_empty() {
        let _ = write!(out, "<pre>arguments: {}</pre>", escape(&c.arguments));
    }
    if !c.result.is_empty() {
        let _ = write!(out, "<pre>result: {}</pre>", escape(&c.result));
    }
    if failed && !c.error_message.is_empty() {
        let _ = write!(out, "<pre>error: {}</pre>", escape(&c.error_message));
    }
    out.push_str("</details></li>");
}

/// The answer for a session that does not exist, as a page.
pub fn not_found(id: &str) -> String {
    let mut out = String::new();
    head(&mut out, "No such session · convolog", "");
    let _ = writeln!(
        out,
        "<h1>No session <code>{}</code></h1>\
         <p class=\"meta\">It may not have been received yet, or it was merged into another session.</p>\
         <p><a href=\"/sessions\">All conversations</a></p></body></html>",
        escape(id)
    );
    out
}

/// `2026-11-22 10:04:05 UTC`.
pub fn short_time(unix_nano: u64) -> String {
    let full = rfc3339(unix_nano);
    match full.get(..19) {
        Some(head) => format!("{} UTC", head.replace('T', " ")),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_play_from_http_or_this_server_only() {
        let r = Recording::of("https://rec.example:8443/calls/1.wav?sig=x").expect("https");
        assert_eq!(r.origin.as_deref(), Some("https://rec.example:8443"));
        let r = Recording::of("/recordings/1.wav").expect("a path here");
        assert_eq!(r.origin, None);
        for refused in [
            "javascript:alert(1)",
            "//rec.example/1.wav",
            "s3://bucket/1.wav",
            "https://a.example;script-src *",
            "https://user@rec.example/1.wav",
            "",
        ] {
            assert!(Recording::of(refused).is_none(), "{refused}");
        }
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
