//! Tenants and their keys. Each tenant's data lives in its own ClickHouse database, so no
//! query can reach another tenant's rows: isolation is by construction, and deleting all of a
//! tenant's conversations is dropping its database. Keys are configured as SHA-256 hashes
//! and presented as `Authorization: Bearer <key>` or `x-api-key: <key>` (HTTP headers or gRPC
//! metadata). With no tenants configured, one tenant serves loopback clients without keys.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What a key may do. Admin can read too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Send spans.
    Ingest,
    /// Read sessions, label and flag them.
    Read,
    /// Read, and delete sessions.
    Admin,
}

impl Scope {
    fn allows(self, wanted: Scope) -> bool {
        self == wanted || (self == Scope::Admin && wanted == Scope::Read)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("an API key is required (Authorization: Bearer <key> or x-api-key)")]
    MissingKey,
    #[error("unknown API key")]
    UnknownKey,
    #[error("this key may not do that (it has the {0:?} scope)")]
    WrongScope(Scope),
    #[error("no API keys are configured, so only clients on this machine are served")]
    NotLoopback,
    /// A page elsewhere can make a browser on this machine send requests under a hostile
    /// name that resolves to 127.0.0.1 (DNS rebinding); the Host header gives it away.
    #[error("no API keys are configured, so only requests addressed to this machine are served (Host {0:?} is not)")]
    ForeignHost(String),
}

/// The hex SHA-256 of a key, as the configuration stores it.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The key a request presents, from its headers (or gRPC metadata, which are headers).
pub fn presented_key(headers: &http::HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// The host a request is addressed to: its `Host` header, else the authority of its URI
/// (HTTP/2 carries it there).
pub fn request_host<'a>(headers: &'a http::HeaderMap, uri: &'a http::Uri) -> Option<&'a str> {
    headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
}

/// Whether `host` (as in a `Host` header, port optional) names this machine: a loopback
/// address, or one of `allowed` (compared without case).
pub fn local_host(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(name, _)| name),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        },
    };
    name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Host names accepted without keys unless configured otherwise (loopback addresses always are).
pub fn default_open_hosts() -> Vec<String> {
    vec!["localhost".to_owned()]
}

/// Key hash -> (tenant index, scope).
pub type KeyMap = Arc<HashMap<String, (usize, Scope)>>;

/// From each tenant's (hash, scope) pairs, in tenant order.
pub fn key_map(keys: Vec<Vec<(String, Scope)>>) -> KeyMap {
    Arc::new(
        keys.into_iter()
            .enumerate()
            .flat_map(|(i, list)| {
                list.into_iter()
                    .map(move |(hash, scope)| (hash.to_ascii_lowercase(), (i, scope)))
            })
            .collect(),
    )
}

/// One handle per tenant (its store for the API, its ingest queue for the receivers),
/// found by the key a request presents.
pub struct Tenants<H> {
    handles: Vec<H>,
    keys: KeyMap,
    /// Without keys: the `Host` names HTTP requests may carry besides loopback addresses.
    open_hosts: Vec<String>,
}

impl<H> Tenants<H> {
    pub fn new(handles: Vec<H>, keys: KeyMap) -> Tenants<H> {
        Tenants {
            handles,
            keys,
            open_hosts: default_open_hosts(),
        }
    }

    pub fn with_open_hosts(self, open_hosts: Vec<String>) -> Tenants<H> {
        Tenants { open_hosts, ..self }
    }

    pub fn all(&self) -> &[H] {
        &self.handles
    }

    /// No keys configured: the single tenant serves loopback clients only.
    pub fn open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The tenant an HTTP request acts for: as [`Tenants::authorize`], and without keys only
    /// for requests addressed to this machine by name, which a browser tricked by DNS
    /// rebinding does not do.
    pub fn authorize_http(
        &self,
        headers: &http::HeaderMap,
        uri: &http::Uri,
        peer: Option<SocketAddr>,
        wanted: Scope,
    ) -> Result<&H, AuthError> {
        let index = self.tenant_for_http(headers, uri, peer, presented_key(headers), wanted)?;
        self.handles.get(index).ok_or(AuthError::UnknownKey)
    }

    /// As [`Tenants::authorize_http`] with the key given (the pages also read it from a
    /// cookie), answering the tenant's index.
    pub fn tenant_for_http(
        &self,
        headers: &http::HeaderMap,
        uri: &http::Uri,
        peer: Option<SocketAddr>,
        key: Option<&str>,
        wanted: Scope,
    ) -> Result<usize, AuthError> {
        if self.open() {
            let host = request_host(headers, uri).unwrap_or("");
            if !local_host(host, &self.open_hosts) {
                return Err(AuthError::ForeignHost(host.chars().take(100).collect()));
            }
        }
        self.tenant_for(key, peer, wanted)
    }

    /// One tenant's handle, by index.
    pub fn get(&self, index: usize) -> Option<&H> {
        self.handles.get(index)
    }

    /// A secret only this tenant's configuration yields: the hashes of its keys that may
    /// read. Signed share links are made with it, so they stop working when those keys
    /// change. None without such keys.
    pub fn share_secret(&self, index: usize) -> Option<[u8; 32]> {
        let mut hashes: Vec<&str> = self
            .keys
            .iter()
            .filter(|(_, (i, scope))| *i == index && scope.allows(Scope::Read))
            .map(|(hash, _)| hash.as_str())
            .collect();
        if hashes.is_empty() {
            return None;
        }
        hashes.sort_unstable();
        let mut digest = Sha256::new();
        digest.update(b"convolog share links v1");
        for hash in hashes {
            digest.update(hash.as_bytes());
            digest.update(b"\n");
        }
        Some(digest.finalize().into())
    }

