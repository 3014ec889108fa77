//! Starting and stopping the gateway: open the store, start the ledger writer, build the backend
//! registry and health checks, serve, and on shutdown drain in-flight requests and then the
//! ledger queue, in that order, so nothing admitted goes unrecorded.

pub mod embedded;
pub mod http;
mod shared;
pub mod telemetry;

use crate::allocator::Allocator;
use crate::api::gateway::Gateway;
use crate::api::routes::router;
use crate::auth::Authenticator;
use crate::backends::{spawn_health_checks, Registry};
use crate::config::Config;
use crate::metering::LedgerWriter;
use crate::store::Store;
use crate::units::{month_start_ms, unix_ms};
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
    let store: Arc<dyn Store> =
        crate::store::open(cfg.ledger.as_deref(), &cfg.data_dir).await.context("opening the ledger store")?;
    let (writer, sink) = LedgerWriter::start(store.clone(), cfg.ledger_durable());
    let registry = Registry::new(&cfg).map_err(anyhow::Error::msg)?;
    let health = spawn_health_checks(&registry.backends, &cfg.health);
    let auth = Authenticator::new(store.clone(), admin_key.as_deref()).with_failure_limit(cfg.auth_failures_per_minute);
    let allocator = if cfg.models.iter().any(|m| m.capacity.is_some()) {
        Some(Arc::new(Allocator::new(&cfg).map_err(anyhow::Error::msg)?))
    } else {
        None
    };
    let limits = tenant_limits(&cfg, &*store).await?;
    let pools = allocator.as_ref().map(|a| a.fleet.pools.iter().map(|p| p.name.clone()).collect()).unwrap_or_default();
    let state_health = Arc::new(crate::state::resilient::StateHealth::alone());
    let state = crate::state::open(&cfg, limits, pools, state_health.clone()).context("shared state")?;
    if state.shared() {
        // The lease task decides who leads.
        state_health.leader.store(false, std::sync::atomic::Ordering::Release);
        if let Err(e) = state.heartbeat().await {
            tracing::error!(error = %e, "shared state (Redis) unreachable at start");
        }
    }
    let cache =
        crate::cache::ResponseCache::new(&cfg.cache).context("loading the semantic cache's embeddings model")?;
    let cache = Arc::new(if state.shared() { cache.shared_through(state.clone()) } else { cache });
    let routers = load_routers(&cfg.models)?;
    let files: Arc<dyn crate::batch::files::FileStore> =
        Arc::new(crate::batch::files::LocalFiles::new(cfg.data_dir.join("files")));
    let batch_wake = Arc::new(tokio::sync::Notify::new());
    let guard = cfg.guard.enabled.then(|| {
        crate::guard::Watch::start(crate::guard::Settings {
            horizon_ms: (cfg.guard.horizon_s as i64).saturating_mul(1000),
            min_requests: cfg.guard.min_requests,
            weights: crate::guard::Weights::default(),
        })
    });
    let gateway = Arc::new(Gateway {
        cfg,
        allocator,
        state,
        state_health,
        auth,
        registry,
        sink,
        store,
        cache,
        routers,
        files,
        batch_wake,
        guard,
    });
    let mut background = health;
    if let Some(a) = &gateway.allocator {
        background.extend(spawn_allocator(gateway.clone(), a.clone()));
    }
    if gateway.state.shared() {
        background.extend(shared::spawn(gateway.clone()));
    }
    background.extend(crate::batch::dispatch::spawn(gateway.clone()));
    let app = router(gateway.clone());
    let limits = http::Limits {
        header_bytes: gateway.cfg.header_limit_bytes,
        header_timeout: std::time::Duration::from_millis(gateway.cfg.header_timeout_ms),
        resettable: false,
        ..Default::default()
    };
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
        let served = http::serve_with(listener, app, limits, signal).await;
        for h in background {
            h.abort();
        }
        writer.close().await;
        served.context("serving")
    });
    Ok(GatewayHandle { addr, gateway, shutdown: Some(tx), task })
}

