//! Synthetic sessions generated inside ClickHouse (`INSERT ... SELECT FROM numbers()`), far
//! faster than the pipeline: for the export memory test and the logs benchmark. The SQL runs
//! on ClickHouse 18.16 and current releases.
#![allow(dead_code)]

/// The id of synthetic session `n`: a hash first, so ids scatter over the table's primary key
/// the way real ones (UUIDs, room names) do, then the number.
fn id(n: &str) -> String {
    format!("concat(lower(hex(cityHash64({n}))), '-', toString({n}))")
}

/// `count` sessions numbered from `first`, starting every `step_ms` from `base_unix_nano`, with
/// channels, environments, latencies, counts and previews that vary with the number.
pub fn sessions_sql(first: u64, count: u64, base_unix_nano: u64, step_ms: u64) -> String {
    format!(
        "INSERT INTO sessions (session_id, revision, deleted, start_time, start_time_unix_nano, \
         end_time_unix_nano, duration_ms, trace_ids, framework, service_name, agent_name, \
         environment, channel, direction, handoff_target, preview, turn_count, message_count, \
         interruption_count, tool_call_count, tool_error_count, span_count, error_span_count, \
         input_tokens, output_tokens, models, voice_to_voice_p50_ms, voice_to_voice_p95_ms, \
         llm_ttft_p50_ms, updated_at) \
         SELECT {id} AS session_id, toUInt64(1), toUInt8(0), \
           toDateTime(intDiv(start_ns, 1000000000)), start_ns, start_ns + toUInt64(dur) * 1000000, \
           toFloat64(dur), [concat('trace-', toString(n))], \
           ['pipecat', 'livekit', 'genai'][n % 3 + 1], 'synthetic-agent', \
           ['booker', 'helper', 'triage'][n % 3 + 1], ['prod', 'staging'][n % 2 + 1], \
           ['voice', 'web_chat', 'sms', 'whatsapp'][n % 4 + 1], ['inbound', 'outbound', 'web'][n % 3 + 1], \
           if(n % 50 = 0, 'human', ''), \
           concat('I need help with order ', toString(n), ', it has not arrived, \"urgent\"'), \
           toUInt32(turns), toUInt32(turns * 2), toUInt32(n % 7 = 0), toUInt32(n % 3), \
           toUInt32(n % 11 = 0), toUInt32(turns * 5), toUInt32(n % 11 = 0), \
           toUInt64(turns * 200), toUInt64(turns * 30), ['gpt-4o-mini'], \
           if(n % 10 = 0, CAST(NULL AS Nullable(Float64)), toNullable(toFloat64(600 + (n * 7919) % 1000))), \
           if(n % 10 = 0, CAST(NULL AS Nullable(Float64)), toNullable(toFloat64(1000 + (n * 104729) % 2000))), \
           toNullable(toFloat64(200 + (n * 31) % 600)), now() \
         FROM (SELECT number + {first} AS n, toUInt64({base_unix_nano}) + (number + {first}) * {step_ms} * 1000000 AS start_ns, \
           30000 + (n % 600) * 100 AS dur, 2 + n % 10 AS turns FROM numbers({count}))",
        id = id("n")
    )
}

/// Where the sessions of [`sessions_sql`] are found by id (`sessions` is keyed by start).
pub fn session_starts_sql(first: u64, count: u64, base_unix_nano: u64, step_ms: u64) -> String {
    format!(
        "INSERT INTO session_starts (session_id, start_time_unix_nano) \
         SELECT {id}, toUInt64({base_unix_nano}) + n * {step_ms} * 1000000 \
         FROM (SELECT number + {first} AS n FROM numbers({count}))",
        id = id("n")
    )
}

/// Four transcript messages and two turns for each session of [`sessions_sql`].
pub fn messages_sql(first: u64, count: u64, base_unix_nano: u64, step_ms: u64) -> String {
    format!(
        "INSERT INTO messages (session_id, revision, message_index, turn_number, time, \
         time_unix_nano, speaker, text, interrupted, spoken_text, tool_name, trace_id, span_id) \
         SELECT {id}, toUInt64(1), toUInt32(i), toUInt32(intDiv(i, 2) + 1), \
           toDateTime(intDiv(t, 1000000000)), t, ['user', 'agent'][i % 2 + 1], \
           if(i % 2 = 0, concat('Where is order ', toString(n), ', it was due ', toString(n % 28 + 1), ' days ago.'), \
              'Let me check the status of that order for you.'), \
           toUInt8(0), CAST(NULL AS Nullable(String)), '', concat('trace-', toString(n)), '' \
         FROM (SELECT intDiv(number, 4) + {first} AS n, number % 4 AS i, \
           toUInt64({base_unix_nano}) + n * {step_ms} * 1000000 + i * 3000000000 AS t FROM numbers({count} * 4))",
        id = id("n")
    )
}

pub fn turns_sql(first: u64, count: u64, base_unix_nano: u64, step_ms: u64) -> String {
    format!(
        "INSERT INTO turns (session_id, revision, turn_number, start_time, start_time_unix_nano, \
         end_time_unix_nano, user_text, agent_text, voice_to_voice_ms, voice_to_voice_source, \
         llm_ttft_ms, llm_ttft_source) \
         SELECT {id}, toUInt64(1), toUInt32(i + 1), \
           toDateTime(intDiv(t, 1000000000)), t, t + 5000000000, 'Where is my order', \
           'Let me check the status of that order for you.', \
           toNullable(toFloat64(600 + (n * 7919 + i) % 1000)), 'synthetic', \
           toNullable(toFloat64(200 + (n * 31) % 600)), 'synthetic' \
         FROM (SELECT intDiv(number, 2) + {first} AS n, number % 2 AS i, \
           toUInt64({base_unix_nano}) + n * {step_ms} * 1000000 + i * 6000000000 AS t FROM numbers({count} * 2))",
        id = id("n")
    )
}
