//! The pooled HTTP/1.1 client (hyper) that a backend's proxied requests go through.

use crate::config::BackendConfig;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// The pooled HTTP/1.1 client a backend's proxied requests go through.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The client for `cfg`: TCP_NODELAY, its connect timeout, keep-alive unless turned off.
pub fn http_client(cfg: &BackendConfig) -> HttpClient {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.set_connect_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)));
    let mut b = Client::builder(TokioExecutor::new());
    if !cfg.keep_alive {
        b.pool_max_idle_per_host(0);
    }
    b.build(conn)
}
