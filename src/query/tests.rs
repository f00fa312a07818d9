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

#[test]
fn closed_filters_take_any_form_of_a_value_and_name_the_allowed_ones() {
    let mut p = params("outcome=skill_error,In%20progress&state=awaiting-user&call_status=COMPLETED&ended_reason=User%20Hangup&direction=Inbound");
    let f = session_filter(&mut p, 0).expect("valid");
    let values: Vec<(&str, &FilterValue)> = f.columns.iter().map(|(s, v)| (s.param, v)).collect();
    let any = |v: &[&str]| FilterValue::Any(v.iter().map(|s| s.to_string()).collect());
    assert_eq!(
        values,
        [
            ("direction", &any(&["inbound"])),
            ("state", &any(&["AWAITING_USER"])),
            ("outcome", &any(&["Skill Error", "In Progress"])),
            ("call_status", &any(&["Completed"])),
            ("ended_reason", &any(&["user_hangup"])),
        ]
    );
    for (q, name) in [
        ("outcome=great", "outcome"),
        ("state=done", "state"),
        ("call_status=ok", "call_status"),
        ("ended_reason=bye", "ended_reason"),
        ("direction=sideways", "direction"),
    ] {
        let err = session_filter(&mut params(q), 0).expect_err(q);
        assert_eq!(err.name, name);
        let spec = FILTERS.iter().find(|f| f.param == name).expect("filter");
        assert!(
            spec.allowed.iter().all(|v| err.why.contains(v)),
            "{}",
            err.why
        );
    }
    // Open filters are untouched.
    let f = session_filter(&mut params("channel=Fax"), 0).expect("valid");
    assert_eq!(f.columns[0].1, any(&["Fax"]));
}
