//! Prometheus metrics with kube-apiserver's names and labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of `apiserver_request_total`. Every value is static (taken from the resource registry
/// or fixed vocabularies) so counting a request allocates nothing.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `DELETE`, ...
    pub verb: &'static str,
    /// API group.
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Resource.
    pub resource: &'static str,
    /// Subresource.
    pub subresource: &'static str,
    /// `resource`, `namespace` or `cluster`; empty for non-resource requests.
    pub scope: &'static str,
    /// Always `apiserver`.
    pub component: &'static str,
    /// HTTP status code.
    pub code: u16,
}

/// Labels of `apiserver_request_duration_seconds`: the request labels without the code.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DurationLabels {
    verb: &'static str,
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    subresource: &'static str,
    scope: &'static str,
    component: &'static str,
}

/// Labels of the authentication metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct AuthLabels {
    /// `x509`, `token-file`, `jwt`, `ldap`, `anonymous`, or `none` when nothing was presented.
    pub(super) method: &'static str,
    /// `success` or `failure` (for attempts); `hit` or `miss` (for cache lookups).
    pub(super) result: &'static str,
}

/// The server's metrics registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<DurationLabels, Histogram>,
    inflight: Gauge,
    auth_attempts: Family<AuthLabels, Counter>,
    auth_cache: Family<AuthLabels, Counter>,
    ldap_latency: Histogram,
    audit: AuditMetrics,
}

/// The audit trail's metrics (the log backend's counters are mirrored at scrape time).
struct AuditMetrics {
    written: Counter,
    dropped: Family<PluginLabels, Counter>,
    errors: Family<PluginLabels, Counter>,
    rotations: Counter,
    rejected: Counter,
    latency: Histogram,
}

/// Labels of `apiserver_audit_error_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: &'static str,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// kube-apiserver's latency buckets for `apiserver_request_duration_seconds`.
const BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<DurationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(BUCKETS.iter().copied())
        });
        let inflight = Gauge::default();
        let auth_attempts = Family::<AuthLabels, Counter>::default();
        let auth_cache = Family::<AuthLabels, Counter>::default();
        let ldap_latency = Histogram::new([
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]);
        registry.register(
            "authentication_attempts",
            "Counter of authenticated attempts, by method and result",
            auth_attempts.clone(),
        );
        registry.register(
            "portcullis_authentication_cache_lookups",
            "Authentication verdict cache lookups, by method and hit or miss",
            auth_cache.clone(),
        );
        registry.register(
            "portcullis_ldap_login_duration_seconds",
            "Time to authenticate against the LDAP server (cache misses only)",
            ldap_latency.clone(),
        );
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component",
            durations.clone(),
        );
        registry.register(
            "apiserver_current_inflight_requests",
            "Number of requests currently being served",
            inflight.clone(),
        );
        let audit = AuditMetrics {
            written: Counter::default(),
            dropped: Family::default(),
            errors: Family::default(),
            rotations: Counter::default(),
            rejected: Counter::default(),
            latency: Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
        };
        registry.register(
            "apiserver_audit_event",
            "Counter of audit events written to the audit log or delivered to the audit webhook",
            audit.written.clone(),
        );
        registry.register(
            "portcullis_audit_events_dropped",
            "Audit events dropped because a batch-mode buffer was full, by backend",
            audit.dropped.clone(),
        );
        registry.register(
            "apiserver_audit_error",
            "Counter of audit events that failed to be written, by backend",
            audit.errors.clone(),
        );
        registry.register(
            "portcullis_audit_log_rotations",
            "Audit log file rotations",
            audit.rotations.clone(),
        );
        registry.register(
            "apiserver_audit_requests_rejected",
            "Requests refused because their audit event could not be written",
            audit.rejected.clone(),
        );
        registry.register(
            "portcullis_audit_write_duration_seconds",
            "Time to write and fsync one group commit of audit events",
            audit.latency.clone(),
        );
        Metrics {
            audit,
            registry,
            requests,
            durations,
            inflight,
            auth_attempts,
            auth_cache,
            ldap_latency,
        }
    }
}

impl Metrics {
    /// Counts a request that started; the returned guard counts it finished when dropped.
    pub fn start(&self) -> InflightGuard<'_> {
        self.inflight.inc();
        InflightGuard(&self.inflight)
    }

    /// Records one finished request.
    pub fn observe(&self, labels: RequestLabels, seconds: f64) {
        let d = DurationLabels {
            verb: labels.verb,
            group: labels.group,
            version: labels.version,
            resource: labels.resource,
            subresource: labels.subresource,
            scope: labels.scope,
            component: labels.component,
        };
        self.requests.get_or_create(&labels).inc();
        self.durations.get_or_create(&d).observe(seconds);
    }

    /// Counts one authentication attempt.
    pub fn authentication(&self, method: &'static str, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.auth_attempts
            .get_or_create(&AuthLabels { method, result })
            .inc();
    }

    /// Counts one verdict-cache lookup.
    pub fn auth_cache(&self, method: &'static str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.auth_cache
            .get_or_create(&AuthLabels { method, result })
            .inc();
    }

    /// Records the time one LDAP login took (directory round trips, not cache hits).
    pub fn ldap_login(&self, seconds: f64) {
        self.ldap_latency.observe(seconds);
    }

    /// Mirrors the audit backends' counters (called before each scrape).
    pub fn audit_stats(
        &self,
        log: Option<&portcullis_audit::log::StatsSnapshot>,
        webhook: Option<&portcullis_audit::webhook::StatsSnapshot>,
    ) {
        let a = &self.audit;
        let set = |c: &Counter, v: u64| c.inner().store(v, std::sync::atomic::Ordering::Relaxed);
        let mut written = 0;
        if let Some(stats) = log {
            written += stats.events_written;
            set(&a.rotations, stats.rotations);
            let plugin = PluginLabels { plugin: "log" };
            set(&a.dropped.get_or_create(&plugin), stats.events_dropped);
            set(&a.errors.get_or_create(&plugin), stats.write_errors);
        }
        if let Some(stats) = webhook {
            written += stats.events_sent;
            let plugin = PluginLabels { plugin: "webhook" };
            set(&a.dropped.get_or_create(&plugin), stats.events_dropped);
            set(&a.errors.get_or_create(&plugin), stats.events_failed);
        }
        set(&a.written, written);
    }

    /// Records how long one group commit of audit events took.
    pub fn audit_write(&self, seconds: f64) {
        self.audit.latency.observe(seconds);
    }

    /// Counts a request refused because its audit event could not be written.
    pub fn audit_rejected(&self) {
        self.audit.rejected.inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Decrements the in-flight gauge when a request ends, however it ends.
pub struct InflightGuard<'a>(&'a Gauge);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
