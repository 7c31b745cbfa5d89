//! The agent's own metrics, in a `prometheus` crate registry.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Metrics about the agent itself.
pub struct SelfMetrics {
    registry: Registry,
    pub reload_successful: Gauge,
    pub reload_success_timestamp: Gauge,
    pub checks_configured: IntGaugeVec,
    pub scheduler_lag: Histogram,
    /// How long the `/metrics` page took to put together (not to send): the
    /// figure to watch with tens of thousands of checks (BENCHMARKS.md).
    pub render_duration: Histogram,
}

impl SelfMetrics {
    pub fn new() -> SelfMetrics {
        let registry = Registry::new();
        let build = GaugeVec::new(
            Opts::new(
                "healthprobe_build_info",
                "A metric with a constant 1 labelled by the version and revision of healthprobe.",
            ),
            &["version", "revision"],
        )
        .expect("metric");
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("HEALTHPROBE_REVISION")])
            .set(1.0);
        let reload_successful = Gauge::new(
            "healthprobe_config_last_reload_successful",
            "Whether the last configuration load succeeded (1) or was rejected (0).",
        )
        .expect("metric");
        let reload_success_timestamp = Gauge::new(
            "healthprobe_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully, in Unix seconds.",
        )
        .expect("metric");
        let checks_configured = IntGaugeVec::new(
            Opts::new(
                "healthprobe_checks_configured",
                "Checks scheduled, by pack.",
            ),
            &["pack"],
        )
        .expect("metric");
        let scheduler_lag = Histogram::with_opts(
            HistogramOpts::new("healthprobe_scheduler_lag_seconds", "How late checks started compared with their schedule (includes waiting for a concurrency slot).")
                // Fine below 10 ms, where a healthy agent is (the goal is a
                // p99 under 5 ms with 10,000 checks; see BENCHMARKS.md).
                .buckets(vec![0.00025, 0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )
        .expect("metric");
        let render_duration = Histogram::with_opts(
            HistogramOpts::new(
                "healthprobe_metrics_render_duration_seconds",
                "How long the /metrics page took to put together, without sending it.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
        )
        .expect("metric");
        registry.register(Box::new(build)).expect("register");
        registry
            .register(Box::new(reload_successful.clone()))
            .expect("register");
        registry
            .register(Box::new(reload_success_timestamp.clone()))
            .expect("register");
        registry
            .register(Box::new(checks_configured.clone()))
            .expect("register");
        registry
            .register(Box::new(scheduler_lag.clone()))
            .expect("register");
        registry
            .register(Box::new(render_duration.clone()))
            .expect("register");
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("register");
        SelfMetrics {
            registry,
            reload_successful,
            reload_success_timestamp,
            checks_configured,
            scheduler_lag,
            render_duration,
        }
    }

    /// Appends the agent's metrics in the text format.
    pub fn render(&self, out: &mut Vec<u8>) {
        let _ = TextEncoder::new().encode(&self.registry.gather(), out);
    }
}

impl Default for SelfMetrics {
    fn default() -> Self {
        SelfMetrics::new()
    }
}
