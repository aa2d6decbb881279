//! Prometheus metrics: HTTP requests, operations, holds on operations, backend calls and
//! their attempts on the wire, in one registry per server so that tests can run several
//! servers in one process.

use overcast_provider::{Attempt, AttemptOutcome};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    operations: IntCounterVec,
    backend_calls: IntCounterVec,
    backend_attempts: IntCounterVec,
    backend_retries: IntCounterVec,
    backend_throttles: IntCounterVec,
    leases: IntCounterVec,
    inventory_refreshes: IntCounterVec,
    inventory_instances: prometheus::IntGaugeVec,
    drift_events: IntCounterVec,
}

/// What happened to a server's hold on an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEvent {
    /// It claimed an operation nobody held.
    Claim,
    /// It claimed an operation whose holder's lease had run out.
    Takeover,
    /// It found that another server holds an operation it was running, and stopped.
    Lost,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("static metric {name}: {e}"));
            registry
                .register(Box::new(c.clone()))
                .unwrap_or_else(|e| unreachable!("metric {name} registered twice: {e}"));
            c
        };
        let http_requests = counter(
            "overcast_http_requests_total",
            "HTTP requests by declared route, method and status.",
            &["route", "method", "status"],
        );
        let operations = counter(
            "overcast_operations_total",
            "Operations entering each status, by kind.",
            &["kind", "status"],
        );
        let backend_calls = counter(
            "overcast_backend_calls_total",
            "Calls to backends by provider, action, region and outcome.",
            &["provider", "action", "region", "outcome"],
        );
        let backend_attempts = counter(
            "overcast_backend_attempts_total",
            "Attempts on the wire of backend calls (a retried call makes several), by \
             provider, action, region and outcome (ok, throttled, failed, no_answer).",
            &["provider", "action", "region", "outcome"],
        );
        let backend_retries = counter(
            "overcast_backend_retries_total",
            "Attempts of backend calls after their first, by provider, action and region.",
            &["provider", "action", "region"],
        );
        let backend_throttles = counter(
            "overcast_backend_throttles_total",
            "Attempts of backend calls the backend throttled, by provider, action and region.",
            &["provider", "action", "region"],
        );
        let leases = counter(
            "overcast_operation_leases_total",
            "Holds on operations this server took or lost: claim (nobody held it), takeover \
             (its holder's lease ran out), lost (another server holds it now).",
            &["event"],
        );
        let inventory_refreshes = counter(
            "overcast_inventory_refreshes_total",
            "Refreshes of an environment's inventory from its backend, by outcome.",
            &["environment", "outcome"],
        );
        let drift_events = counter(
            "overcast_drift_events_total",
            "Changes made outside overcast that an inventory saw, by kind (created, \
             changed, deleted).",
            &["environment", "kind"],
        );
        let inventory_instances = prometheus::IntGaugeVec::new(
            Opts::new(
                "overcast_inventory_instances",
                "Instances an environment's inventory holds.",
            ),
            &["environment"],
        )
        .unwrap_or_else(|e| unreachable!("static gauge: {e}"));
        registry
            .register(Box::new(inventory_instances.clone()))
            .unwrap_or_else(|e| unreachable!("gauge registered twice: {e}"));
        let http_seconds = HistogramVec::new(
            HistogramOpts::new(
                "overcast_http_request_duration_seconds",
                "HTTP request latency by declared route and method.",
            ),
            &["route", "method"],
        )
        .unwrap_or_else(|e| unreachable!("static histogram: {e}"));
        registry
            .register(Box::new(http_seconds.clone()))
            .unwrap_or_else(|e| unreachable!("histogram registered twice: {e}"));
        Metrics {
            registry,
            http_requests,
            http_seconds,
            operations,
            backend_calls,
            backend_attempts,
            backend_retries,
            backend_throttles,
            leases,
            inventory_refreshes,
            inventory_instances,
            drift_events,
        }
    }

    /// A refresh of an environment's inventory, and how many instances it holds after.
    pub fn inventory_refresh(&self, environment: &str, outcome: &str, instances: usize) {
        self.inventory_refreshes
            .with_label_values(&[environment, outcome])
            .inc();
        self.inventory_instances
            .with_label_values(&[environment])
            .set(instances as i64);
    }

    pub fn drift(&self, environment: &str, kind: &str) {
        self.drift_events
            .with_label_values(&[environment, kind])
            .inc();
    }

    pub fn lease(&self, event: LeaseEvent) {
        let name = match event {
            LeaseEvent::Claim => "claim",
            LeaseEvent::Takeover => "takeover",
            LeaseEvent::Lost => "lost",
        };
        self.leases.with_label_values(&[name]).inc();
    }

    pub fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.http_requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.http_seconds
            .with_label_values(&[route, method])
            .observe(seconds);
    }

    pub fn operation(&self, kind: &str, status: &str) {
        self.operations.with_label_values(&[kind, status]).inc();
    }

    /// Counts one backend call; providers report every call here.
    pub fn backend_call(&self, provider: &str, action: &str, region: &str, outcome: &str) {
        self.backend_calls
            .with_label_values(&[provider, action, region, outcome])
            .inc();
    }

    /// Counts one attempt on the wire of a backend call.
    pub fn backend_attempt(&self, attempt: &Attempt<'_>) {
        let labels = [attempt.provider, attempt.action, attempt.region];
        self.backend_attempts
            .with_label_values(&[
                attempt.provider,
                attempt.action,
                attempt.region,
                attempt.outcome.as_str(),
            ])
            .inc();
        if attempt.number > 1 {
            self.backend_retries.with_label_values(&labels).inc();
        }
        if attempt.outcome == AttemptOutcome::Throttled {
            self.backend_throttles.with_label_values(&labels).inc();
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for these metric types.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_rendered() {
        let m = Metrics::new();
        m.http_request("/v1/operations", "GET", 200, 0.01);
        m.operation("token.create", "succeeded");
        m.backend_call("aws", "StopInstances", "eu-west-1", "ok");
        for (number, outcome) in [(1, AttemptOutcome::Throttled), (2, AttemptOutcome::Ok)] {
            m.backend_attempt(&Attempt {
                provider: "aws",
                action: "StopInstances",
                region: "eu-west-1",
                number,
                outcome,
            });
        }
        let text = m.render();
        assert!(text.contains(
            r#"overcast_http_requests_total{method="GET",route="/v1/operations",status="200"} 1"#
        ));
        assert!(
            text.contains(r#"overcast_operations_total{kind="token.create",status="succeeded"} 1"#)
        );
        assert!(text.contains(
            r#"overcast_backend_calls_total{action="StopInstances",outcome="ok",provider="aws",region="eu-west-1"} 1"#
        ));
        for line in [
            r#"overcast_backend_attempts_total{action="StopInstances",outcome="throttled",provider="aws",region="eu-west-1"} 1"#,
            r#"overcast_backend_attempts_total{action="StopInstances",outcome="ok",provider="aws",region="eu-west-1"} 1"#,
            r#"overcast_backend_retries_total{action="StopInstances",provider="aws",region="eu-west-1"} 1"#,
            r#"overcast_backend_throttles_total{action="StopInstances",provider="aws",region="eu-west-1"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
