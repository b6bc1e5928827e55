//! Deliberate bugs that the fault-injection suite (`cairn-jepsen`) must catch.
//!
//! A suite that has never caught a bug proves nothing; these switches break exactly
//! the two guarantees the catalog's correctness rests on, so a run with one of them
//! on must report an anomaly. They exist only in debug builds: `cairn scheduler`
//! refuses `--unsafe-inject-bug` when built with optimisations, and a replica with a
//! bug on logs an error line at start.

use std::str::FromStr;

/// Which deliberate bugs a replica runs with (none by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectedBugs {
    /// Serve get/info/list from the local applied state as soon as this replica
    /// believes it leads, without the ReadIndex round that confirms it still does:
    /// a deposed or partitioned leader answers stale reads.
    pub local_reads: bool,
    /// Acknowledge a publish or unpublish once the leader has checked it against its
    /// local state and appended it to its own log, before a quorum has committed it:
    /// without faults every write still commits, but one acknowledged by a leader
    /// that then crashes or is cut off is lost.
    pub ack_before_commit: bool,
}

/// The names accepted by `--unsafe-inject-bug`.
pub const BUG_NAMES: [&str; 2] = ["local-reads", "ack-before-commit"];

impl InjectedBugs {
    /// Whether any bug is on.
    pub fn any(&self) -> bool {
        self.local_reads || self.ack_before_commit
    }

    /// Turns on the bug called `name` (one of [`BUG_NAMES`]).
    pub fn enable(&mut self, name: &str) -> Result<(), String> {
        match name {
            "local-reads" => self.local_reads = true,
            "ack-before-commit" => self.ack_before_commit = true,
            other => {
                return Err(format!(
                    "unknown bug `{other}`; the injectable bugs are {}",
                    BUG_NAMES.join(", ")
                ))
            }
        }
        Ok(())
    }
}

impl FromStr for InjectedBugs {
    type Err = String;

    /// Parses a comma-separated list of bug names.
    fn from_str(text: &str) -> Result<InjectedBugs, String> {
        let mut bugs = InjectedBugs::default();
        for name in text.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            bugs.enable(name)?;
        }
        Ok(bugs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bug_lists_and_refuses_unknown_names() {
        let bugs: InjectedBugs = "local-reads, ack-before-commit".parse().unwrap_or_default();
        assert!(bugs.local_reads && bugs.ack_before_commit);
        assert!(!InjectedBugs::default().any());
        let error = "stale".parse::<InjectedBugs>().err().unwrap_or_default();
        assert!(error.contains("local-reads, ack-before-commit"), "{error}");
    }
}
