//! The worker's task bookkeeping: which assignments wait, which run, and which
//! leader term it obeys. Events in, instructions out; no I/O.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cairn_proto::v1 as pb;

/// What the executor must do.
#[derive(Debug)]
pub enum Instruction {
    /// Run this assignment; `cancelled` is raised if the leader cancels it meanwhile.
    Start {
        /// The assignment.
        assignment: pb::Assignment,
        /// Raised on cancel; long operations check it.
        cancelled: Arc<AtomicBool>,
    },
    /// Tell the leader this queued assignment was dropped, as it asked.
    ReportCancelled(String),
    /// Delete these results from the store.
    Release(Vec<String>),
}

/// One queued assignment.
#[derive(Debug)]
struct Queued {
    assignment: pb::Assignment,
}

/// The worker's task bookkeeping.
#[derive(Debug)]
pub struct TaskQueue {
    /// How many tasks are started at once (fetching inputs, queued for a thread or
    /// running).
    nthreads: usize,
    /// The highest leader term seen: messages from older terms are ignored (fencing).
    term: u64,
    /// Waiting assignments by (priority, arrival), lowest first.
    queued: BTreeMap<(u64, u64), Queued>,
    /// Where each queued key sits in `queued`.
    queued_keys: HashMap<String, (u64, u64)>,
    /// Running tasks and their cancel flags.
    running: HashMap<String, Arc<AtomicBool>>,
    /// Assignments of a key that runs with its cancel flag raised: the leader
    /// cancelled the run (say its input's holder died) and assigned the key again
    /// (the input is recomputed). Queued when the cancelled run ends; dropping them
    /// would leave the task assigned here and never run.
    deferred: HashMap<String, pb::Assignment>,
    /// Arrival counter: equal priorities run in arrival order.
    arrivals: u64,
}

impl TaskQueue {
    /// An empty queue starting at most `nthreads` tasks at once.
    pub fn new(nthreads: usize) -> TaskQueue {
        TaskQueue {
            nthreads: nthreads.max(1),
            term: 0,
            queued: BTreeMap::new(),
            queued_keys: HashMap::new(),
            running: HashMap::new(),
            deferred: HashMap::new(),
            arrivals: 0,
        }
    }

    /// The highest term seen.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// How many tasks wait and run.
    pub fn load(&self) -> (usize, usize) {
        (self.queued.len(), self.running.len())
    }

    /// A message from the leader. A message of an older term than one seen is
    /// ignored whole; a newer term drops every queued assignment of the old reign
    /// (the new leader assigns again what it wants; running tasks finish and report).
    pub fn receive(&mut self, message: pb::SchedulerTaskMessage) -> Vec<Instruction> {
        if message.term < self.term {
            tracing::warn!(
                message_term = message.term,
                term = self.term,
                "ignoring a task message from an old leader"
            );
            return Vec::new();
        }
        if message.term > self.term {
            if !self.queued.is_empty() {
                tracing::info!(
                    dropped = self.queued.len(),
                    term = message.term,
                    "new leader: dropping assignments of the old term"
                );
            }
            self.term = message.term;
            self.queued.clear();
            self.queued_keys.clear();
            self.deferred.clear();
        }
        let mut instructions = Vec::new();
        for key in message.cancel {
            if let Some(slot) = self.queued_keys.remove(&key) {
                self.queued.remove(&slot);
                instructions.push(Instruction::ReportCancelled(key));
            } else if self.deferred.remove(&key).is_some() {
                // (Its cancelled run reports for itself when it ends.)
                instructions.push(Instruction::ReportCancelled(key));
            } else if let Some(flag) = self.running.get(&key) {
                flag.store(true, Ordering::Relaxed);
            }
        }
        for assignment in message.assign {
            let Some(key) = assignment.task.as_ref().map(|task| task.key.clone()) else {
                continue;
            };
            if let Some(flag) = self.running.get(&key) {
                if flag.load(Ordering::Relaxed) {
                    self.deferred.insert(key, assignment);
                }
                continue;
            }
            if self.queued_keys.contains_key(&key) {
                continue;
            }
            self.enqueue(key, assignment);
        }
        if !message.release.is_empty() {
            instructions.push(Instruction::Release(message.release));
        }
        self.fill(&mut instructions);
        instructions
    }

    /// The worker opens a task stream (to a new leader, or the same one again): the
    /// queued assignments are dropped (the leader gives back what it still wants,
    /// from the worker's report), and the started ones are returned: they finish and
    /// report on the new stream.
    pub fn reopen(&mut self) -> Vec<String> {
        if !self.queued.is_empty() {
            tracing::info!(
                dropped = self.queued.len(),
                "task stream reopened: dropping queued assignments"
            );
        }
        self.queued.clear();
        self.queued_keys.clear();
        self.deferred.clear();
        let mut running: Vec<String> = self.running.keys().cloned().collect();
        running.sort();
        running
    }

    /// A running task ended (finished, failed or cancelled): its thread is free.
    pub fn ended(&mut self, key: &str) -> Vec<Instruction> {
        self.running.remove(key);
        if let Some(assignment) = self.deferred.remove(key) {
            self.enqueue(key.to_string(), assignment);
        }
        let mut instructions = Vec::new();
        self.fill(&mut instructions);
        instructions
    }

    /// Queues an assignment by priority, then arrival.
    fn enqueue(&mut self, key: String, assignment: pb::Assignment) {
        let slot = (assignment.priority, self.arrivals);
        self.arrivals += 1;
        self.queued_keys.insert(key, slot);
        self.queued.insert(slot, Queued { assignment });
    }

