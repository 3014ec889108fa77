//! The Batch API's store in both stores (SQLite and a real PostgreSQL): files per tenant,
//! a batch created with its lines, claims that two replicas cannot both win, stale claims
//! released, a line finished with its ledger row in one transaction (and not by a replica that
//! lost its claim), status moves only from the states named, and the listing cursor.

mod common;

use common::services::Postgres;
use std::sync::Arc;
use tollgate::metering::{LedgerSink, Meter, Outcome};
use tollgate::store::batches::{BatchRecord, BatchStatus, FileRecord, NewLine};
use tollgate::store::{PostgresStore, SqliteStore, Store};

fn batch(id: &str, created: i64, total: i64) -> BatchRecord {
    BatchRecord {
        id: id.into(),
        tenant: "acme".into(),
        key_id: "k1".into(),
        endpoint: "/v1/chat/completions".into(),
        input_file_id: "file-in".into(),
        completion_window: "24h".into(),
        status: BatchStatus::InProgress,
        created_at_ms: created,
        expires_at_ms: created + 86_400_000,
        in_progress_at_ms: Some(created),
        finalizing_at_ms: None,
        completed_at_ms: None,
        failed_at_ms: None,
        expired_at_ms: None,
        cancelling_at_ms: None,
        cancelled_at_ms: None,
        output_file_id: None,
        error_file_id: None,
        total,
        completed: 0,
        failed: 0,
        metadata: Some(r#"{"job":"x"}"#.into()),
        errors: None,
    }
}

async fn round_trip(store: Arc<dyn Store>) {
    let f = FileRecord {
        id: "file-in".into(),
        tenant: "acme".into(),
        purpose: "batch".into(),
        filename: "in.jsonl".into(),
        bytes: 10,
        created_at_ms: 1,
    };
    store.put_file(&f).await.unwrap();
    assert_eq!(store.get_file("acme", "file-in").await.unwrap(), Some(f.clone()));
    assert_eq!(store.get_file("globex", "file-in").await.unwrap(), None, "another tenant's");
    assert_eq!(store.list_files("acme", Some("batch"), 10).await.unwrap().len(), 1);
    assert!(store.list_files("acme", Some("batch_output"), 10).await.unwrap().is_empty());
    assert!(!store.delete_file("globex", "file-in").await.unwrap());

    let lines: Vec<NewLine> =
        (1..=5).map(|i| NewLine { line: i, custom_id: format!("c{i}"), body: format!(r#"{{"n":{i}}}"#) }).collect();
    store.create_batch(&batch("batch_a", 100, 5), &lines).await.unwrap();
    store.create_batch(&batch("batch_b", 200, 0), &[]).await.unwrap();
    let got = store.get_batch("acme", "batch_a").await.unwrap().unwrap();
    assert_eq!(got, batch("batch_a", 100, 5));
    assert!(store.get_batch("globex", "batch_a").await.unwrap().is_none());
    let listed: Vec<String> = store.list_batches("acme", None, 10).await.unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(listed, ["batch_b", "batch_a"], "newest first");
    let after: Vec<String> =
        store.list_batches("acme", Some("batch_b"), 10).await.unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(after, ["batch_a"]);

    // Two replicas claim: each line goes to one of them.
    let a = store.claim_lines("batch_a", "r1", 1_000, 3).await.unwrap();
    let b = store.claim_lines("batch_a", "r2", 1_000, 3).await.unwrap();
    assert_eq!(a.iter().map(|l| l.line).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(b.iter().map(|l| l.line).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(a[0].body, r#"{"n":1}"#);
    // r1 renews; r2 stops: its claims go stale and its lines are pending again.
    store.renew_claims("r1", 5_000).await.unwrap();
    assert_eq!(store.release_stale_claims(4_000).await.unwrap(), 2);
    let c = store.line_counts("batch_a").await.unwrap();
    assert_eq!((c.pending, c.running, c.done), (2, 3, 0));
    // A line finished with its ledger row; r2 lost line 4, so it cannot finish it.
    let (sink, _rx) = LedgerSink::detached();
    let mut m = Meter::new(
        sink,
        "batch_req_a_1".into(),
        "acme",
        "k1",
        "/v1/chat/completions",
        Default::default(),
        Default::default(),
    );
    m.client_request_id(Some("c1".into()));
    let mut row = m.into_row(200, Outcome::Ok, None);
    row.value_usd = 0.25;
    assert!(store.finish_line("batch_a", 1, Some("r1"), true, "{\"custom_id\":\"c1\"}", Some(&row)).await.unwrap());
    assert!(!store.finish_line("batch_a", 1, Some("r1"), true, "again", Some(&row)).await.unwrap(), "finished once");
    assert!(!store.finish_line("batch_a", 4, Some("r2"), true, "x", None).await.unwrap(), "r2's claim is gone");
    assert_eq!(store.ledger_count().await.unwrap(), 1, "the row came with the line, once");
    let c = store.line_counts("batch_a").await.unwrap();
    assert_eq!((c.done, c.value_usd), (1, 0.25), "the batch earned the line's value, once");
    store.unclaim_line("batch_a", 2, "r1").await.unwrap();
    let pending: Vec<i64> = store.pending_lines("batch_a").await.unwrap().into_iter().map(|l| l.line).collect();
    assert_eq!(pending, [2, 4, 5]);
    assert!(store.finish_line("batch_a", 4, None, false, "{\"custom_id\":\"c4\"}", None).await.unwrap());
    let done = store.done_lines("batch_a").await.unwrap();
    assert_eq!(done.iter().map(|d| (d.line, d.ok)).collect::<Vec<_>>(), [(1, true), (4, false)]);
    let got = store.get_batch("acme", "batch_a").await.unwrap().unwrap();
    assert_eq!((got.completed, got.failed), (1, 1));

    // Status moves only from the states named, stamping the time.
    assert!(!store.move_batch("batch_a", &[BatchStatus::Cancelling], BatchStatus::Cancelled, 9).await.unwrap());
    assert!(store.move_batch("batch_a", &[BatchStatus::InProgress], BatchStatus::Cancelling, 7).await.unwrap());
    store.set_batch_files("batch_a", Some("file-out"), None).await.unwrap();
    let got = store.get_batch("acme", "batch_a").await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.cancelling_at_ms, got.output_file_id.as_deref()),
        (BatchStatus::Cancelling, Some(7), Some("file-out"))
    );
    let open: Vec<String> = store.open_batches().await.unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(open, ["batch_a", "batch_b"]);
    assert!(store.delete_file("acme", "file-in").await.unwrap());
}

#[tokio::test]
async fn batches_in_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(Arc::new(SqliteStore::open(dir.path()).await.unwrap())).await;
    let pg = Postgres::start();
    round_trip(Arc::new(PostgresStore::connect(&pg.url).await.unwrap())).await;
}