/// Tenants' limits, with what each has spent since the start of the month (UTC) from the ledger.
async fn tenant_limits(
    cfg: &Config,
    store: &dyn Store,
) -> anyhow::Result<std::collections::HashMap<String, crate::state::TenantLimits>> {
    let since = month_start_ms(unix_ms());
    let usage = store.usage(since).await?;
    Ok(cfg
        .tenants
        .iter()
        .map(|t| {
            let spent = usage.iter().filter(|u| u.tenant == t.name).map(|u| u.revenue_usd).sum();
            let limits = crate::state::TenantLimits {
                budget_usd: t.monthly_budget_usd,
                spent_usd: spent,
                spent_month_ms: since,
                tokens_per_minute: t.tokens_per_minute,
                requests_per_minute: t.requests_per_minute,
            };
            (t.name.clone(), limits)
        })
        .collect())
}

/// The allocator's background work: every interval, exchange demand forecasts and either solve
/// the LP and publish the board (the leader; a lone replica always leads) or install the
/// leader's board; correct prices from measured load in between, at the simulator's cadence
/// ([`crate::allocator::CORRECTION_INTERVAL_S`]).
fn spawn_allocator(gw: Arc<Gateway>, alloc: Arc<Allocator>) -> Vec<JoinHandle<()>> {
    let every = std::time::Duration::from_millis(gw.cfg.admission.solve_interval_ms);
    let solver = {
        let (gw, alloc) = (gw.clone(), alloc.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let now = alloc.now();
                let own = alloc.demand(now);
                let all = match gw.state.exchange_forecasts(&own).await {
                    Ok(all) => all,
                    Err(_) => vec![own],
                };
                if !gw.state_health.leader.load(std::sync::atomic::Ordering::Acquire) {
                    if let Ok(Some(board)) = gw.state.fetch_board().await {
                        if alloc.install(board) {
                            tracing::debug!("price board installed from the leader");
                        }
                    }
                    continue;
                }
                let demand = crate::allocator::forecast::Demand::merge(all);
                let (g, a) = (gw.clone(), alloc.clone());
                match tokio::task::spawn_blocking(move || a.solve_for(&g.cfg, now, &demand)).await {
                    Ok(Ok(board)) => {
                        tracing::debug!(version = board.version, ms = board.solve_ms, "price board published");
                        if gw.state.shared() {
                            if let Err(e) = gw.state.publish_board(&board).await {
                                tracing::warn!(error = %e, "price board not shared");
                            }
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "LP solve failed; keeping the previous prices"),
                    Err(e) => tracing::error!(error = %e, "LP task panicked"),
                }
            }
        })
    };
    let corrector = tokio::spawn(async move {
        let mut tick =
            tokio::time::interval(std::time::Duration::from_secs_f64(crate::allocator::CORRECTION_INTERVAL_S));
        loop {
            tick.tick().await;
            alloc.correct_prices();
        }
    });
    vec![solver, corrector]
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

/// Each model's router, with the in-process embeddings model it weighs (one per folder, shared).
fn load_routers(
    models: &[crate::config::ModelConfig],
) -> anyhow::Result<std::collections::HashMap<String, Arc<crate::api::estimate::Router>>> {
    let mut embedders = std::collections::HashMap::new();
    let mut routers = std::collections::HashMap::new();
    for m in models {
        let Some(path) = &m.router else { continue };
        let model = crate::routing::RouterModel::load(path).with_context(|| format!("models `{}`: router", m.name))?;
        let embedder = match &m.router_model_dir {
            None => None,
            Some(dir) => Some(match embedders.get(dir) {
                Some(e) => Arc::clone(e),
                None => {
                    let e = Arc::new(
                        crate::cache::local::LocalEmbedder::start(dir)
                            .with_context(|| format!("models `{}`: router_model_dir", m.name))?,
                    );
                    embedders.insert(dir.clone(), Arc::clone(&e));
                    e
                }
            }),
        };
        let router = crate::api::estimate::Router::new(model, embedder)
            .map_err(|e| anyhow::anyhow!("models `{}`: router {}: {e}", m.name, path.display()))?;
        routers.insert(m.name.clone(), Arc::new(router));
    }
    Ok(routers)
}
