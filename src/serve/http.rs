//! Serving a router over HTTP/1.1 (gateway and emulator alike), one task per connection, with
//! limits on what a client may send before its body (header bytes and count, and the time to
//! send them: a slow-headers client cannot hold a connection open) and two extensions in every
//! request: the peer's address (`ConnectInfo`) and a [`ConnReset`] handle with which the
//! emulator's faults reset the connection (a real TCP reset: zero linger, then close), as a
//! crashed engine or a broken proxy would. Stopping waits for open connections to finish.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tower::ServiceExt;

/// Resets the connection a request came on.
#[derive(Clone, Default)]
pub struct ConnReset(Arc<Notify>);

impl ConnReset {
    /// Resets the connection; the handler should then wait forever (its connection is gone).
    pub fn reset(&self) {
        self.0.notify_one();
    }
}

/// What a client may send before its body.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request line and headers, in bytes; more is refused with 431.
    pub header_bytes: usize,
    /// Header fields; more is refused with 431.
    pub headers: usize,
    /// Time to send the request line and headers; then the connection is closed.
    pub header_timeout: Duration,
    /// Whether handlers may reset their connection ([`ConnReset`], the emulator's faults): it
    /// costs a second descriptor per connection, which the gateway, holding two per stream
    /// already (client and upstream), does without.
    pub resettable: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { header_bytes: 64 * 1024, headers: 100, header_timeout: Duration::from_secs(30), resettable: true }
    }
}

/// Connections waiting to be accepted (the kernel caps it at `net.core.somaxconn`). Tokio's
/// default, 1,024, dropped connections when thousands of clients (or a gateway opening thousands
/// of upstream streams) connect at once; their SYNs are then retried seconds later.
const ACCEPT_BACKLOG: u32 = 8192;

/// Binds a listener on `addr` (host:port, a name resolved first) with a deep accept backlog.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(ACCEPT_BACKLOG)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: no address"))))
}

/// Serves `router` on `listener` until `shutdown` completes, then waits for open connections
/// to finish.
pub async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    serve_with(listener, router, Limits::default(), shutdown).await
}

/// [`serve`] with the given limits.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .max_header_size(limits.header_bytes)
        .max_headers(limits.headers)
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Responses and SSE events are small writes: without TCP_NODELAY each one after the
        // first waits for the client's delayed ACK (about 40 ms on Linux).
        let _ = stream.set_nodelay(true);
        // A second descriptor of the same socket, to set zero linger on when a fault resets it.
        let (stream, spare) = if limits.resettable {
            let Ok((stream, spare)) = split_handle(stream) else { continue };
            (stream, Some(spare))
        } else {
            (stream, None)
        };
        let reset = ConnReset::default();
        let r = reset.clone();
        let svc = router.clone().map_request(move |mut req: axum::http::Request<Incoming>| {
            req.extensions_mut().insert(r.clone());
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            req
        });
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                _ = reset.0.notified(), if spare.is_some() => {
                    // Zero linger: closing the last descriptor sends RST, not FIN.
                    if let Some(spare) = &spare {
                        let _ = spare.set_zero_linger();
                    }
                }
            }
            drop(spare);
        });
    }
    graceful.shutdown().await;
    Ok(())
}

fn split_handle(stream: TcpStream) -> std::io::Result<(TcpStream, TcpStream)> {
    let std = stream.into_std()?;
    let spare = std.try_clone()?;
    Ok((TcpStream::from_std(std)?, TcpStream::from_std(spare)?))
}
