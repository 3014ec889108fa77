//! Serving the emulator's routes over HTTP/1.1, one task per connection, with a [`ConnReset`]
//! handle in every request's extensions so a fault can reset the connection it arrived on (a
//! real TCP reset: zero linger, then close), as a crashed engine or a broken proxy would.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
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

/// Serves `router` on `listener` until `shutdown` completes, then waits for open connections
/// to finish.
pub async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // A second descriptor of the same socket, to set zero linger on when a fault resets it.
        let Ok((stream, spare)) = split_handle(stream) else { continue };
        let reset = ConnReset::default();
        let r = reset.clone();
        let svc = router.clone().map_request(move |mut req: axum::http::Request<Incoming>| {
            req.extensions_mut().insert(r.clone());
            req
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                _ = reset.0.notified() => {
                    // Zero linger: closing the last descriptor sends RST, not FIN.
                    let _ = spare.set_zero_linger();
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
