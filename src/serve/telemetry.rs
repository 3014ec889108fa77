//! Logs and traces. Logs go to stderr, filtered by `TOLLGATE_LOG` (default `info`). Traces are
//! off unless `[tracing] otlp_endpoint` is set: then every proxied request is a span tree (the
//! request, and under it one span per stage: classify, cache, admit, send, relay), with the
//! OpenTelemetry GenAI attributes, exported over OTLP/HTTP (protobuf) by the OpenTelemetry SDK's
//! batch processor. Request spans are at debug level under the target [`SPAN_TARGET`], enabled
//! only for the exporter, so without it they cost nothing and never reach the logs.

use crate::config::TracingConfig;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The target of the request's spans.
pub const SPAN_TARGET: &str = "tollgate::request";

/// What must outlive the process's work: the tracer provider, flushed on drop.
#[derive(Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("tracing: flushing spans at exit failed: {e}");
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("tracing.otlp_endpoint: {0}")]
    Exporter(String),
}

/// Installs the global subscriber: logs to stderr, and the OTLP exporter when `tracing` names
/// an endpoint. Call once, before anything logs.
pub fn init(tracing_cfg: Option<&TracingConfig>) -> Result<Telemetry, TelemetryError> {
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(EnvFilter::try_from_env("TOLLGATE_LOG").unwrap_or_else(|_| "info".into()));
    let Some(cfg) = tracing_cfg.filter(|c| c.otlp_endpoint.is_some()) else {
        let _ = tracing_subscriber::registry().with(logs).try_init();
        return Ok(Telemetry::default());
    };
    let endpoint = cfg.otlp_endpoint.clone().unwrap_or_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(std::time::Duration::from_millis(cfg.export_timeout_ms))
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let batch = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            opentelemetry_sdk::trace::BatchConfigBuilder::default()
                .with_scheduled_delay(std::time::Duration::from_millis(cfg.export_interval_ms))
                .build(),
        )
        .build();
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(cfg.service_name.clone()).build();
    let provider = SdkTracerProvider::builder().with_span_processor(batch).with_resource(resource).build();
    let tracer = provider.tracer("tollgate");
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(Targets::new().with_target(SPAN_TARGET, tracing::Level::DEBUG));
    let _ = tracing_subscriber::registry().with(logs).with(spans).try_init();
    Ok(Telemetry { provider: Some(provider) })
}
