//! The store's contract: the [`Store`] trait (keys, ledger, usage, stored responses), the records it returns and
//! its error.

pub use super::error::StoreError;
use crate::metering::row::LedgerRow;
use serde::Serialize;

/// A stored API key: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRecord {
    pub id: String,
    pub tenant: String,
    #[serde(skip)]
    pub hash: String,
    pub label: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// Ledger totals for one (tenant, model).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    pub tenant: String,
    pub model: String,
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub value_usd: f64,
    pub revenue_usd: f64,
    /// Value minus cost.
    pub margin_usd: f64,
}

/// A response kept for `previous_response_id` and `GET /v1/responses/{id}`, owned by one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub id: String,
    pub tenant: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    /// The conversation's input items up to this response: a JSON array.
    pub input: String,
    /// The Responses object as it was answered: JSON.
    pub response: String,
}

#[async_trait::async_trait]
pub trait Store: super::batches::BatchStore + Send + Sync + 'static {
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError>;
    async fn find_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError>;
    async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<KeyRecord>, StoreError>;
    /// Marks a key revoked; false if there is no such live key.
    async fn revoke_key(&self, id: &str, at_ms: i64) -> Result<bool, StoreError>;
    /// Appends rows in one transaction.
    async fn insert_ledger(&self, rows: &[LedgerRow]) -> Result<(), StoreError>;
    async fn ledger(&self, limit: i64) -> Result<Vec<LedgerRow>, StoreError>;
    async fn ledger_count(&self) -> Result<i64, StoreError>;
    /// Totals by tenant and model for rows started at or after `since_ms`.
    async fn usage(&self, since_ms: i64) -> Result<Vec<UsageRow>, StoreError>;
    /// Keeps a response (and drops those expired by its creation time).
    async fn put_response(&self, r: &StoredResponse) -> Result<(), StoreError>;
    /// Tenant `tenant`'s response `id`, if it is kept and not expired at `now_ms`.
    async fn get_response(&self, tenant: &str, id: &str, now_ms: i64) -> Result<Option<StoredResponse>, StoreError>;
    /// Deletes tenant `tenant`'s response `id`; false if it has none by that id.
    async fn delete_response(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;
}
