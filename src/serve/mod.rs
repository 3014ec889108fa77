//! Starting and stopping the gateway: open the store, start the ledger writer, build the backend
//! registry and health checks, serve, and on shutdown drain in-flight requests and then the
//! ledger queue, in that order, so nothing admitted goes unrecorded.

pub mod embedded;

use crate::api::gateway::{router, Gateway};
use crate::auth::Authenticator;
use crate::backends::{spawn_health_checks, Registry};
use crate::config::Config;
use crate::metering::LedgerWriter;
use crate::store::{SqliteStore, Store};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running gateway.
pub struct GatewayHandle {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl GatewayHandle {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, waits for in-flight requests, then flushes the ledger.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.context("gateway task")?
    }

    /// Waits until the gateway stops by itself (it does not, unless `stop_on` fired).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        (&mut self.task).await.context("gateway task")?
    }
}

/// Starts the gateway on `listener`. `stop_on` (if given) triggers a graceful shutdown.
pub async fn spawn(
    cfg: Config,
    admin_key: Option<String>,
    listener: TcpListener,
    stop_on: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
) -> anyhow::Result<GatewayHandle> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&cfg.data_dir).await.context("opening the store")?);
    let (writer, sink) = LedgerWriter::start(store.clone());
    let registry = Registry::new(&cfg).map_err(anyhow::Error::msg)?;
    let health = spawn_health_checks(&registry.backends, &cfg.health);
    let auth = Authenticator::new(store.clone(), admin_key.as_deref());
    let gateway = Arc::new(Gateway { cfg, auth, registry, sink, store });
    let app = router(gateway.clone());
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let signal = async move {
            match stop_on {
                Some(s) => tokio::select! { _ = s => {}, _ = rx => {} },
                None => {
                    let _ = rx.await;
                }
            }
        };
        let served = axum::serve(listener, app).with_graceful_shutdown(signal).await;
        for h in health {
            h.abort();
        }
        writer.close().await;
        served.context("serving")
    });
    Ok(GatewayHandle { addr, gateway, shutdown: Some(tx), task })
}

/// SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
