//! The store's part of the Batch API: files, batches and their lines, as records, and the
//! [`BatchStore`] contract both SQL stores implement (`batch_sql.rs`).

use super::error::StoreError;
use crate::metering::row::LedgerRow;

/// A file's metadata; its bytes are in the file store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub id: String,
    pub tenant: String,
    /// `batch` (an upload), `batch_output` (a batch's output or error file).
    pub purpose: String,
    pub filename: String,
    pub bytes: i64,
    pub created_at_ms: i64,
}

/// Where a batch is in OpenAI's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStatus {
    Validating,
    Failed,
    InProgress,
    Finalizing,
    Completed,
    Expired,
    Cancelling,
    Cancelled,
}

impl BatchStatus {
    pub const ALL: [BatchStatus; 8] = [
        Self::Validating,
        Self::Failed,
        Self::InProgress,
        Self::Finalizing,
        Self::Completed,
        Self::Expired,
        Self::Cancelling,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validating => "validating",
            Self::Failed => "failed",
            Self::InProgress => "in_progress",
            Self::Finalizing => "finalizing",
            Self::Completed => "completed",
            Self::Expired => "expired",
            Self::Cancelling => "cancelling",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The column stamped with the time a batch entered this status (none for `validating`,
    /// whose time is the creation's).
    pub fn stamp_column(self) -> Option<&'static str> {
        match self {
            Self::Validating => None,
            Self::Failed => Some("failed_at_ms"),
            Self::InProgress => Some("in_progress_at_ms"),
            Self::Finalizing => Some("finalizing_at_ms"),
            Self::Completed => Some("completed_at_ms"),
            Self::Expired => Some("expired_at_ms"),
            Self::Cancelling => Some("cancelling_at_ms"),
            Self::Cancelled => Some("cancelled_at_ms"),
        }
    }

    /// Whether the batch still has work to do (dispatch, cancel or finalize).
    pub fn is_open(self) -> bool {
        matches!(self, Self::InProgress | Self::Finalizing | Self::Cancelling)
    }
}

/// A batch as stored. Times in milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    pub id: String,
    pub tenant: String,
    /// The key that created it: its lines are metered under it.
    pub key_id: String,
    pub endpoint: String,
    pub input_file_id: String,
    pub completion_window: String,
    pub status: BatchStatus,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub in_progress_at_ms: Option<i64>,
    pub finalizing_at_ms: Option<i64>,
    pub completed_at_ms: Option<i64>,
    pub failed_at_ms: Option<i64>,
    pub expired_at_ms: Option<i64>,
    pub cancelling_at_ms: Option<i64>,
    pub cancelled_at_ms: Option<i64>,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub total: i64,
    pub completed: i64,
    pub failed: i64,
    /// The client's metadata, JSON.
    pub metadata: Option<String>,
    /// Validation errors, JSON (OpenAI's `errors` list).
    pub errors: Option<String>,
}

/// One request of a batch as created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLine {
    /// Its line number in the input file, from 1.
    pub line: i64,
    pub custom_id: String,
    /// The request body, JSON.
    pub body: String,
}

/// A batch's progress: its lines' state counts and the value its finished lines earned (the
/// sum of their ledger rows' `value_usd`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LineCounts {
    pub pending: i64,
    pub running: i64,
    pub done: i64,
    pub value_usd: f64,
}

/// A finished line: the output (`ok`) or error file's line for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneLine {
    pub line: i64,
    pub ok: bool,
    pub result: String,
}

#[async_trait::async_trait]
pub trait BatchStore: Send + Sync {
    /// Records a file (replacing one of the same id: a batch's output written again).
    async fn put_file(&self, f: &FileRecord) -> Result<(), StoreError>;
    async fn get_file(&self, tenant: &str, id: &str) -> Result<Option<FileRecord>, StoreError>;
    /// The tenant's files, newest first, of `purpose` if given.
    async fn list_files(&self, tenant: &str, purpose: Option<&str>, limit: i64) -> Result<Vec<FileRecord>, StoreError>;
    /// False if the tenant has no such file.
    async fn delete_file(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;
    /// A batch and all its lines (pending), in one transaction.
    async fn create_batch(&self, b: &BatchRecord, lines: &[NewLine]) -> Result<(), StoreError>;
    async fn get_batch(&self, tenant: &str, id: &str) -> Result<Option<BatchRecord>, StoreError>;
    /// The tenant's batches, newest first, those created before `after`'s if given.
    async fn list_batches(&self, tenant: &str, after: Option<&str>, limit: i64)
        -> Result<Vec<BatchRecord>, StoreError>;
    /// Every tenant's batches with work left ([`BatchStatus::is_open`]).
    async fn open_batches(&self) -> Result<Vec<BatchRecord>, StoreError>;
    /// Moves batch `id` to `to` (stamping its time) if it is in one of `from`; false otherwise
    /// (another replica moved it first).
    async fn move_batch(&self, id: &str, from: &[BatchStatus], to: BatchStatus, at_ms: i64)
        -> Result<bool, StoreError>;
    async fn set_batch_files(&self, id: &str, output: Option<&str>, error: Option<&str>) -> Result<(), StoreError>;
    /// Claims up to `n` pending lines of a batch for `owner`, lowest line numbers first.
    async fn claim_lines(&self, batch_id: &str, owner: &str, now_ms: i64, n: i64) -> Result<Vec<NewLine>, StoreError>;
    /// Renews every claim `owner` holds.
    async fn renew_claims(&self, owner: &str, now_ms: i64) -> Result<(), StoreError>;
    /// Lines whose claim was last renewed before `before_ms` become pending again.
    async fn release_stale_claims(&self, before_ms: i64) -> Result<u64, StoreError>;
    /// Gives a claimed line back (to be dispatched again later).
    async fn unclaim_line(&self, batch_id: &str, line: i64, owner: &str) -> Result<(), StoreError>;
    /// Finishes a line claimed by `owner` (or, with no owner, a pending one) with its result,
    /// writing its ledger row in the same transaction and counting it in the batch. False if
    /// the line was not in that state (another replica took it over): nothing is written.
    async fn finish_line(
        &self,
        batch_id: &str,
        line: i64,
        owner: Option<&str>,
        ok: bool,
        result: &str,
        row: Option<&LedgerRow>,
    ) -> Result<bool, StoreError>;
    /// The pending lines.
    async fn pending_lines(&self, batch_id: &str) -> Result<Vec<NewLine>, StoreError>;
    async fn line_counts(&self, batch_id: &str) -> Result<LineCounts, StoreError>;
    /// The finished lines in line order.
    async fn done_lines(&self, batch_id: &str) -> Result<Vec<DoneLine>, StoreError>;
}