    /// The tenant a request acts for. Without keys, only clients on this machine are served;
    /// a request whose peer is unknown is not.
    pub fn authorize(
        &self,
        key: Option<&str>,
        peer: Option<SocketAddr>,
        wanted: Scope,
    ) -> Result<&H, AuthError> {
        let index = self.tenant_for(key, peer, wanted)?;
        self.handles.get(index).ok_or(AuthError::UnknownKey)
    }

    fn tenant_for(
        &self,
        key: Option<&str>,
        peer: Option<SocketAddr>,
        wanted: Scope,
    ) -> Result<usize, AuthError> {
        if self.open() {
            let local = peer.is_some_and(|p| p.ip().is_loopback());
            return match (local, self.handles.is_empty()) {
                (true, false) => Ok(0),
                _ => Err(AuthError::NotLoopback),
            };
        }
        let key = key.ok_or(AuthError::MissingKey)?;
        let (index, scope) = *self.keys.get(&hash_key(key)).ok_or(AuthError::UnknownKey)?;
        if !scope.allows(wanted) {
            return Err(AuthError::WrongScope(scope));
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    http::HeaderValue::from_str(v).expect("header"),
                )
            })
            .collect()
    }

    #[test]
    fn keys_from_either_header() {
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer abc")])),
            Some("abc")
        );
        assert_eq!(
            presented_key(&headers(&[("x-api-key", " k2 ")])),
            Some("k2")
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(presented_key(&headers(&[])), None);
    }

    #[test]
    fn open_mode_serves_loopback_only_and_keys_pick_their_tenant() {
        let open = Tenants::new(vec!["default"], key_map(vec![vec![]]));
        let local: SocketAddr = "127.0.0.1:5000".parse().expect("address");
        let remote: SocketAddr = "192.0.2.7:5000".parse().expect("address");
        assert_eq!(
            open.authorize(None, Some(local), Scope::Read),
            Ok(&"default")
        );
        assert_eq!(
            open.authorize(None, Some(remote), Scope::Ingest),
            Err(AuthError::NotLoopback)
        );
        assert_eq!(
            open.authorize(None, None, Scope::Read),
            Err(AuthError::NotLoopback)
        );

        let keyed = Tenants::new(
            vec!["a", "b"],
            key_map(vec![
                vec![(hash_key("ka"), Scope::Admin)],
                vec![(hash_key("kb"), Scope::Ingest)],
            ]),
        );
        assert_eq!(
            keyed.authorize(Some("ka"), Some(remote), Scope::Read),
            Ok(&"a")
        );
        assert_eq!(keyed.authorize(Some("kb"), None, Scope::Ingest), Ok(&"b"));
        assert_eq!(
            keyed.authorize(Some("kb"), None, Scope::Read),
            Err(AuthError::WrongScope(Scope::Ingest))
        );
        assert_eq!(
            keyed.authorize(Some("nope"), None, Scope::Read),
            Err(AuthError::UnknownKey)
        );
        assert_eq!(
            keyed.authorize(None, Some(local), Scope::Read),
            Err(AuthError::MissingKey)
        );
    }

    #[test]
    fn open_mode_serves_requests_addressed_to_this_machine_only() {
        let allowed = default_open_hosts();
        for host in [
            "localhost",
            "LocalHost:8080",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.3.4.5",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(local_host(host, &allowed), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "192.0.2.7",
            "[::2]",
            "[::1",
        ] {
            assert!(!local_host(host, &allowed), "{host}");
        }
        assert!(local_host("box.lan:8080", &["box.lan".to_owned()]));

        let open = Tenants::new(vec!["default"], key_map(vec![vec![]]));
        let local: SocketAddr = "127.0.0.1:5000".parse().expect("address");
        let uri: http::Uri = "/v1/sessions".parse().expect("uri");
        assert_eq!(
            open.authorize_http(
                &headers(&[("host", "localhost:8080")]),
                &uri,
                Some(local),
                Scope::Read
            ),
            Ok(&"default")
        );
        assert_eq!(
            open.authorize_http(
                &headers(&[("host", "rebound.example")]),
                &uri,
                Some(local),
                Scope::Read
            ),
            Err(AuthError::ForeignHost("rebound.example".into()))
        );
        assert!(open
            .authorize_http(&headers(&[]), &uri, Some(local), Scope::Read)
            .is_err());
        let h2: http::Uri = "http://127.0.0.1:8080/v1/sessions".parse().expect("uri");
        assert_eq!(
            open.authorize_http(&headers(&[]), &h2, Some(local), Scope::Read),
            Ok(&"default")
        );
        // With keys, the key decides, whatever the Host.
        let keyed = Tenants::new(
            vec!["a"],
            key_map(vec![vec![(hash_key("ka"), Scope::Read)]]),
        );
        let with_key = headers(&[("host", "any.example"), ("x-api-key", "ka")]);
        assert_eq!(
            keyed.authorize_http(&with_key, &uri, None, Scope::Read),
            Ok(&"a")
        );
    }

    #[test]
    fn scopes() {
        assert!(Scope::Admin.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Admin));
        assert!(!Scope::Ingest.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Ingest));
        assert_eq!(hash_key("secret").len(), 64);
    }
}
