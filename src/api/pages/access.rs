//! Who a page request acts for, and the guards on what pages change.
//!
//! A browser cannot send an API key header on a link or a form, so the pages also take the
//! key from a cookie set once by the key form (HttpOnly: scripts cannot read it; SameSite
//! Strict: other sites cannot make the browser send it). Every page write carries a CSRF
//! token that must equal this browser's own token cookie (double submit), and is refused
//! when the browser says it comes from another site. A signed share link lets one session
//! page be read, until it expires, without a key.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Uri};

use super::super::{ApiError, ApiState};
use crate::hmac::hmac_sha256;
use crate::store::Store;
use crate::tenants::{presented_key, request_host, AuthError, Scope};

/// The API key the key form stored, hex-encoded (keys may hold any character).
const KEY_COOKIE: &str = "convolog_key";
/// This browser's CSRF token.
const CSRF_COOKIE: &str = "convolog_csrf";
/// How long the key cookie lasts.
const KEY_COOKIE_SECONDS: u64 = 30 * 86_400;

/// A page request: the tenant it may read (or why not) and what guards its writes.
pub struct PageRequest {
    /// Who the key (header or cookie) makes the caller; Err(None) while starting.
    caller: Result<Caller, Option<AuthError>>,
    /// Keys are configured: the key form and share links exist.
    pub keyed: bool,
    csrf_cookie: Option<String>,
    cross_site: bool,
    state: ApiState,
    headers: HeaderMap,
    uri: Uri,
    peer: Option<SocketAddr>,
}

/// Who the request acts for: a tenant's store, and the tenant's index (for share links).
#[derive(Clone)]
pub struct Caller {
    pub store: Store,
    pub tenant: usize,
}

impl FromRequestParts<ApiState> for PageRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, std::convert::Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        let key = presented_key(&parts.headers)
            .map(str::to_owned)
            .or_else(|| {
                cookie(&parts.headers, KEY_COOKIE)
                    .and_then(|hex_key| hex::decode(hex_key).ok())
                    .and_then(|bytes| String::from_utf8(bytes).ok())
            });
        let request = PageRequest {
            caller: Err(None),
            keyed: !state.tenants.open(),
            csrf_cookie: cookie(&parts.headers, CSRF_COOKIE)
                .filter(|t| t.len() == 32 && t.chars().all(|c| c.is_ascii_hexdigit()))
                .map(str::to_owned),
            cross_site: cross_site(&parts.headers, &parts.uri),
            state: state.clone(),
            headers: parts.headers.clone(),
            uri: parts.uri.clone(),
            peer,
        };
        let caller = request.authorize(key.as_deref()).map_err(|e| match e {
            ApiError::Unauthorized(why) => Some(why),
            _ => None,
        });
        Ok(PageRequest { caller, ..request })
    }
}

impl PageRequest {
    /// Who the request's key (header or the pages' cookie) makes the caller.
    pub fn caller(&self) -> Result<&Caller, ApiError> {
        match &self.caller {
            Ok(caller) => Ok(caller),
            Err(Some(why)) => Err(ApiError::Unauthorized(why.clone())),
            Err(None) => Err(ApiError::Starting),
        }
    }

    fn authorize(&self, key: Option<&str>) -> Result<Caller, ApiError> {
        if !self.state.ready.load(Ordering::Acquire) {
            return Err(ApiError::Starting);
        }
        let tenant = self.state.tenants.tenant_for_http(
            &self.headers,
            &self.uri,
            self.peer,
            key,
            Scope::Read,
        )?;
        let store = self
            .state
            .tenants
            .get(tenant)
            .cloned()
            .ok_or(AuthError::UnknownKey)?;
        Ok(Caller { store, tenant })
    }

    /// The caller a key typed into the key form would be.
    pub fn with_key(&self, key: &str) -> Result<Caller, ApiError> {
        self.authorize(Some(key.trim()))
    }

