//! What a checker concludes.

use serde::{Deserialize, Serialize};

/// A checker's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    /// No anomaly.
    Valid,
    /// At least one anomaly.
    Invalid,
    /// The checker could not decide (e.g. the search exceeded its budget).
    Unknown,
}

/// One anomaly, with the operations that show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// A short kind: `non-linearizable`, `stale-read`, `lost-write`, `duplicate`,
    /// `unexpected-value`, `phantom` ...
    pub kind: String,
    /// The dataset name concerned, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A sentence a person can act on.
    pub explanation: String,
    /// History indexes (`Op::index`) of the operations involved.
    pub ops: Vec<u64>,
}

/// The result of one checker over one history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The checker's name: `linearizable`, `stale-read`, `durable`.
    pub checker: String,
    /// Valid, invalid or unknown.
    pub validity: Validity,
    /// What was found (empty when valid).
    pub anomalies: Vec<Anomaly>,
    /// Counts worth printing (`keys`, `ops`, `acknowledged` ...).
    pub stats: std::collections::BTreeMap<String, u64>,
}
