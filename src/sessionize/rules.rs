//! The tunable parts of session semantics: inactivity timeouts, detected-issue thresholds,
//! budgets and prices. Read from the `[rules]` section of the configuration; the defaults
//! here are what the README documents. Changing them affects sessions derived afterwards
//! (`convolog rebuild` applies them to old ones).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::Secret;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Inactivity timeout per channel, in seconds: an ACTIVE or AWAITING_USER session with no
    /// span for this long is EXPIRED. `default` covers channels not listed.
    pub inactivity_timeout_seconds: BTreeMap<String, u64>,
    pub issues: IssueThresholds,
    pub budget: Budget,
    pub pricing: Pricing,
    /// Show contact numbers and addresses only with all but their last four characters masked.
    pub mask_contacts: bool,
    /// The key of the contact pseudonyms (HMAC-SHA-256 of the normalised phone number or
    /// email address), which let a search by a full contact find its conversations. Also
    /// `CONVOLOG_CONTACT_KEY`. Changing it changes the pseudonyms of sessions derived
    /// afterwards; `convolog rebuild` re-derives older ones.
    pub contact_key: Secret,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IssueThresholds {
    /// Voice-to-voice latency above this is a `slow_turn`.
    pub slow_turn_ms: f64,
    /// Per-stage thresholds for `slow_stt`, `slow_llm`, `slow_tts`.
    pub slow_stt_ms: f64,
    pub slow_llm_ttft_ms: f64,
    pub slow_tts_ms: f64,
    /// Silence between the agent's reply and the user's next words above this is a `long_silence` (voice).
    pub long_silence_ms: f64,
    /// This many interruptions in a session make `frequent_interruptions`.
    pub frequent_interruptions: u32,
    /// A transcript confidence below this is `low_transcription_confidence`.
    pub low_confidence: f64,
    /// A voice session that ends within this long after an error span is a `dropped_call`.
    pub dropped_after_error_ms: f64,
    /// Agent replies that mean "I could not help" (case-insensitive prefixes) are `agent_did_not_answer`.
    pub fallback_phrases: Vec<String>,
}

/// Limits whose crossing makes the outcome Budget Exceeded. 0 means no limit.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    pub max_tokens: u64,
    pub max_cost_usd: f64,
    pub max_turns: u32,
}

/// Prices in US dollars. Keys are model names (LLM), provider or model names (STT, TTS).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Pricing {
    pub llm: BTreeMap<String, LlmPrice>,
    pub stt: BTreeMap<String, SttPrice>,
    pub tts: BTreeMap<String, TtsPrice>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LlmPrice {
    pub input_per_million_tokens: f64,
    pub output_per_million_tokens: f64,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SttPrice {
    pub per_audio_minute: f64,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TtsPrice {
    pub per_million_characters: f64,
}

impl Default for Rules {
    fn default() -> Self {
        let timeouts = [
            ("voice", 300),
            ("web_chat", 86_400),
            ("whatsapp", 86_400),
            ("chat", 86_400),
            ("default", 3_600),
        ];
        Rules {
            inactivity_timeout_seconds: timeouts.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            issues: IssueThresholds::default(),
            budget: Budget::default(),
            pricing: Pricing::default(),
            mask_contacts: true,
            contact_key: Secret::default(),
        }
    }
}

impl Default for IssueThresholds {
    fn default() -> Self {
        IssueThresholds {
            slow_turn_ms: 2000.0,
            slow_stt_ms: 800.0,
            slow_llm_ttft_ms: 1500.0,
            slow_tts_ms: 800.0,
            long_silence_ms: 15_000.0,
            frequent_interruptions: 3,
            low_confidence: 0.6,
            dropped_after_error_ms: 5000.0,
            fallback_phrases: [
                "i'm sorry, i didn't understand",
                "i didn't catch that",
                "i'm not able to help with that",
                "sorry, i can't help with that",
                "i don't know",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }
}

impl Rules {
    pub fn inactivity_timeout_seconds(&self, channel: &str) -> u64 {
        self.inactivity_timeout_seconds
            .get(channel)
            .or_else(|| self.inactivity_timeout_seconds.get("default"))
            .copied()
            .unwrap_or(3_600)
    }

    /// Price lookup: the exact name, else the longest configured name the value starts with
    /// (so `gpt-4o-mini` prices `gpt-4o-mini-2024-07-18`).
    pub fn price<'a, T>(table: &'a BTreeMap<String, T>, names: &[&str]) -> Option<&'a T> {
        names.iter().filter(|n| !n.is_empty()).find_map(|name| {
            table.get(*name).or_else(|| {
                table
                    .iter()
                    .filter(|(key, _)| name.starts_with(key.as_str()))
                    .max_by_key(|(key, _)| key.len())
                    .map(|(_, price)| price)
            })
        })
    }
}