    /// The caller a share link names and when the link expires (unix seconds), if its
    /// signature holds for this session and it has not expired.
    pub fn shared(&self, token: &str, session_id: &str) -> Result<(Caller, u64), ApiError> {
        const BAD: ApiError = ApiError::Forbidden("this share link is not valid or has expired");
        if !self.state.ready.load(Ordering::Acquire) {
            return Err(ApiError::Starting);
        }
        let mut parts = token.splitn(3, '.');
        let (Some(tenant), Some(expires), Some(signature)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(BAD);
        };
        let (Ok(tenant), Ok(expires)) = (tenant.parse::<usize>(), expires.parse::<u64>()) else {
            return Err(BAD);
        };
        let secret = self.state.tenants.share_secret(tenant).ok_or(BAD)?;
        let expected = hex::encode(share_signature(&secret, session_id, expires));
        if expires <= now_unix_seconds() || !same(expected.as_bytes(), signature.as_bytes()) {
            return Err(BAD);
        }
        let store = self.state.tenants.get(tenant).cloned().ok_or(BAD)?;
        Ok((Caller { store, tenant }, expires))
    }

    /// A signed read-only link token for one session of the caller's tenant, valid until
    /// `expires` (unix seconds); None when the tenant has no keys to sign with.
    pub fn share_token(&self, caller: &Caller, session_id: &str, expires: u64) -> Option<String> {
        let secret = self.state.tenants.share_secret(caller.tenant)?;
        Some(format!(
            "{}.{expires}.{}",
            caller.tenant,
            hex::encode(share_signature(&secret, session_id, expires))
        ))
    }

    /// This browser's CSRF token for the forms of the page, and the cookie to set when the
    /// browser has none yet.
    pub fn csrf(&self) -> (String, Option<HeaderValue>) {
        match &self.csrf_cookie {
            Some(token) => (token.clone(), None),
            None => {
                let token = hex::encode(rand::random::<[u8; 16]>());
                let cookie = format!("{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
                (token, HeaderValue::from_str(&cookie).ok())
            }
        }
    }

    /// A write is allowed only with this browser's own token, sent from this site.
    pub fn check_write(&self, form_token: &str) -> Result<(), ApiError> {
        if self.cross_site {
            return Err(ApiError::Forbidden("a page write must come from this site"));
        }
        match &self.csrf_cookie {
            Some(token) if same(token.as_bytes(), form_token.as_bytes()) => Ok(()),
            _ => Err(ApiError::Forbidden(
                "the form's CSRF token is missing or stale: reload the page and try again",
            )),
        }
    }
}

/// The cookie that keeps a key for the pages.
pub fn key_cookie(key: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{KEY_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={KEY_COOKIE_SECONDS}",
        hex::encode(key.trim())
    ))
    .ok()
}

/// The cookie that forgets the key.
pub fn forget_key_cookie() -> HeaderValue {
    HeaderValue::from_static("convolog_key=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

pub fn now_unix_seconds() -> u64 {
    crate::clock::now_unix_nano() / 1_000_000_000
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// The browser says the request comes from another site: `Sec-Fetch-Site`, or an `Origin`
/// whose host is not the one addressed.
fn cross_site(headers: &HeaderMap, uri: &Uri) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return true;
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (origin, request_host(headers, uri)) {
        (None, _) => false,
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
            !origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
    }
}

/// Equal, compared in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA256 (RFC 2104) of the session id and expiry.
fn share_signature(secret: &[u8; 32], session_id: &str, expires: u64) -> [u8; 32] {
    hmac_sha256(secret, format!("{session_id}\n{expires}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_signature_is_hmac_sha256() {
        // Python: hmac.new(b"\x0b" * 32, b"s\n1", hashlib.sha256).hexdigest()
        assert_eq!(
            hex::encode(share_signature(&[0x0b; 32], "s", 1)),
            "657bea2ae12b30505f1a12910970847e3dba53afe10e260b0c79f4be2c853ca5"
        );
    }

    #[test]
    fn cookies_and_sites() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; convolog_csrf=abc; b=2"),
        );
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, KEY_COOKIE), None);
        let uri: Uri = "/sessions/x/annotations".parse().expect("uri");
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(!cross_site(&h, &uri));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(!cross_site(&h, &uri));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(cross_site(&h, &uri));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h, &uri));
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"ab", b"abc"));
    }
}
