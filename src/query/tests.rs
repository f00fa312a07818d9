use super::*;

fn params(q: &str) -> Params {
    Params::parse(Some(q)).expect("parses")
}

fn bad_name(err: QueryError) -> String {
    err.name
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

#[test]
fn filter_params_are_unique_and_columns_fixed() {
    let mut params: Vec<&str> = FILTERS.iter().map(|f| f.param).collect();
    params.sort_unstable();
    params.dedup();
    assert_eq!(params.len(), FILTERS.len());
    assert!(FILTERS
        .iter()
        .all(|f| !f.column.contains('?') && !f.column.contains(';')));
}