    /// Starts queued tasks while threads are free.
    fn fill(&mut self, instructions: &mut Vec<Instruction>) {
        while self.running.len() < self.nthreads {
            let Some((_, queued)) = self.queued.pop_first() else {
                break;
            };
            let key = queued
                .assignment
                .task
                .as_ref()
                .map(|task| task.key.clone())
                .unwrap_or_default();
            self.queued_keys.remove(&key);
            let cancelled = Arc::new(AtomicBool::new(false));
            self.running.insert(key, cancelled.clone());
            instructions.push(Instruction::Start {
                assignment: queued.assignment,
                cancelled,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(key: &str, priority: u64) -> pb::Assignment {
        pb::Assignment {
            task: Some(pb::TaskSpec {
                key: key.to_string(),
                op: "inc".to_string(),
                args: Vec::new(),
            }),
            inputs: Vec::new(),
            priority,
        }
    }

    fn message(term: u64, assign: Vec<pb::Assignment>, cancel: &[&str]) -> pb::SchedulerTaskMessage {
        pb::SchedulerTaskMessage {
            term,
            assign,
            cancel: cancel.iter().map(|key| key.to_string()).collect(),
            release: Vec::new(),
        }
    }

    fn started(instructions: &[Instruction]) -> Vec<String> {
        instructions
            .iter()
            .filter_map(|instruction| match instruction {
                Instruction::Start { assignment, .. } => assignment.task.as_ref().map(|task| task.key.clone()),
                _ => None,
            })
            .collect()
    }

    /// At most `nthreads` run; the rest start by priority as threads free up.
    #[test]
    fn runs_by_priority_within_the_thread_limit() {
        let mut queue = TaskQueue::new(2);
        let out = queue.receive(message(
            1,
            vec![assignment("c", 3), assignment("a", 1), assignment("b", 2)],
            &[],
        ));
        assert_eq!(started(&out), ["a", "b"]);
        assert_eq!(queue.load(), (1, 2));
        assert_eq!(started(&queue.ended("a")), ["c"]);
    }

    /// An older term is ignored whole; a newer one drops queued work of the old one.
    #[test]
    fn fencing_by_term() {
        let mut queue = TaskQueue::new(1);
        queue.receive(message(5, vec![assignment("a", 1), assignment("b", 2)], &[]));
        assert!(queue.receive(message(4, vec![assignment("x", 0)], &[])).is_empty());
        assert_eq!(queue.load(), (1, 1));
        let out = queue.receive(message(6, vec![assignment("c", 9)], &[]));
        assert!(started(&out).is_empty(), "the one thread still runs a");
        assert_eq!(queue.load(), (1, 1), "b of term 5 was dropped; c waits");
        assert_eq!(started(&queue.ended("a")), ["c"]);
    }

    /// Cancelling a queued task reports it; a running one gets its flag raised.
    #[test]
    fn cancel_queued_and_running() {
        let mut queue = TaskQueue::new(1);
        let out = queue.receive(message(1, vec![assignment("a", 1), assignment("b", 2)], &[]));
        let flag = match &out[0] {
            Instruction::Start { cancelled, .. } => cancelled.clone(),
            other => panic!("expected a start, got {other:?}"),
        };
        let out = queue.receive(message(1, Vec::new(), &["b", "a"]));
        assert!(matches!(&out[..], [Instruction::ReportCancelled(key)] if key == "b"));
        assert!(flag.load(Ordering::Relaxed));
    }

    /// Reopening the stream drops what waits and names what was started.
    #[test]
    fn reopen_drops_queued_and_names_running() {
        let mut queue = TaskQueue::new(1);
        queue.receive(message(3, vec![assignment("a", 1), assignment("b", 2)], &[]));
        assert_eq!(queue.reopen(), ["a"]);
        assert_eq!(queue.load(), (0, 1), "b was dropped");
        assert!(started(&queue.ended("a")).is_empty());
        assert_eq!(queue.term(), 3, "the term seen stays");
    }

    /// A key assigned again while its cancelled run still ends (the leader cancelled
    /// it when its input's holder died, then assigned it again once the input was
    /// recomputed) runs again after that run ends; a cancel before then drops it.
    /// Ignoring it left the task assigned here forever (the graph hung).
    #[test]
    fn reassigned_while_a_cancelled_run_ends() {
        let mut queue = TaskQueue::new(2);
        let out = queue.receive(message(1, vec![assignment("a", 1)], &[]));
        assert_eq!(started(&out), ["a"]);
        queue.receive(message(1, Vec::new(), &["a"]));
        assert!(started(&queue.receive(message(1, vec![assignment("a", 1)], &[]))).is_empty());
        assert_eq!(started(&queue.ended("a")), ["a"], "the second assignment runs");
        queue.receive(message(1, Vec::new(), &["a"]));
        queue.receive(message(1, vec![assignment("a", 1)], &[]));
        let out = queue.receive(message(1, Vec::new(), &["a"]));
        assert!(matches!(&out[..], [Instruction::ReportCancelled(key)] if key == "a"));
        assert!(started(&queue.ended("a")).is_empty(), "cancelled again before it ran");
    }

    /// The same key assigned twice runs once.
    #[test]
    fn duplicate_assignments_run_once() {
        let mut queue = TaskQueue::new(4);
        let out = queue.receive(message(1, vec![assignment("a", 1), assignment("a", 1)], &[]));
        assert_eq!(started(&out), ["a"]);
        assert!(started(&queue.receive(message(1, vec![assignment("a", 1)], &[]))).is_empty());
    }
}
