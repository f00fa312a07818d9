//! Tenants and their keys. Each tenant's data lives in its own ClickHouse database, so no
//! query can reach another tenant's rows: isolation is by construction, and deleting all of a
//! tenant's conversations is dropping its database. Keys are configured as SHA-256 hashes
//! and presented as `Authorization: Bearer <key>` or `x-api-key: <key>` (HTTP headers or gRPC
//! metadata). With no tenants configured, one tenant serves loopback clients without keys.

use std::collections::HashMap;
use std::net::SocketAddr;
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
}

impl<H> Tenants<H> {
    pub fn new(handles: Vec<H>, keys: KeyMap) -> Tenants<H> {
        Tenants { handles, keys }
    }

    pub fn all(&self) -> &[H] {
        &self.handles
    }

    /// No keys configured: the single tenant serves loopback clients only.
    pub fn open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The tenant a request acts for. `peer` None means an in-process caller (tests).
    pub fn authorize(
        &self,
        key: Option<&str>,
        peer: Option<SocketAddr>,
        wanted: Scope,
    ) -> Result<&H, AuthError> {
        if self.open() {
            let local = peer.is_none_or(|p| p.ip().is_loopback());
            return match (local, self.handles.first()) {
                (true, Some(tenant)) => Ok(tenant),
                _ => Err(AuthError::NotLoopback),
            };
        }
        let key = key.ok_or(AuthError::MissingKey)?;
        let (index, scope) = *self.keys.get(&hash_key(key)).ok_or(AuthError::UnknownKey)?;
        if !scope.allows(wanted) {
            return Err(AuthError::WrongScope(scope));
        }
        self.handles.get(index).ok_or(AuthError::UnknownKey)
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
    fn scopes() {
        assert!(Scope::Admin.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Admin));
        assert!(!Scope::Ingest.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Ingest));
        assert_eq!(hash_key("secret").len(), 64);
    }
}
