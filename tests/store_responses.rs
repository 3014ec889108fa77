//! Stored responses in both stores (SQLite and a real PostgreSQL): kept per tenant, hidden from
//! another tenant, gone once expired (and swept by the next write), deleted once.

mod common;

use common::services::Postgres;
use std::sync::Arc;
use tollgate::store::{PostgresStore, SqliteStore, Store, StoredResponse};

fn response(id: &str, tenant: &str, created: i64, ttl: i64) -> StoredResponse {
    StoredResponse {
        id: id.into(),
        tenant: tenant.into(),
        created_at_ms: created,
        expires_at_ms: created + ttl,
        input: r#"[{"role":"user","content":"hi"}]"#.into(),
        response: format!(r#"{{"id":"{id}","object":"response"}}"#),
    }
}

async fn round_trip(store: Arc<dyn Store>) {
    store.put_response(&response("resp_a", "acme", 1_000, 500)).await.unwrap();
    let got = store.get_response("acme", "resp_a", 1_200).await.unwrap().expect("kept");
    assert_eq!(got, response("resp_a", "acme", 1_000, 500));
    assert!(store.get_response("globex", "resp_a", 1_200).await.unwrap().is_none(), "another tenant's");
    assert!(store.get_response("acme", "resp_a", 1_500).await.unwrap().is_none(), "expired");
    assert!(!store.delete_response("globex", "resp_a").await.unwrap(), "another tenant cannot delete it");
    // The next write sweeps what expired before it.
    store.put_response(&response("resp_b", "acme", 2_000, 500)).await.unwrap();
    assert!(!store.delete_response("acme", "resp_a").await.unwrap(), "swept");
    assert!(store.delete_response("acme", "resp_b").await.unwrap());
    assert!(!store.delete_response("acme", "resp_b").await.unwrap(), "deleted once");
}

#[tokio::test]
async fn stored_responses_in_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(Arc::new(SqliteStore::open(dir.path()).await.unwrap())).await;
    let pg = Postgres::start();
    round_trip(Arc::new(PostgresStore::connect(&pg.url).await.unwrap())).await;
}
