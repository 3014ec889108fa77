//! The emulator's Prometheus metrics, under vLLM's names so that code reading a real vLLM's
//! load reads the emulator's the same way. Latency histograms are in emulated seconds (wall
//! time multiplied by the time scale).

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
    160.0, 640.0,
];
const LAG_BUCKETS: &[f64] = &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub running: IntGaugeVec,
    pub waiting: IntGaugeVec,
    pub kv_usage: GaugeVec,
    pub kv_usage_v1: GaugeVec,
    pub prompt_tokens: IntCounterVec,
    pub generation_tokens: IntCounterVec,
    pub prefix_queries: IntCounterVec,
    pub prefix_hits: IntCounterVec,
    pub preemptions: IntCounterVec,
    pub success: IntCounterVec,
    pub ttft: HistogramVec,
    pub e2e: HistogramVec,
    pub step_lag: HistogramVec,
    pub steps: IntCounterVec,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    r.register(Box::new(m.clone())).expect("metric names are unique");
    m
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let eng = &["model_name", "engine"];
        let model = &["model_name"];
        let ig = |n: &str, h: &str| reg(&r, IntGaugeVec::new(Opts::new(n, h), eng).expect("valid"));
        let g = |n: &str, h: &str| reg(&r, GaugeVec::new(Opts::new(n, h), eng).expect("valid"));
        let c = |n: &str, h: &str, l: &[&str]| reg(&r, IntCounterVec::new(Opts::new(n, h), l).expect("valid"));
        let hist = |n: &str, h: &str, b: &[f64], l: &[&str]| {
            reg(&r, HistogramVec::new(HistogramOpts::new(n, h).buckets(b.to_vec()), l).expect("valid"))
        };
        Self {
            running: ig("vllm:num_requests_running", "Number of requests in the running batch."),
            waiting: ig("vllm:num_requests_waiting", "Number of requests waiting to be scheduled."),
            kv_usage: g("vllm:gpu_cache_usage_perc", "KV-cache usage; 1 means 100 percent."),
            kv_usage_v1: g("vllm:kv_cache_usage_perc", "KV-cache usage; 1 means 100 percent."),
            prompt_tokens: c("vllm:prompt_tokens_total", "Prefill tokens processed.", model),
            generation_tokens: c("vllm:generation_tokens_total", "Generation tokens processed.", model),
            prefix_queries: c("vllm:prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.", model),
            prefix_hits: c("vllm:prefix_cache_hits_total", "Prompt tokens found in the prefix cache.", model),
            preemptions: c("vllm:num_preemptions_total", "Cumulative number of preemptions.", model),
            success: c(
                "vllm:request_success_total",
                "Count of successfully processed requests.",
                &["model_name", "finished_reason"],
            ),
            ttft: hist(
                "vllm:time_to_first_token_seconds",
                "Time to first token, emulated seconds.",
                LATENCY_BUCKETS,
                model,
            ),
            e2e: hist(
                "vllm:e2e_request_latency_seconds",
                "End-to-end request latency, emulated seconds.",
                LATENCY_BUCKETS,
                model,
            ),
            step_lag: hist(
                "tollgate_emulator_step_lag_seconds",
                "Wall-clock delay of each engine step past its modelled end (0 when the emulator keeps up).",
                LAG_BUCKETS,
                &["engine"],
            ),
            steps: c("tollgate_emulator_steps_total", "Engine steps run.", &["engine"]),
            registry: r,
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding to memory");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
