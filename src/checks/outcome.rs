//! What one run of a check produces.
//!
//! A failing target is a result, never an error: every run, whatever happened,
//! ends in an [`Outcome`] with a bounded [`Reason`] (a Prometheus label value, so
//! the set is closed), an optional measured value, a message a person can act on,
//! kind-specific samples and, for `/probe?debug=true`, what the probe saw.

use std::fmt;

use serde::Serialize;

/// Why a check failed, or `Ok`. The set is closed because it is a label value:
/// adding a variant is an interface change (dashboards and alerts match on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Ok,
    AssertionFailed,
    Timeout,
    ConnectionRefused,
    DnsError,
    TlsError,
    PermissionDenied,
    NotFound,
    AuthFailed,
    ProtocolError,
    InternalError,
}

impl Reason {
    /// Every reason, in exposition order.
    pub const ALL: [Reason; 11] = [
        Reason::Ok,
        Reason::AssertionFailed,
        Reason::Timeout,
        Reason::ConnectionRefused,
        Reason::DnsError,
        Reason::TlsError,
        Reason::PermissionDenied,
        Reason::NotFound,
        Reason::AuthFailed,
        Reason::ProtocolError,
        Reason::InternalError,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::AssertionFailed => "assertion_failed",
            Reason::Timeout => "timeout",
            Reason::ConnectionRefused => "connection_refused",
            Reason::DnsError => "dns_error",
            Reason::TlsError => "tls_error",
            Reason::PermissionDenied => "permission_denied",
            Reason::NotFound => "not_found",
            Reason::AuthFailed => "auth_failed",
            Reason::ProtocolError => "protocol_error",
            Reason::InternalError => "internal_error",
        }
    }

    /// Maps an I/O error to the closest reason, so kinds need not repeat the table.
    pub fn from_io(err: &std::io::Error) -> Reason {
        use std::io::ErrorKind as K;
        match err.kind() {
            K::NotFound => Reason::NotFound,
            K::PermissionDenied => Reason::PermissionDenied,
            K::ConnectionRefused => Reason::ConnectionRefused,
            K::TimedOut | K::WouldBlock => Reason::Timeout,
            K::ConnectionReset
            | K::ConnectionAborted
            | K::UnexpectedEof
            | K::BrokenPipe
            | K::InvalidData => Reason::ProtocolError,
            _ => Reason::InternalError,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Type of a kind-specific metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyType {
    Gauge,
    Counter,
}

impl Family {
    /// A gauge family.
    pub const fn gauge(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind: FamilyType::Gauge,
        }
    }

    /// A counter family.
    pub const fn counter(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind: FamilyType::Counter,
        }
    }
}

impl FamilyType {
    /// The type's name in a `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            FamilyType::Gauge => "gauge",
            FamilyType::Counter => "counter",
        }
    }
}

/// A kind-specific metric family, declared once as a `static` by the kind that
/// exports it (for example `healthprobe_http_phase_duration_seconds`).
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: FamilyType,
}

/// One kind-specific series: the family, the labels beyond `pack` and `check`,
/// and the value.
#[derive(Clone, Debug)]
pub struct Sample {
    pub family: &'static Family,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub reason: Reason,
    /// The measured number (a row count, an age in seconds, a ratio), when the
    /// kind measures one; exported as `healthprobe_check_value`.
    pub value: Option<f64>,
    /// One line for a person: what is wrong (or what was seen when all is well).
    pub message: String,
    pub samples: Vec<Sample>,
    /// What the probe saw, step by step; kept only when the run asked for it
    /// (`/probe?debug=true`, `healthprobe check --verbose`).
    pub observations: Vec<String>,
}

impl Outcome {
    /// A passing result.
    pub fn ok(message: impl Into<String>) -> Outcome {
        Outcome::new(Reason::Ok, message)
    }

    /// A failing result. `reason` must not be [`Reason::Ok`].
    pub fn fail(reason: Reason, message: impl Into<String>) -> Outcome {
        debug_assert!(reason != Reason::Ok, "a failure needs a failure reason");
        Outcome::new(reason, message)
    }

    fn new(reason: Reason, message: impl Into<String>) -> Outcome {
        Outcome {
            reason,
            value: None,
            message: message.into(),
            samples: Vec::new(),
            observations: Vec::new(),
        }
    }

    /// Whether the check passed.
    pub fn success(&self) -> bool {
        self.reason == Reason::Ok
    }

    /// Sets the measured value.
    pub fn with_value(mut self, value: f64) -> Outcome {
        self.value = Some(value);
        self
    }

    /// Adds kind-specific samples.
    pub fn with_samples(mut self, samples: Vec<Sample>) -> Outcome {
        self.samples.extend(samples);
        self
    }

    /// Adds observations (what the probe saw).
    pub fn with_observations(mut self, observations: Vec<String>) -> Outcome {
        self.observations.extend(observations);
        self
    }
}
