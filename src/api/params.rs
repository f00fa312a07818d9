//! Query-string parsing for the list and export: every parameter is checked, and a bad one
//! gets a 400 that names it and says why.

use crate::store::{
    After, FilterKind, FilterValue, SessionFilter, Sort, SortValue, FILTERS, SORTS,
};
use crate::timefmt;

use super::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;
const MAX_VALUE_CHARS: usize = 500;

/// The decoded `name=value` pairs of a query string; parameters are taken out as they are
/// read, and whatever is left at the end is unknown.
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(raw: Option<&str>) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| ApiError::bad("query string", e.to_string()))?;
        for (name, value) in &pairs {
            if value.chars().count() > MAX_VALUE_CHARS {
                return Err(ApiError::bad(
                    name.clone(),
                    format!("longer than {MAX_VALUE_CHARS} characters"),
                ));
            }
        }
        Ok(Params { pairs })
    }

    /// Pairs given some other way, e.g. `--filter name=value` on the command line.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Params {
        Params { pairs }
    }

    fn take(&mut self, name: &str) -> Vec<String> {
        let (taken, rest) = std::mem::take(&mut self.pairs)
            .into_iter()
            .partition(|(n, _)| n == name);
        self.pairs = rest;
        taken.into_iter().map(|(_, v)| v).collect()
    }

    /// A parameter given at most once.
    pub fn one(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        let mut values = self.take(name);
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop()),
            _ => Err(ApiError::bad(name, "given more than once")),
        }
    }

    /// Values of a parameter given repeatedly and/or comma-separated; none may be empty.
    pub fn many(&mut self, name: &str) -> Result<Vec<String>, ApiError> {
        let mut out = Vec::new();
        for value in self.take(name) {
            for part in value.split(',') {
                let part = part.trim();
                if part.is_empty() {
                    return Err(ApiError::bad(name, "an empty value"));
                }
                out.push(part.to_owned());
            }
        }
        Ok(out)
    }

    pub fn bool(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        self.one(name)?
            .map(|v| match v.as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                other => Err(ApiError::bad(
                    name,
                    format!("{other:?} is not true or false"),
                )),
            })
            .transpose()
    }

    fn number(&mut self, name: &str) -> Result<Option<f64>, ApiError> {
        self.one(name)?
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| ApiError::bad(name, format!("{v:?} is not a number")))
            })
            .transpose()
    }

    fn instant(&mut self, name: &str, now_unix_seconds: u64) -> Result<Option<u64>, ApiError> {
        self.one(name)?
            .map(|v| {
                timefmt::parse_since(&v, now_unix_seconds)
                    .map(|s| s.saturating_mul(1_000_000_000))
                    .map_err(|why| ApiError::bad(name, why))
            })
            .transpose()
    }

    /// Fails on the first parameter nobody read.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.pairs.into_iter().next() {
            Some((name, _)) => Err(ApiError::bad(name, "unknown parameter (see /openapi.json)")),
            None => Ok(()),
        }
    }
}

/// The filter parameters shared by the list and the export.
pub fn session_filter(p: &mut Params, now_unix_seconds: u64) -> Result<SessionFilter, ApiError> {
    let mut filter = SessionFilter {
        from_unix_nano: p.instant("from", now_unix_seconds)?,
        to_unix_nano: p.instant("to", now_unix_seconds)?,
        span_names: p.many("span_name")?,
        labels: p.many("label")?,
        flagged: p.bool("flagged")?,
        ..Default::default()
    };
    if let (Some(from), Some(to)) = (filter.from_unix_nano, filter.to_unix_nano) {
        if from >= to {
            return Err(ApiError::bad("to", "must be later than from"));
        }
    }
    if let Some(q) = p.one("q")? {
        if q.trim().is_empty() {
            return Err(ApiError::bad("q", "empty search text"));
        }
        filter.text = Some(q);
    }
    for spec in FILTERS {
        let value = match spec.kind {
            FilterKind::EqualsAny | FilterKind::HasAny => {
                let values = p.many(spec.param)?;
                (!values.is_empty()).then_some(FilterValue::Any(values))
            }
            FilterKind::Range => {
                let min_name = format!("{}_min", spec.param);
                let max_name = format!("{}_max", spec.param);
                let min = p.number(&min_name)?;
                let max = p.number(&max_name)?;
                if let (Some(lo), Some(hi)) = (min, max) {
                    if lo > hi {
                        return Err(ApiError::bad(
                            max_name,
                            format!("{hi} is below {min_name} = {lo}"),
                        ));
                    }
                }
                (min.is_some() || max.is_some()).then_some(FilterValue::Range { min, max })
            }
            FilterKind::NonZero => p.bool(spec.param)?.map(FilterValue::Bool),
            FilterKind::Contains => match p.one(spec.param)? {
                Some(text) if text.trim().is_empty() => {
                    return Err(ApiError::bad(spec.param, "empty text"))
                }
                other => other.map(FilterValue::Text),
            },
        };
        if let Some(value) = value {
            filter.columns.push((spec, value));
        }
    }
    Ok(filter)
}

