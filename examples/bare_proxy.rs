//! The framework floor of the gateway's request path: an axum server relaying every request
//! body to one upstream with the same reqwest client settings the gateway uses, and the response
//! back, with no authentication, admission, metering or JSON work. `bench/` measures it beside
//! tollgate to tell what tollgate's own work costs from what its HTTP stack costs.
//!
//! cargo run --release --example bare_proxy -- LISTEN_ADDR UPSTREAM_URL

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

async fn relay(State((client, up)): State<(reqwest::Client, String)>, uri: Uri, h: HeaderMap, body: Bytes) -> Response {
    let mut req = client.post(format!("{up}{}", uri.path())).body(body);
    if let Some(ct) = h.get("content-type") {
        req = req.header("content-type", ct);
    }
    match req.send().await {
        Ok(r) => {
            let status = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let ct = r.headers().get("content-type").cloned();
            let stream = r.bytes_stream().map(|c| c.map_err(std::io::Error::other));
            let mut resp = (status, Body::from_stream(stream)).into_response();
            if let Some(ct) = ct {
                resp.headers_mut().insert("content-type", ct);
            }
            resp
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let client = reqwest::Client::builder().tcp_nodelay(true).build().expect("client");
    let app = axum::Router::new().fallback(axum::routing::post(relay)).with_state((client, a[2].clone()));
    let listener = tokio::net::TcpListener::bind(&a[1]).await.expect("bind");
    // The same accept loop as the gateway (TCP_NODELAY, header limits), so only the handler differs.
    tollgate::serve::http::serve(listener, app, std::future::pending()).await.expect("serve");
}
