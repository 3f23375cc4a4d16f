//! `airlock serve`'s Prometheus metrics: jobs by tool and outcome, job and
//! queue-wait latency, budget exhaustions by kind, verb calls by verb and
//! decision (counted from the audit records), slots in use, and requests
//! refused by authentication. Served at `/metrics` in the text format.

use std::sync::Arc;
use std::time::Duration;

use airlock_core::{AuditRecord, AuditSink, Decision};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::JobObserver;
use crate::job::JobError;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    tool: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabel {
    tool: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbLabels {
    verb: String,
    decision: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    toolkit: String,
    reason: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds, from 100 µs to about 52 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

/// Every metric `airlock serve` exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    jobs: Family<JobLabels, Counter>,
    job_seconds: HistogramFamily<ToolLabel>,
    queue_seconds: Histogram,
    budget: Family<KindLabel, Counter>,
    verbs: Family<VerbLabels, Counter>,
    auth_refused: Family<AuthLabels, Counter>,
    slots_in_use: Gauge,
    slots: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("airlock");
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs",
            "Jobs that ended, by tool and outcome (ok, budget, trap, tool-error, invalid-arguments, busy, cancelled, internal)",
            jobs.clone(),
        );
        let job_seconds: HistogramFamily<ToolLabel> = Family::new_with_constructor(latency);
        registry.register(
            "job_duration_seconds",
            "How long jobs ran once they had a slot, by tool",
            job_seconds.clone(),
        );
        let queue_seconds = latency();
        registry.register(
            "queue_wait_seconds",
            "How long jobs waited for a free job slot",
            queue_seconds.clone(),
        );
        let budget = Family::<KindLabel, Counter>::default();
        registry.register(
            "budget_exhausted",
            "Jobs ended by a budget, by kind (fuel, deadline, memory, output, hostcall-data, resources)",
            budget.clone(),
        );
        let verbs = Family::<VerbLabels, Counter>::default();
        registry.register(
            "verb_calls",
            "Verb calls, by verb and decision (allow, deny)",
            verbs.clone(),
        );
        let auth_refused = Family::<AuthLabels, Counter>::default();
        registry.register(
            "auth_refused",
            "Requests refused by authentication or authorization, by toolkit and reason",
            auth_refused.clone(),
        );
        let slots_in_use = Gauge::default();
        registry.register(
            "job_slots_in_use",
            "Job slots held by running jobs",
            slots_in_use.clone(),
        );
        let slots = Gauge::default();
        registry.register("job_slots", "Job slots of the host", slots.clone());
        Self {
            registry,
            jobs,
            job_seconds,
            queue_seconds,
            budget,
            verbs,
            auth_refused,
            slots_in_use,
            slots,
        }
    }
}

impl Metrics {
    /// A refusal of a request to `toolkit` for `reason`.
    pub fn auth_refused(&self, toolkit: &str, reason: &str) {
        self.auth_refused
            .get_or_create(&AuthLabels {
                toolkit: toolkit.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// The text exposition, with the slot gauges read now.
    pub fn render(&self, in_use: u32, slots: u32) -> String {
        self.slots_in_use.set(i64::from(in_use));
        self.slots.set(i64::from(slots));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl JobObserver for Metrics {
    fn job_done(
        &self,
        tool: &str,
        outcome: Result<(), &JobError>,
        waited: Duration,
        ran: Duration,
    ) {
        let label = match outcome {
            Ok(()) => "ok",
            Err(e) => e.kind(),
        };
        if let Err(JobError::Budget { which, .. }) = outcome {
            self.budget
                .get_or_create(&KindLabel {
                    kind: which.name().into(),
                })
                .inc();
        }
        self.jobs
            .get_or_create(&JobLabels {
                tool: tool.into(),
                outcome: label.into(),
            })
            .inc();
        self.job_seconds
            .get_or_create(&ToolLabel { tool: tool.into() })
            .observe(ran.as_secs_f64());
        self.queue_seconds.observe(waited.as_secs_f64());
    }
}

/// The host's audit sink with every verb call counted on the way.
pub struct Counted {
    /// Where the records go.
    pub inner: Arc<dyn AuditSink>,
    /// Where they are counted.
    pub metrics: Arc<Metrics>,
}

impl AuditSink for Counted {
    fn record(&self, record: AuditRecord) {
        // A cancelled job's own record is not a verb call.
        if record.verb == "job" {
            if self.inner.enabled() {
                self.inner.record(record);
            }
            return;
        }
        let decision = match record.decision {
            Decision::Allow => "allow",
            Decision::Deny(_) => "deny",
        };
        self.metrics
            .verbs
            .get_or_create(&VerbLabels {
                verb: record.verb.into(),
                decision: decision.into(),
            })
            .inc();
        if self.inner.enabled() {
            self.inner.record(record);
        }
    }

    fn close(&self) {
        self.inner.close();
    }
}
