//! What the knowledge-gaps report reads beyond the list's filters: what counts as a weak
//! answer, and how much to show.

use super::{limit, Params, QueryError};

/// A confidence below this makes an answer weak, unless the request says otherwise.
pub const DEFAULT_LOW_CONFIDENCE: f64 = 0.5;
/// An agent "normally cites" when at least this share of its answers cite a document.
pub const DEFAULT_USUALLY_CITES: f64 = 0.5;
pub const DEFAULT_EXAMPLES: u32 = 3;
pub const MAX_EXAMPLES: u32 = 20;

#[derive(Debug, Clone, PartialEq)]
pub struct GapQuery {
    pub low_confidence: f64,
    pub usually_cites: f64,
    /// Questions shown.
    pub limit: u32,
    /// Newest weak answers shown per question.
    pub examples: u32,
}

pub fn gap_query(p: &mut Params) -> Result<GapQuery, QueryError> {
    let share = |p: &mut Params, name: &str, default: f64| -> Result<f64, QueryError> {
        match p.number(name)? {
            None => Ok(default),
            Some(v) if (0.0..=1.0).contains(&v) => Ok(v),
            Some(v) => Err(QueryError::new(name, format!("{v} is not between 0 and 1"))),
        }
    };
    let low_confidence = share(p, "low_confidence", DEFAULT_LOW_CONFIDENCE)?;
    let usually_cites = share(p, "usually_cites", DEFAULT_USUALLY_CITES)?;
    let examples = match p.one("examples")? {
        None => DEFAULT_EXAMPLES,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_EXAMPLES).contains(n))
            .ok_or_else(|| {
                QueryError::new(
                    "examples",
                    format!("{v:?} is not a whole number from 1 to {MAX_EXAMPLES}"),
                )
            })?,
    };
    Ok(GapQuery {
        low_confidence,
        usually_cites,
        limit: limit(p)?,
        examples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<GapQuery, QueryError> {
        let mut p = Params::parse(Some(q))?;
        let query = gap_query(&mut p)?;
        p.finish()?;
        Ok(query)
    }

    #[test]
    fn defaults_and_bounds() {
        let q = parse("").expect("defaults");
        assert_eq!(
            (q.low_confidence, q.usually_cites, q.examples),
            (
                DEFAULT_LOW_CONFIDENCE,
                DEFAULT_USUALLY_CITES,
                DEFAULT_EXAMPLES
            )
        );
        assert_eq!(
            parse("low_confidence=0.3&examples=5&limit=10")
                .expect("valid")
                .limit,
            10
        );
        for bad in [
            "low_confidence=2",
            "usually_cites=-1",
            "examples=0",
            "examples=x",
            "sort=cost",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