pub fn sort(p: &mut Params) -> Result<Sort, ApiError> {
    let mut sort = Sort::default();
    if let Some(name) = p.one("sort")? {
        sort.spec = SORTS.iter().find(|s| s.param == name).ok_or_else(|| {
            let known: Vec<&str> = SORTS.iter().map(|s| s.param).collect();
            ApiError::bad(
                "sort",
                format!("{name:?} is not one of {}", known.join(", ")),
            )
        })?;
    }
    if let Some(order) = p.one("order")? {
        sort.descending = match order.as_str() {
            "desc" => true,
            "asc" => false,
            other => {
                return Err(ApiError::bad(
                    "order",
                    format!("{other:?} is not asc or desc"),
                ))
            }
        };
    }
    Ok(sort)
}

pub fn limit(p: &mut Params) -> Result<u32, ApiError> {
    match p.one("limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad(
                    "limit",
                    format!("{v:?} is not a whole number from 1 to {MAX_LIMIT}"),
                )
            }),
    }
}

/// An opaque token: hex of `v1|sort|order|value|session id`.
pub fn encode_cursor(sort: &Sort, after: &After) -> String {
    let value = match after.value {
        SortValue::Int(v) => format!("i{v}"),
        SortValue::Float(Some(v)) => format!("f{v}"),
        SortValue::Float(None) => "n".to_owned(),
    };
    hex::encode(format!(
        "v1|{}|{}|{value}|{}",
        sort.spec.param,
        if sort.descending { "desc" } else { "asc" },
        after.session_id
    ))
}

pub fn cursor(p: &mut Params, sort: &Sort) -> Result<Option<After>, ApiError> {
    let Some(token) = p.one("cursor")? else {
        return Ok(None);
    };
    let bad = || ApiError::bad("cursor", "not a cursor this API returned");
    let text = hex::decode(token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let parts: Vec<&str> = text.splitn(5, '|').collect();
    let [version, sort_name, order, value, session_id] = parts[..] else {
        return Err(bad());
    };
    if version != "v1" {
        return Err(bad());
    }
    let order_now = if sort.descending { "desc" } else { "asc" };
    if sort_name != sort.spec.param || order != order_now {
        return Err(ApiError::bad(
            "cursor",
            format!(
                "made for sort={sort_name}&order={order}, not sort={}&order={order_now}",
                sort.spec.param
            ),
        ));
    }
    let value = match (
        value.split_at_checked(1),
        (sort.spec.value)(&Default::default()),
    ) {
        (Some(("i", n)), SortValue::Int(_)) => SortValue::Int(n.parse().map_err(|_| bad())?),
        (Some(("f", n)), SortValue::Float(_)) => SortValue::Float(Some(
            n.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(bad)?,
        )),
        (Some(("n", "")), SortValue::Float(_)) => SortValue::Float(None),
        _ => return Err(bad()),
    };
    Ok(Some(After {
        value,
        session_id: session_id.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(Some(q)).expect("parses")
    }

    fn bad_name(err: ApiError) -> String {
        match err {
            ApiError::BadParameter { name, .. } => name,
            other => panic!("not a 400: {other}"),
        }
    }

    #[test]
    fn filters_combine_and_repeat() {
        let mut p = params("channel=voice,sms&channel=web_chat&voice_to_voice_p95_ms_min=800&has_interruptions=true&q=refund&label=vip&flagged=false&from=2026-11-01");
        let f = session_filter(&mut p, 0).expect("valid");
        p.finish().expect("all read");
        assert_eq!(f.columns.len(), 3);
        assert_eq!(
            f.columns[0].1,
            FilterValue::Any(vec!["voice".into(), "sms".into(), "web_chat".into()])
        );
        assert_eq!(f.text.as_deref(), Some("refund"));
        assert_eq!(f.flagged, Some(false));
        assert_eq!(f.labels, ["vip"]);
        assert!(f.from_unix_nano.is_some());
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases = [
            (
                "voice_to_voice_p95_ms_min=fast",
                "voice_to_voice_p95_ms_min",
            ),
            ("duration_ms_min=10&duration_ms_max=5", "duration_ms_max"),
            ("has_interruptions=maybe", "has_interruptions"),
            ("from=yesterday", "from"),
            ("channel=", "channel"),
            ("q=%20", "q"),
        ];
        for (q, name) in cases {
            let mut p = params(q);
            let err = session_filter(&mut p, 1_000_000).expect_err(q);
            assert_eq!(bad_name(err), name, "{q}");
        }
        let mut p = params("chanel=voice");
        session_filter(&mut p, 0).expect("no known filter");
        assert_eq!(bad_name(p.finish().expect_err("unknown")), "chanel");
        assert_eq!(
            bad_name(limit(&mut params("limit=0")).expect_err("0")),
            "limit"
        );
        assert_eq!(
            bad_name(sort(&mut params("sort=price")).expect_err("price")),
            "sort"
        );
    }

    #[test]
    fn cursors_round_trip_and_belong_to_their_sort() {
        let sort = Sort::default();
        let after = After {
            value: SortValue::Int(1_763_000_000_123_456_789),
            session_id: "a|b".into(),
        };
        let token = encode_cursor(&sort, &after);
        let mut p = params(&format!("cursor={token}"));
        assert_eq!(cursor(&mut p, &sort).expect("valid"), Some(after));
        let other = Sort {
            descending: false,
            ..sort
        };
        let mut p = params(&format!("cursor={token}"));
        assert_eq!(
            bad_name(cursor(&mut p, &other).expect_err("other order")),
            "cursor"
        );
        let mut p = params("cursor=zz");
        assert_eq!(
            bad_name(cursor(&mut p, &sort).expect_err("garbage")),
            "cursor"
        );
    }
}
