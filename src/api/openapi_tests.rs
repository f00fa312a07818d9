//! The generated OpenAPI document and the router agree: every route and method is documented,
//! nothing documented is missing, every list filter and sort is a documented parameter, and
//! every documented list parameter is one the list reads.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::query::{FilterKind, FILTERS, SORTS};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

fn document() -> Value {
    serde_json::to_value(openapi::document()).expect("the document is JSON")
}

/// (path, method) of every `.route(...)` in the router's source.
fn routed() -> BTreeSet<(String, String)> {
    let source = include_str!("mod.rs");
    let router = &source[source.find("pub fn router").expect("router")..];
    let router = &router[..router.find(".fallback(").expect("fallback")];
    let mut out = BTreeSet::new();
    for call in router.split(".route(").skip(1) {
        let path = call.split('"').nth(1).expect("a quoted path");
        for method in METHODS {
            let used = [
                format!(" {method}("),
                format!("({method}("),
                format!(".{method}("),
            ]
            .iter()
            .any(|p| call.contains(p.as_str()));
            if used {
                out.insert((path.to_owned(), method.to_owned()));
            }
        }
    }
    out
}

fn documented() -> BTreeSet<(String, String)> {
    let doc = document();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                out.insert((path.clone(), method.to_owned()));
            }
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let routed = routed();
    assert!(routed.len() >= 12, "{routed:?}");
    assert_eq!(routed, documented());
}

fn parameter_names(doc: &Value, path: &str) -> BTreeSet<String> {
    doc["paths"][path]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect()
}

#[test]
fn every_filter_and_sort_is_documented() {
    let doc = document();
    for path in ["/v1/sessions", "/v1/export"] {
        let names = parameter_names(&doc, path);
        for spec in FILTERS {
            let expected = match spec.kind {
                FilterKind::Range => {
                    vec![format!("{}_min", spec.param), format!("{}_max", spec.param)]
                }
                _ => vec![spec.param.to_owned()],
            };
            for name in expected {
                assert!(names.contains(&name), "{path} does not document {name}");
            }
        }
        for name in [
            "from",
            "to",
            "q",
            "span_name",
            "label",
            "flagged",
            "sort",
            "order",
        ] {
            assert!(names.contains(name), "{path} does not document {name}");
        }
    }
    let sort = doc["paths"]["/v1/sessions"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "sort")
        .expect("sort");
    let sorts: BTreeSet<&str> = sort["schema"]["enum"]
        .as_array()
        .expect("sort enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(sorts, SORTS.iter().map(|s| s.param).collect());
}

/// A request as a client on this machine sends it.
fn local_request() -> axum::http::request::Builder {
    Request::builder()
        .header("host", "localhost")
        .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))))
}

/// A value of the parameter's documented type.
fn sample(parameter: &Value) -> &'static str {
    let schema = &parameter["schema"];
    match (schema["type"].as_str(), parameter["name"].as_str()) {
        (_, Some("from" | "to")) => "1h",
        (Some("boolean"), _) => "true",
        (Some("number" | "integer"), _) => "1",
        _ => match schema["enum"][0].as_str() {
            Some("start_time") => "start_time",
            Some("desc") => "desc",
            _ => "x",
        },
    }
}

#[test]
fn every_documented_list_parameter_is_read() {
    let doc = document();
    let parameters = doc["paths"]["/v1/sessions"]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    assert!(parameters.len() > FILTERS.len(), "{parameters:?}");
    for parameter in parameters {
        let name = parameter["name"].as_str().expect("name");
        let pairs = vec![(name.to_owned(), sample(parameter).to_owned())];
        let mut p = Params::from_pairs(pairs).expect("short values");
        // A cursor of "x" is refused as a bad cursor: read, not unknown.
        let read = query::session_filter(&mut p, 1_000_000)
            .and_then(|_| query::sort(&mut p))
            .and_then(|sort| query::cursor(&mut p, &sort))
            .and_then(|_| query::limit(&mut p))
            .and_then(|_| p.finish());
        if let Err(err) = read {
            assert!(!err.why.starts_with("unknown parameter"), "{name}: {err}");
        }
    }
}

fn unreachable_store() -> ApiState {
    let mut config = crate::config::Config::default();
    // Nothing listens on the discard port: store calls fail fast with 503.
    config.clickhouse.url = "http://127.0.0.1:9".into();
    ApiState::single(
        Store::new(&config.clickhouse),
        Arc::new(crate::telemetry::Metrics::default()),
    )
}

#[tokio::test]
async fn documented_methods_are_served_and_others_refused() {
    let app = router(unreachable_store());
    let documented = documented();
    let paths: BTreeSet<&String> = documented.iter().map(|(p, _)| p).collect();
    for path in paths {
        let uri = path.replace("{id}", "s1").replace("{label}", "vip");
        for method in METHODS {
            let request = local_request()
                .method(Method::from_bytes(method.to_uppercase().as_bytes()).expect("method"))
                .uri(&uri)
                .body(Body::empty())
                .expect("request");
            let status = app.clone().oneshot(request).await.expect("answer").status();
            if documented.contains(&(path.clone(), method.to_owned())) {
                assert!(
                    status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {uri}: {status}"
                );
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            }
        }
    }
    let request = local_request()
        .uri("/openapi.json")
        .body(Body::empty())
        .expect("request");
    let response = app.oneshot(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_parameters_answer_400_before_touching_the_store() {
    let app = router(unreachable_store());
    let long = format!("/sessions?q={}", "a".repeat(501));
    for uri in [
        long.as_str(),
        "/v1/sessions?limit=0",
        "/v1/sessions?voice_to_voice_p95_ms_min=fast",
        "/v1/export?format=xml",
        "/v1/sessions/s1/transcript?format=pdf",
        "/v1/sessions/s1?unknown=1",
    ] {
        let request = local_request()
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        let response = app.clone().oneshot(request).await.expect("answer");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{uri}");
    }
}
