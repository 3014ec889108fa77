//! Authentication: tenant API keys and the admin key.
//!
//! A key is `tg_<id>_<secret>`: a 12-hex-digit id to find it and a 256-bit random secret. Only
//! SHA-256 of the whole key is stored, so a leaked database leaks no usable key. Lookups are
//! cached for a couple of seconds so the request path rarely touches the database; revoking
//! through the admin API evicts the cache at once, through the CLI within the cache's lifetime.

pub mod limiter;

/// Failed authentication attempts allowed per client address and minute, by default.
pub const DEFAULT_FAILURES_PER_MINUTE: u32 = 30;

use crate::api::ApiError;
use crate::metering::unix_ms;
use crate::store::{KeyRecord, Store, StoreError};
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

const CACHE_TTL: Duration = Duration::from_secs(2);

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: String,
    pub key_id: String,
}

/// A newly created key: the secret is shown once and never stored.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key: String,
    pub record: KeyRecord,
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Splits `tg_<id>_<secret>` into its id, if well formed.
pub fn key_id(key: &str) -> Option<&str> {
    let mut parts = key.splitn(3, '_');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("tg"), Some(id), Some(secret))
            if id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) && secret.len() >= 32 =>
        {
            Some(id)
        }
        _ => None,
    }
}

/// Makes a new key for `tenant`.
pub fn generate(tenant: &str, label: &str) -> NewKey {
    let mut rng = rand::rng();
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id = hex::encode(id);
    let key = format!("tg_{id}_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
    let record = KeyRecord {
        id,
        tenant: tenant.into(),
        hash: sha256_hex(&key),
        label: label.into(),
        created_at_ms: unix_ms(),
        revoked_at_ms: None,
    };
    NewKey { key, record }
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, token) = h.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

pub struct Authenticator {
    store: Arc<dyn Store>,
    admin_hash: Option<String>,
    cache: RwLock<HashMap<String, (Option<KeyRecord>, Instant)>>,
    /// Failed attempts per client address.
    pub failures: limiter::FailureLimiter,
}

impl Authenticator {
    /// `admin_key`: the admin key, or `None` to disable the admin API.
    pub fn new(store: Arc<dyn Store>, admin_key: Option<&str>) -> Self {
        Self {
            store,
            admin_hash: admin_key.map(sha256_hex),
            cache: RwLock::new(HashMap::new()),
            failures: limiter::FailureLimiter::new(DEFAULT_FAILURES_PER_MINUTE),
        }
    }

    /// Allows each client address `per_minute` failed attempts (a minute's worth at once).
    pub fn with_failure_limit(mut self, per_minute: u32) -> Self {
        self.failures = limiter::FailureLimiter::new(per_minute);
        self
    }

    /// Whether `token` is the admin key (compared as SHA-256 digests).
    /// SHA-256 of the admin key, if the admin API is on.
    pub fn admin_hash(&self) -> Option<&str> {
        self.admin_hash.as_deref()
    }

    pub fn is_admin(&self, token: Option<&str>) -> bool {
        match (token, &self.admin_hash) {
            (Some(t), Some(h)) => constant_time_eq(sha256_hex(t).as_bytes(), h.as_bytes()),
            _ => false,
        }
    }

    /// The tenant behind a bearer token, or 401.
    pub async fn tenant(&self, token: Option<&str>) -> Result<Caller, ApiError> {
        let token = token.ok_or(ApiError::Unauthorized(
            "You didn't provide an API key. Send it in the Authorization header as `Bearer KEY`.",
        ))?;
        let invalid = ApiError::Unauthorized("Incorrect API key provided.");
        let id = key_id(token).ok_or(invalid.clone())?;
        let rec = self.lookup(id).await.map_err(|e| ApiError::Internal(e.to_string()))?.ok_or(invalid.clone())?;
        if !constant_time_eq(sha256_hex(token).as_bytes(), rec.hash.as_bytes()) {
            return Err(invalid);
        }
        if rec.revoked_at_ms.is_some() {
            return Err(ApiError::Unauthorized("This API key has been revoked."));
        }
        Ok(Caller { tenant: rec.tenant, key_id: rec.id })
    }

    async fn lookup(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        if let Some((rec, at)) = self.cache.read().expect("cache lock").get(id) {
            if at.elapsed() < CACHE_TTL {
                return Ok(rec.clone());
            }
        }
        let rec = self.store.find_key(id).await?;
        let mut cache = self.cache.write().expect("cache lock");
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(id.to_string(), (rec.clone(), Instant::now()));
        Ok(rec)
    }

    /// Forgets a cached key (after create or revoke).
    pub fn evict(&self, id: &str) {
        self.cache.write().expect("cache lock").remove(id);
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_hash() {
        let k = generate("acme", "ci");
        assert_eq!(key_id(&k.key), Some(k.record.id.as_str()));
        assert_eq!(k.record.hash, sha256_hex(&k.key));
        assert!(!k.record.hash.contains(&k.key[16..]));
        assert_eq!(key_id("tg_short_x"), None);
        assert_eq!(key_id("sk-abc"), None);
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("basic abc")), None);
        assert_eq!(bearer(None), None);
    }
}
