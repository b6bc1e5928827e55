//! The `full-disk` checker: a worker whose disk is full refuses writes with a clear
//! error and takes them again once the disk has room.
//!
//! The full-disk nemesis fills one worker's data dir (its own tmpfs) until nothing
//! is left, then writes a chunk straight to that worker (`probe`, `disk-full`): the
//! worker must refuse it, with an error that names the disk (`write-acknowledged-on-full-disk`
//! if it acknowledged a chunk it cannot have stored; `unclear-disk-error` if the
//! refusal does not say why). At heal the file is removed and the nemesis writes
//! again until the worker accepts (`disk-healed`, up to 30 s): a worker that stays
//! paused is `still-paused-after-heal`. That nothing acknowledged was lost meanwhile
//! is the `data` checker's business.

use std::collections::BTreeMap;

use crate::history::{Op, OpFn};

use super::data::bump;
use super::paired::Outcome;
use super::plane::{self, PlaneOp};
use super::verdict::{Anomaly, Verdict};

/// The checker's name in its verdict.
pub const CHECKER: &str = "full-disk";

/// Words one of which a clear full-disk error contains.
const DISK_WORDS: [&str; 3] = ["disk", "space", "enospc"];

fn anomaly(kind: &str, op: &PlaneOp<'_>, explanation: String) -> Anomaly {
    Anomaly {
        kind: kind.to_string(),
        key: Some(op.key().to_string()),
        explanation,
        ops: op.indexes(),
    }
}

/// Checks the probe writes of the full-disk nemesis (see the module documentation).
pub fn check(history: &[Op]) -> Verdict {
    let (ops, malformed) = plane::pair(history, &[OpFn::Probe]);
    let mut anomalies = Vec::new();
    let mut stats: BTreeMap<String, u64> = BTreeMap::new();
    let faults = history
        .iter()
        .filter(|op| op.f == OpFn::Nemesis && op.key.as_deref() == Some("full-disk"))
        .filter(|op| {
            op.extra
                .nemesis
                .as_ref()
                .is_some_and(|note| note.phase == crate::history::NemesisPhase::Start)
        })
        .count();
    stats.insert("disks_filled".to_string(), faults as u64);
    for op in &ops {
        let error = op.completion.and_then(|c| c.error.clone()).unwrap_or_default();
        match (op.invoke.value.as_deref(), op.outcome()) {
            (Some("disk-full"), Outcome::Ok) => anomalies.push(anomaly(
                "write-acknowledged-on-full-disk",
                op,
                format!(
                    "{}: the worker acknowledged a chunk as durable while its disk had no room left for it",
                    op.describe()
                ),
            )),
            (Some("disk-full"), _) => {
                bump(&mut stats, "refused_on_full_disk");
                let lower = error.to_lowercase();
                if DISK_WORDS.iter().any(|word| lower.contains(word)) {
                    bump(&mut stats, "refused_clearly");
                } else {
                    anomalies.push(anomaly(
                        "unclear-disk-error",
                        op,
                        format!(
                            "{}: the worker refused a write on a full disk without saying so: {error:?}",
                            op.describe()
                        ),
                    ));
                }
            }
            (Some("disk-healed"), Outcome::Ok) => bump(&mut stats, "accepted_after_heal"),
            (Some("disk-healed"), _) => anomalies.push(anomaly(
                "still-paused-after-heal",
                op,
                format!(
                    "{}: the worker's disk was emptied, but it still refused writes 30 s later: {error}",
                    op.describe()
                ),
            )),
            _ => {}
        }
    }
    super::verdict(CHECKER, anomalies, Vec::new(), &malformed, stats)
}
