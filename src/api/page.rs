//! The pages a person reads. `/sessions/{id}`: the transcript with speakers and times,
//! per-turn latency bars, tool calls, interruptions, outcome and state, labels and flag. `/sessions`: the
//! conversation list. Server-rendered HTML with inline CSS and no script; every value from the
//! store is escaped.

use std::fmt::Write;

use crate::model::conversation::{speaker, MessageRow, SessionView, ToolCallRow, TurnRow};
use crate::store::SessionDetail;
use crate::timefmt::{offset, rfc3339};

use super::sessions::percent_encode;
use super::transcript::{answer_of, citations_of, speaker_name, Citation};

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

const STYLE: &str = r#"
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

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.0} ms"))
}

fn seconds(ms: f64) -> String {
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

pub fn render(detail: &SessionDetail) -> String {
    let s = &detail.view;
    let start = s.start_time_unix_nano;
    let id = escape(&s.session_id);
    let path = percent_encode(&s.session_id);
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Session {id} · convolog</title><style>{STYLE}</style></head><body>\n"
    );
    let _ = write!(
        out,
        "<header><h1>Session <code>{id}</code></h1><p class=\"meta\">Started {} · {}</p>",
        escape(&rfc3339(start)),
        escape(&seconds(s.duration_ms))
    );
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
                n => format!("{} (turn {n})", escape(&i.issue)),
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
    out.push_str("<p class=\"marks\">");
    if s.labels.is_empty() {
        out.push_str("<span class=\"meta\">No labels</span>");
    } else {
        out.push_str("Labels: ");
        for label in &s.labels {
            let _ = write!(out, "<span class=\"label\">{}</span>", escape(label));
        }
    }
    if s.flagged == 1 {
        let _ = write!(out, " <span class=\"flag\">⚑ Flagged");
        if !s.flag_reason.is_empty() {
            let _ = write!(out, ": {}", escape(&s.flag_reason));
        }
        out.push_str("</span>");
    }
    out.push_str("</p>");
    let _ = writeln!(
        out,
        "<nav><a href=\"/v1/sessions/{path}\">Summary (JSON)</a>\
         <a href=\"/v1/sessions/{path}/transcript\">Transcript (JSON)</a>\
         <a href=\"/v1/sessions/{path}/transcript?format=text\">Text</a>\
         <a href=\"/v1/sessions/{path}/transcript?format=vtt\">WebVTT</a>\
         <a href=\"/v1/sessions/{path}/timeline\">Timeline</a></nav></header>"
    );

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
         <span><i style=\"background:var(--v2v)\"></i>voice-to-voice (top bar; stages below, each measured on its own)</span></p>\n",
    );
    let mut turn_numbers: Vec<u32> = detail.turns.iter().map(|t| t.turn_number).collect();
    turn_numbers.extend(detail.messages.iter().map(|m| m.turn_number));
    turn_numbers.sort_unstable();
    turn_numbers.dedup();
    for number in turn_numbers {
        let turn = detail.turns.iter().find(|t| t.turn_number == number);
        let _ = write!(out, "<section class=\"turn\" id=\"turn-{number}\">");
        render_turn_head(&mut out, number, turn, scale);
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
                Item::Message(m) => render_message(&mut out, m, start, &s.agent_name),
                Item::Tool(c) => render_tool(&mut out, c, start),
            }
        }
        out.push_str("</ol>");
        render_grounding(&mut out, detail, number);
        out.push_str("</section>\n");
    }
    if detail.messages.is_empty() {
        out.push_str("<p class=\"meta\">No transcript for this session.</p>");
    }
    let _ = writeln!(
        out,
        "</main><footer>Session {id} · traces {} · convolog</footer></body></html>",
        escape(&s.trace_ids.join(", "))
    );
    out
}

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

