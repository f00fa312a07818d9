//! Per-turn latency: the framework's own measurement when there is one, otherwise derived
//! from span timestamps. The source is kept with the value, so a dashboard can tell a
//! measured TTFT from an estimate.

use crate::conventions::Reported;

#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub ms: Option<f64>,
    pub source: String,
}

impl Measured {
    /// A stage of the voice-to-voice time cannot be longer than the whole: such a value comes
    /// from timestamps or figures that mean something else, so it is dropped and its source
    /// marked `dropped:<source>`.
    pub fn within(self, voice_to_voice_ms: Option<f64>) -> Measured {
        match (self.ms, voice_to_voice_ms) {
            (Some(stage), Some(whole)) if stage > whole => Measured {
                ms: None,
                source: format!("dropped:{}", self.source),
            },
            _ => self,
        }
    }
}

/// Prefers the reported value; falls back to `end - start` (both in ns) when both are known
/// and in order.
pub fn measure(
    reported: Option<Reported>,
    derived: Option<(u64, u64)>,
    derivation: &str,
) -> Measured {
    if let Some(r) = reported {
        return Measured {
            ms: Some(r.ms),
            source: format!("reported:{}", r.key),
        };
    }
    match derived {
        Some((start, end)) if end >= start => Measured {
            ms: Some((end - start) as f64 / 1e6),
            source: format!("derived:{derivation}"),
        },
        _ => Measured {
            ms: None,
            source: String::new(),
        },
    }
}

/// Nearest-rank percentile; None for no values.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_wins_over_derived() {
        let m = measure(
            Some(Reported {
                ms: 120.0,
                key: "metrics.ttfb",
            }),
            Some((0, 5_000_000)),
            "x",
        );
        assert_eq!(
            m,
            Measured {
                ms: Some(120.0),
                source: "reported:metrics.ttfb".into()
            }
        );
        let m = measure(
            None,
            Some((1_000_000, 6_000_000)),
            "llm_start_to_first_token",
        );
        assert_eq!(
            m,
            Measured {
                ms: Some(5.0),
                source: "derived:llm_start_to_first_token".into()
            }
        );
        assert_eq!(measure(None, Some((6, 1)), "x").ms, None);
    }

    #[test]
    fn a_stage_longer_than_voice_to_voice_is_dropped_and_marked() {
        let eou = measure(None, Some((0, 1_900_000_000)), "speech_end_to_llm_start");
        assert_eq!(
            eou.clone().within(Some(1500.0)),
            Measured {
                ms: None,
                source: "dropped:derived:speech_end_to_llm_start".into()
            }
        );
        assert_eq!(eou.clone().within(Some(2000.0)), eou);
        assert_eq!(eou.clone().within(None), eou);
    }

    #[test]
    fn nearest_rank() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.95), Some(4.0));
    }
}