fn render_message(out: &mut String, m: &MessageRow, start: u64, agent_name: &str) {
    let _ = write!(
        out,
        "<li class=\"msg {}\"><span class=\"time\">{}</span><span class=\"who\">{}</span><p class=\"text\">",
        escape(&m.speaker),
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
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>No such session · convolog</title>\
         <style>{STYLE}</style></head><body><h1>No session <code>{}</code></h1>\
         <p class=\"meta\">It may not have been received yet, or it was merged into another session.</p></body></html>\n",
        escape(id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}

/// Values the list form shows back.
#[derive(Debug, Default)]
pub struct ListForm {
    pub q: String,
    pub channel: String,
    pub environment: String,
    pub from: String,
    pub label: String,
    pub sort: String,
    pub order: String,
}

/// `/sessions`: the conversation list for people, with the filters of `GET /v1/sessions`
/// (a small form for the common ones) and a link to the next page.
pub fn render_list(rows: &[SessionView], form: &ListForm, next_query: Option<&str>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Conversations · convolog</title><style>{STYLE}{LIST_STYLE}</style></head><body>\n\
         <header><h1>Conversations</h1></header><form class=\"filters\" method=\"get\" action=\"/sessions\">"
    );
    for (name, label, value, hint) in [
        ("q", "Search", &form.q, "words in the transcript"),
        ("channel", "Channel", &form.channel, "voice, web_chat, ..."),
        ("environment", "Environment", &form.environment, "prod"),
        ("from", "Since", &form.from, "24h, 7d, 2026-11-01"),
        ("label", "Label", &form.label, "vip"),
    ] {
        let _ = write!(
            out,
            "<label>{label} <input name=\"{name}\" value=\"{}\" placeholder=\"{}\"></label>",
            escape(value),
            escape(hint)
        );
    }
    out.push_str("<label>Sort <select name=\"sort\">");
    for (value, text) in [
        ("start_time", "start time"),
        ("duration", "duration"),
        ("latency", "p95 voice-to-voice"),
        ("turns", "turns"),
    ] {
        let selected = if form.sort == value { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{value}\"{selected}>{text}</option>");
    }
    out.push_str("</select></label><label>Order <select name=\"order\">");
    for (value, text) in [("desc", "descending"), ("asc", "ascending")] {
        let selected = if form.order == value { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{value}\"{selected}>{text}</option>");
    }
    out.push_str(
        "</select></label><button type=\"submit\">Show</button></form>\n<table><thead><tr>\
         <th>Started</th><th>First words</th><th>Channel</th><th>Agent</th><th>Duration</th>\
         <th>Turns</th><th>Voice-to-voice p95</th><th>Marks</th></tr></thead><tbody>",
    );
    for r in rows {
        let path = percent_encode(&r.session_id);
        let preview = if r.preview.is_empty() {
            r.session_id.as_str()
        } else {
            r.preview.as_str()
        };
        let mut marks = String::new();
        for label in &r.labels {
            let _ = write!(marks, "<span class=\"label\">{}</span>", escape(label));
        }
        if r.flagged == 1 {
            marks.push_str("<span class=\"flag\">⚑</span>");
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
        let _ = write!(
            out,
            "<tr><td class=\"time\">{}</td><td><a href=\"/sessions/{path}\">{}</a></td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{marks}</td></tr>",
            escape(&short_time(r.start_time_unix_nano)),
            escape(preview),
            escape(&r.channel),
            escape(&r.agent_name),
            escape(&seconds(r.duration_ms)),
            r.turn_count,
            escape(&ms(r.voice_to_voice_p95_ms))
        );
    }
    out.push_str("</tbody></table>");
    if rows.is_empty() {
        out.push_str("<p class=\"meta\">No conversations match.</p>");
    }
    if let Some(query) = next_query {
        let _ = write!(
            out,
            "<p><a class=\"next\" href=\"/sessions?{}\">Next page →</a></p>",
            escape(query)
        );
    }
    out.push_str("<footer>convolog · the same filters work on /v1/sessions and /v1/export</footer></body></html>\n");
    out
}

/// `2026-11-22 10:04:05 UTC`.
fn short_time(unix_nano: u64) -> String {
    let full = rfc3339(unix_nano);
    match full.get(..19) {
        Some(head) => format!("{} UTC", head.replace('T', " ")),
        None => full,
    }
}

const LIST_STYLE: &str = r#"
td.time { white-space: nowrap; }
.filters { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: end; margin: 8px 0 16px; }
.filters label { font-size: 13px; color: var(--muted); display: flex; flex-direction: column; gap: 2px; }
.filters input, .filters select { font: inherit; padding: 3px 6px; border: 1px solid var(--line);
  border-radius: 4px; min-width: 120px; }
.filters button { font: inherit; padding: 4px 14px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th { text-align: left; color: var(--muted); font-weight: 600; border-bottom: 1px solid var(--line);
  padding: 6px 8px; }
td { border-bottom: 1px solid var(--line); padding: 6px 8px; vertical-align: top; }
td a { color: #2456b3; }
"#;
