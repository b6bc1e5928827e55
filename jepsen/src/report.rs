//! The HTML report of a run.
//!
//! [`render`] turns a history, the nemesis timeline and the checkers' verdicts into one
//! self-contained HTML page (inline CSS and hand-made SVG, no JavaScript, no external
//! resources):
//!
//! 1. a header with the title, a PASS / FAIL / UNKNOWN banner and the facts of the run;
//! 2. the verdicts: per checker its validity, stats and anomalies (the operations involved
//!    can be unfolded);
//! 3. a latency scatter plot (log scale), one colour per operation type, one marker per
//!    outcome, with the nemesis intervals shaded;
//! 4. the throughput (completions per second, ok / fail / info);
//! 5. the availability (fraction of completions the cluster answered — ok, or a
//!    write it refused — per bucket) and its overall figure;
//! 6. a per-operation summary ([`summarize`]) and the most frequent errors;
//! 7. the nemesis timeline.
//!
//! Operations are paired by `process` (each process is sequential): the latency of an
//! operation is its completion time minus its invoke time. An invoke that is never
//! completed counts as `info`, completed at the end of the history. A completion without
//! an invoke is ignored.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::check::verdict::{Anomaly, Validity, Verdict};
use crate::history::{NemesisEvent, NemesisPhase, Op, OpFn, OpType};

/// Above this many operations, the latency chart keeps every fail and info point but
/// only every n-th ok point.
const MAX_POINTS: usize = 20_000;
/// Anomalies shown per checker.
const MAX_ANOMALIES: usize = 50;
/// Operation indexes (and unfolded operations) shown per anomaly.
const MAX_OP_INDEXES: usize = 20;
/// Distinct error messages shown.
const MAX_ERRORS: usize = 20;
/// Names shown for a `list` result in an unfolded operation.
const MAX_NAMES: usize = 20;
/// Throughput and availability buckets at most (the bucket is 1 s unless the run is longer).
const MAX_BUCKETS: f64 = 3000.0;

/// Every client operation type, in the order of the report (the nemesis' and the
/// status sampler's entries are not client operations and are left out of the
/// charts and tables).
const ALL_FNS: [OpFn; 9] = [
    OpFn::Publish,
    OpFn::Override,
    OpFn::Unpublish,
    OpFn::Get,
    OpFn::List,
    OpFn::Put,
    OpFn::Read,
    OpFn::Submit,
    OpFn::Gather,
];
/// Fault types with a colour of their own.
const KNOWN_FAULTS: [&str; 10] = [
    "kill",
    "pause",
    "partition",
    "netem",
    "membership",
    "kill-worker",
    "pause-worker",
    "partition-worker",
    "full-disk",
    "restart-all",
];

/// Chart geometry (px).
const W: f64 = 900.0;
const H: f64 = 260.0;
const ML: f64 = 66.0;
const MR: f64 = 16.0;
const MT: f64 = 12.0;
const MB: f64 = 40.0;

const OK_COLOUR: &str = "#2b8a3e";
const FAIL_COLOUR: &str = "#c92a2a";
const INFO_COLOUR: &str = "#e67700";

/// What the report's header shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportMeta {
    /// The page title, e.g. `Cairn Jepsen: catalog / kill,pause`.
    pub title: String,
    /// Facts about the run, shown as a table in this order, e.g. `("workload", "catalog")`,
    /// `("nemesis", "kill,pause")`, `("nodes", "3")`, `("seed", "42")`.
    pub facts: Vec<(String, String)>,
}

/// Per-operation-type summary of a history (also useful for the console).
#[derive(Debug, Clone, PartialEq)]
pub struct OpSummary {
    /// The operation type.
    pub f: OpFn,
    /// Operations completed `ok`.
    pub ok: u64,
    /// Operations completed `fail`.
    pub fail: u64,
    /// Operations completed `info`, including invokes never completed.
    pub info: u64,
    /// Median latency (ms) of the operations completed `ok` or `fail` (0 if none).
    pub p50_ms: f64,
    /// 99th percentile latency (ms, nearest rank) of the operations completed `ok` or `fail`.
    pub p99_ms: f64,
    /// Maximum latency (ms) of the operations completed `ok` or `fail`.
    pub max_ms: f64,
}

/// Summarizes `history` per operation type, in the order publish, override, unpublish,
/// get, list; a type that never occurs is left out. Latency percentiles are over the
/// operations that definitely completed (`ok` or `fail`): an `info` latency is only a
/// timeout.
pub fn summarize(history: &[Op]) -> Vec<OpSummary> {
    summarize_completed(&complete(history))
}

/// The fraction of completions the cluster answered (ok, or a write it refused);
/// `None` without completions.
pub fn availability(history: &[Op]) -> Option<f64> {
    let mut all = Tally::default();
    complete(history).iter().for_each(|c| all.add(c));
    all.availability()
}

/// The longest stretch without an answered operation before the final phase, as
/// (start, length) in seconds since the run began: how long the worst fault kept
/// every client waiting. `None` with fewer than two answered operations.
pub fn longest_unavailability(history: &[Op]) -> Option<(f64, f64)> {
    longest_gap(history, &complete(history))
}

/// [`longest_unavailability`] over the already paired operations of `history`.
fn longest_gap(history: &[Op], done: &[Completed]) -> Option<(f64, f64)> {
    let mut times: Vec<u64> = done.iter().filter(|c| c.answered()).map(|c| c.complete_ns).collect();
    let final_start = history.iter().filter(|op| op.is_final).map(|op| op.time_ns).min();
    if let Some(final_start) = final_start {
        times.retain(|time| *time < final_start);
    }
    times.sort_unstable();
    times
        .windows(2)
        .map(|pair| (pair[0], pair[1].saturating_sub(pair[0])))
        .max_by_key(|(_, gap)| *gap)
        .map(|(start, gap)| (start as f64 / 1e9, gap as f64 / 1e9))
}

/// Renders the report as a complete HTML page.
pub fn render(meta: &ReportMeta, history: &[Op], timeline: &[NemesisEvent], verdicts: &[Verdict]) -> String {
    let done = complete(history);
    let end_ns = history
        .iter()
        .map(|op| op.time_ns)
        .chain(timeline.iter().map(|event| event.time_ns))
        .max()
        .unwrap_or(0);
    let frame = Frame::new(end_ns);
    let intervals = intervals(timeline, end_ns);
    let buckets = Buckets::new(&frame, &done);
    let summaries = summarize_completed(&done);
    let mut all = Tally::default();
    done.iter().for_each(|c| all.add(c));
    let completions = all.ok + all.fail + all.info;
    let availability = all.availability();

    let (word, class) = overall(verdicts);
    let title = esc(&meta.title);
    let mut page = String::with_capacity(64 * 1024 + done.len() * 48);
    page.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
    ));

    // 1. Header.
    page.push_str(&format!(
        "<header>\n<h1>{title}</h1>\n<div class=\"banner {class}\">{word}</div>\n"
    ));
    page.push_str(&format!("<p class=\"sub\">{}</p>\n", verdict_line(verdicts)));
    page.push_str(&format!(
        "<p class=\"sub\">{} history events, {} operations over {} s; overall availability {}; {}.</p>\n",
        history.len(),
        done.len(),
        secs(end_ns),
        percent(availability),
        longest_gap(history, &done).map_or_else(
            || "no unavailability window measured".to_string(),
            |(start, length)| format!("longest stretch with no answer {length:.2} s (from {start:.1} s)")
        )
    ));
    if !meta.facts.is_empty() {
        page.push_str("<table class=\"facts\">\n");
        for (name, value) in &meta.facts {
            page.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>\n", esc(name), esc(value)));
        }
        page.push_str("</table>\n");
    }
    page.push_str(
        "<nav><a href=\"#verdicts\">verdicts</a> · <a href=\"#latency\">latency</a> · \
         <a href=\"#throughput\">throughput</a> · <a href=\"#availability\">availability</a> · \
         <a href=\"#operations\">operations</a> · <a href=\"#nemesis\">nemesis</a></nav>\n</header>\n",
    );

    // 2. Verdicts.
    page.push_str("<section id=\"verdicts\">\n<h2>Verdicts</h2>\n");
    page.push_str(&verdicts_html(verdicts, history));
    page.push_str("</section>\n");

    // 3. Latency.
    page.push_str("<section id=\"latency\">\n<h2>Latency</h2>\n");
    page.push_str(&latency_chart(&frame, &done, &intervals));
    page.push_str(&op_legend());
    page.push_str(&fault_legend(&intervals));
    page.push_str("</section>\n");

    // 4. Throughput.
    page.push_str("<section id=\"throughput\">\n<h2>Throughput</h2>\n");
    page.push_str(&throughput_chart(&frame, &buckets, &intervals));
    page.push_str(&format!(
        "<div class=\"legend\">{}{}{}</div>\n",
        line_key(OK_COLOUR, "ok"),
        line_key(FAIL_COLOUR, "fail"),
        line_key(INFO_COLOUR, "info")
    ));
    page.push_str(&format!(
        "<p class=\"note\">Completions per second, by completion time, in {} s buckets.</p>\n",
        num(buckets.width_s, 0)
    ));
    page.push_str(&fault_legend(&intervals));
    page.push_str("</section>\n");

    // 5. Availability.
    page.push_str("<section id=\"availability\">\n<h2>Availability</h2>\n");
    page.push_str(&format!(
        "<p>Overall availability: <strong>{}</strong> ({} of {} completions answered by the cluster: ok, or a \
         write it refused such as already-exists; timeouts and failed reads are unavailability).</p>\n",
        percent(availability),
        all.answered,
        completions
    ));
    page.push_str(&availability_chart(&frame, &buckets, &intervals));
    page.push_str(&format!(
        "<p class=\"note\">Fraction of completions the cluster answered, per {} s bucket (gaps: no completion).</p>\n",
        num(buckets.width_s, 0)
    ));
    page.push_str(&fault_legend(&intervals));
    page.push_str("</section>\n");

    // 6. Operations.
    page.push_str("<section id=\"operations\">\n<h2>Operations</h2>\n");
    page.push_str(&summary_table(&summaries, &mut all));
    page.push_str(&errors_table(history));
    page.push_str("</section>\n");

    // 7. Nemesis timeline.
    page.push_str("<section id=\"nemesis\">\n<h2>Nemesis timeline</h2>\n");
    page.push_str(&timeline_table(timeline));
    page.push_str("</section>\n");

    page.push_str("<footer>Generated by cairn-jepsen.</footer>\n</body>\n</html>\n");
    page
}

/// Renders the report and writes it to `dir/report.html` (creating `dir` if needed);
/// returns the file's path.
pub fn write(
    dir: &Path,
    meta: &ReportMeta,
    history: &[Op],
    timeline: &[NemesisEvent],
    verdicts: &[Verdict],
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("report.html");
    let page = render(meta, history, timeline, verdicts);
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

// ---------------------------------------------------------------------------------------
// Pairing and statistics.

/// An operation with its outcome.
#[derive(Debug, Clone, Copy)]
struct Completed {
    f: OpFn,
    /// `Ok`, `Fail` or `Info`.
    kind: OpType,
    invoke_ns: u64,
    complete_ns: u64,
}

impl Completed {
    /// Whether the cluster answered: an ok, or a write it refused (already exists,
    /// not found). A timeout or a failed read is unavailability.
    fn answered(&self) -> bool {
        self.kind == OpType::Ok || (self.kind == OpType::Fail && self.f.is_write())
    }

    fn latency_ns(&self) -> u64 {
        self.complete_ns.saturating_sub(self.invoke_ns)
    }

    fn latency_ms(&self) -> f64 {
        self.latency_ns() as f64 / 1e6
    }
}

/// Pairs every invoke with the next completion of its process. Invokes never completed
/// (or followed by another invoke of the same process) become `info` at the end of the
/// history.
fn complete(history: &[Op]) -> Vec<Completed> {
    let end_ns = history.iter().map(|op| op.time_ns).max().unwrap_or(0);
    let mut pending: HashMap<u64, &Op> = HashMap::new();
    let mut dangling: Vec<&Op> = Vec::new();
    let mut done = Vec::with_capacity(history.len() / 2 + 1);
    for op in history.iter().filter(|op| op.f.is_client_op()) {
        match op.kind {
            OpType::Invoke => {
                if let Some(previous) = pending.insert(op.process, op) {
                    dangling.push(previous);
                }
            }
            kind => {
                if let Some(invoke) = pending.remove(&op.process) {
                    done.push(Completed {
                        f: invoke.f,
                        kind,
                        invoke_ns: invoke.time_ns,
                        complete_ns: op.time_ns.max(invoke.time_ns),
                    });
                }
            }
        }
    }
    dangling.extend(pending.into_values());
    dangling.sort_by_key(|op| (op.time_ns, op.index));
    done.extend(dangling.into_iter().map(|invoke| Completed {
        f: invoke.f,
        kind: OpType::Info,
        invoke_ns: invoke.time_ns,
        complete_ns: end_ns.max(invoke.time_ns),
    }));
    done
}

/// Counts and latencies of a set of operations.
#[derive(Debug, Default)]
struct Tally {
    answered: u64,
    ok: u64,
    fail: u64,
    info: u64,
    /// Latencies of the ok and fail operations.
    latencies_ns: Vec<u64>,
}

impl Tally {
    fn add(&mut self, c: &Completed) {
        if c.answered() {
            self.answered += 1;
        }
        match c.kind {
            OpType::Ok => {
                self.ok += 1;
                self.latencies_ns.push(c.latency_ns());
            }
            OpType::Fail => {
                self.fail += 1;
                self.latencies_ns.push(c.latency_ns());
            }
            _ => self.info += 1,
        }
    }

    /// The fraction of completions the cluster answered; `None` without completions.
    fn availability(&self) -> Option<f64> {
        let completions = self.ok + self.fail + self.info;
        (completions > 0).then(|| self.answered as f64 / completions as f64)
    }

    /// p50, p99 and max latency in ms (zeros without latencies).
    fn percentiles(&mut self) -> (f64, f64, f64) {
        self.latencies_ns.sort_unstable();
        let sorted = &self.latencies_ns;
        let max = sorted.last().map_or(0.0, |&ns| ns as f64 / 1e6);
        (percentile(sorted, 50.0), percentile(sorted, 99.0), max)
    }
}

/// Nearest-rank percentile of sorted latencies, in ms (0 when empty).
fn percentile(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let n = sorted_ns.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    let rank = rank.clamp(1, n);
    sorted_ns.get(rank - 1).map_or(0.0, |&ns| ns as f64 / 1e6)
}

fn summarize_completed(done: &[Completed]) -> Vec<OpSummary> {
    let mut tallies: BTreeMap<OpFn, Tally> = BTreeMap::new();
    for c in done {
        tallies.entry(c.f).or_default().add(c);
    }
    ALL_FNS
        .iter()
        .filter_map(|f| {
            let mut tally = tallies.remove(f)?;
            let (p50_ms, p99_ms, max_ms) = tally.percentiles();
            Some(OpSummary {
                f: *f,
                ok: tally.ok,
                fail: tally.fail,
                info: tally.info,
                p50_ms,
                p99_ms,
                max_ms,
            })
        })
        .collect()
}

/// The banner: FAIL if any checker found an anomaly, PASS if every checker (at least
/// one) found none, else UNKNOWN.
fn overall(verdicts: &[Verdict]) -> (&'static str, &'static str) {
    if verdicts.iter().any(|v| v.validity == Validity::Invalid) {
        ("FAIL", "fail")
    } else if !verdicts.is_empty() && verdicts.iter().all(|v| v.validity == Validity::Valid) {
        ("PASS", "pass")
    } else {
        ("UNKNOWN", "unknown")
    }
}

fn verdict_line(verdicts: &[Verdict]) -> String {
    if verdicts.is_empty() {
        return "No checker ran.".to_string();
    }
    let count = |validity: Validity| verdicts.iter().filter(|v| v.validity == validity).count();
    format!(
        "{} checker(s): {} valid, {} invalid, {} unknown.",
        verdicts.len(),
        count(Validity::Valid),
        count(Validity::Invalid),
        count(Validity::Unknown)
    )
}

/// A nemesis fault interval.
#[derive(Debug)]
struct Interval<'a> {
    fault: &'a str,
    detail: &'a str,
    start_ns: u64,
    end_ns: u64,
    healed: bool,
}

/// Pairs each `start` with the next `stop` of the same fault; an unpaired start extends
/// to `end_ns`.
fn intervals(timeline: &[NemesisEvent], end_ns: u64) -> Vec<Interval<'_>> {
    let mut events: Vec<&NemesisEvent> = timeline.iter().collect();
    events.sort_by_key(|event| event.time_ns);
    let mut out = Vec::new();
    for (i, start) in events.iter().enumerate() {
        if start.phase != NemesisPhase::Start {
            continue;
        }
        let stop = events
            .iter()
            .skip(i + 1)
            .find(|event| event.phase == NemesisPhase::Stop && event.fault == start.fault);
        out.push(Interval {
            fault: &start.fault,
            detail: &start.detail,
            start_ns: start.time_ns,
            end_ns: stop.map_or(end_ns, |event| event.time_ns).max(start.time_ns),
            healed: stop.is_some(),
        });
    }
    out
}

/// Completions per time bucket.
struct Buckets {
    width_s: f64,
    answered: Vec<u64>,
    ok: Vec<u64>,
    fail: Vec<u64>,
    info: Vec<u64>,
}

impl Buckets {
    fn new(frame: &Frame, done: &[Completed]) -> Buckets {
        let width_s = (frame.t_max / MAX_BUCKETS).ceil().max(1.0);
        let n = ((frame.t_max / width_s).ceil() as usize).max(1);
        let mut buckets = Buckets {
            width_s,
            answered: vec![0; n],
            ok: vec![0; n],
            fail: vec![0; n],
            info: vec![0; n],
        };
        for c in done {
            let i = ((c.complete_ns as f64 / 1e9 / width_s).floor() as usize).min(n - 1);
            if c.answered() {
                if let Some(count) = buckets.answered.get_mut(i) {
                    *count += 1;
                }
            }
            let counts = match c.kind {
                OpType::Ok => &mut buckets.ok,
                OpType::Fail => &mut buckets.fail,
                _ => &mut buckets.info,
            };
            if let Some(count) = counts.get_mut(i) {
                *count += 1;
            }
        }
        buckets
    }

    fn len(&self) -> usize {
        self.ok.len()
    }
}

// ---------------------------------------------------------------------------------------
// SVG.

/// The time axis shared by the charts.
struct Frame {
    /// Seconds shown on the x axis (at least 1).
    t_max: f64,
}

impl Frame {
    fn new(end_ns: u64) -> Frame {
        Frame {
            t_max: (end_ns as f64 / 1e9).max(1.0),
        }
    }

    /// x pixel of a time in seconds.
    fn x(&self, t_s: f64) -> f64 {
        ML + finite(t_s / self.t_max).clamp(0.0, 1.0) * (W - ML - MR)
    }

    /// y pixel of a fraction of the plot height (0 = bottom, 1 = top).
    fn y(&self, frac: f64) -> f64 {
        MT + (1.0 - finite(frac).clamp(0.0, 1.0)) * (H - MT - MB)
    }
}

fn chart_open(id: &str, label: &str) -> String {
    format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" \
         height=\"{H}\" font-family=\"sans-serif\" font-size=\"11\" role=\"img\" aria-label=\"{label}\">\n\
         <defs><clipPath id=\"clip-{id}\"><rect x=\"{ML}\" y=\"{MT}\" width=\"{pw}\" height=\"{ph}\"/></clipPath></defs>\n\
         <rect x=\"{ML}\" y=\"{MT}\" width=\"{pw}\" height=\"{ph}\" fill=\"#fff\" stroke=\"#bbb\"/>\n",
        pw = W - ML - MR,
        ph = H - MT - MB
    )
}

/// Shaded nemesis bands, labelled with the fault name.
fn bands(frame: &Frame, intervals: &[Interval<'_>]) -> String {
    let mut s = String::new();
    for iv in intervals {
        let x0 = frame.x(iv.start_ns as f64 / 1e9);
        let x1 = frame.x(iv.end_ns as f64 / 1e9);
        let width = (x1 - x0).max(1.5);
        let colour = fault_colour(iv.fault);
        let fault = esc(iv.fault);
        let until = if iv.healed {
            format!("{} s", secs(iv.end_ns))
        } else {
            "end (not healed)".to_string()
        };
        s.push_str(&format!(
            "<rect class=\"band\" data-fault=\"{fault}\" x=\"{}\" y=\"{MT}\" width=\"{}\" height=\"{}\" fill=\"{colour}\" \
             fill-opacity=\"0.15\"><title>{fault}: {} s to {until}: {}</title></rect>\n",
            num(x0, 1),
            num(width, 1),
            H - MT - MB,
            secs(iv.start_ns),
            esc(iv.detail)
        ));
        let label_y = MT + 11.0 + 11.0 * fault_rank(iv.fault) as f64;
        s.push_str(&format!(
            "<text class=\"band-label\" x=\"{}\" y=\"{}\" fill=\"{colour}\" font-size=\"10\">{fault}</text>\n",
            num(x0 + 2.0, 1),
            num(label_y, 1)
        ));
    }
    s
}

fn x_axis(frame: &Frame) -> String {
    let step = nice_step(frame.t_max, 10.0);
    let decimals = decimals_for(step);
    let mut s = String::new();
    let mut k = 0u32;
    loop {
        let t = f64::from(k) * step;
        if t > frame.t_max * (1.0 + 1e-9) || k > 100 {
            break;
        }
        let x = num(frame.x(t), 1);
        s.push_str(&format!(
            "<line class=\"grid\" x1=\"{x}\" y1=\"{MT}\" x2=\"{x}\" y2=\"{}\" stroke=\"#e8e8e8\"/>\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            H - MB,
            H - MB + 14.0,
            num(t, decimals)
        ));
        k += 1;
    }
    s.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333\">time since start (s)</text>\n",
        num(ML + (W - ML - MR) / 2.0, 1),
        H - 6.0
    ));
    s
}

/// One y tick: fraction of the height, label (empty for none), major or minor grid line.
struct Tick {
    frac: f64,
    label: String,
    major: bool,
}

fn y_axis(frame: &Frame, ticks: &[Tick], title: &str) -> String {
    let mut s = String::new();
    for tick in ticks {
        let y = num(frame.y(tick.frac), 1);
        let colour = if tick.major { "#e0e0e0" } else { "#f2f2f2" };
        s.push_str(&format!(
            "<line class=\"grid\" x1=\"{ML}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{colour}\"/>",
            W - MR
        ));
        if !tick.label.is_empty() {
            s.push_str(&format!(
                "<text x=\"{}\" y=\"{y}\" dy=\"3.5\" text-anchor=\"end\">{}</text>",
                ML - 5.0,
                tick.label
            ));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "<text transform=\"translate(14,{}) rotate(-90)\" text-anchor=\"middle\" fill=\"#333\">{}</text>\n",
        num(MT + (H - MT - MB) / 2.0, 1),
        esc(title)
    ));
    s
}

/// Ticks 0, step, ... up to a round maximum at least `max`; returns them and that maximum.
fn linear_ticks(max: f64) -> (Vec<Tick>, f64) {
    let max = finite(max).max(1.0);
    let step = nice_step(max, 5.0);
    let decimals = decimals_for(step);
    let steps = (max / step - 1e-9).ceil().max(1.0);
    let top = steps * step;
    let ticks = (0..=steps as u32)
        .map(|k| {
            let v = f64::from(k) * step;
            Tick {
                frac: v / top,
                label: num(v, decimals),
                major: true,
            }
        })
        .collect();
    (ticks, top)
}

/// Ticks of a log axis from 10^lo to 10^hi: decades labelled, 2× and 5× minor lines
/// (labelled too when only one decade is shown).
fn log_ticks(lo: i32, hi: i32) -> Vec<Tick> {
    let span = f64::from(hi - lo);
    let mut ticks = Vec::new();
    for e in lo..=hi {
        ticks.push(Tick {
            frac: f64::from(e - lo) / span,
            label: decade_label(1, e),
            major: true,
        });
        if e < hi {
            for m in [2u32, 5] {
                let frac = (f64::from(e - lo) + f64::from(m).log10()) / span;
                let label = if hi - lo == 1 {
                    decade_label(m, e)
                } else {
                    String::new()
                };
                ticks.push(Tick {
                    frac,
                    label,
                    major: false,
                });
            }
        }
    }
    ticks
}

/// `m × 10^e` written plainly.
fn decade_label(m: u32, e: i32) -> String {
    if e >= 0 {
        let mut digits = m.to_string();
        for _ in 0..e {
            digits.push('0');
        }
        digits
    } else {
        let decimals = e.unsigned_abs() as usize;
        format!("{:.*}", decimals, f64::from(m) * 10f64.powi(e))
    }
}

/// The decades spanned by the latencies (ms): 10^lo .. 10^hi, lo < hi.
fn log_range(done: &[Completed]) -> (i32, i32) {
    if done.is_empty() {
        return (0, 3);
    }
    let min = done
        .iter()
        .map(Completed::latency_ms)
        .filter(|&ms| ms > 0.0)
        .fold(f64::INFINITY, f64::min);
    let min = if min.is_finite() { min.max(0.001) } else { 1.0 };
    let max = done.iter().map(Completed::latency_ms).fold(0.0, f64::max).max(min);
    let lo = min.log10().floor() as i32;
    let hi = (max.log10().ceil() as i32).max(lo + 1);
    (lo, hi)
}

/// Which ok points the latency chart keeps (all of them up to [`MAX_POINTS`] operations).
fn keep_points(done: &[Completed]) -> (Vec<bool>, usize) {
    if done.len() <= MAX_POINTS {
        return (vec![true; done.len()], 1);
    }
    let ok = done.iter().filter(|c| c.kind == OpType::Ok).count();
    let budget = MAX_POINTS.saturating_sub(done.len() - ok).max(MAX_POINTS / 10);
    let stride = ok.div_ceil(budget).max(1);
    let mut seen = 0usize;
    let keep = done
        .iter()
        .map(|c| {
            if c.kind != OpType::Ok {
                return true;
            }
            seen += 1;
            (seen - 1).is_multiple_of(stride)
        })
        .collect();
    (keep, stride)
}

fn latency_chart(frame: &Frame, done: &[Completed], intervals: &[Interval<'_>]) -> String {
    let (lo, hi) = log_range(done);
    let span = f64::from(hi - lo);
    let floor_ms = 10f64.powi(lo);
    let frac = |ms: f64| (finite(ms).max(floor_ms).log10() - f64::from(lo)) / span;
    let mut s = chart_open("latency", "Latency of each operation against time, log scale");
    s.push_str(&bands(frame, intervals));
    s.push_str(&x_axis(frame));
    s.push_str(&y_axis(frame, &log_ticks(lo, hi), "latency (ms, log)"));
    let (keep, stride) = keep_points(done);
    let mut shown = 0usize;
    // Not clipped: points are clamped to the plot, and markers at its top edge (timeouts)
    // stay whole.
    s.push_str("<g class=\"points\">\n");
    for kind in [OpType::Ok, OpType::Fail, OpType::Info] {
        for f in ALL_FNS {
            let points: Vec<(f64, f64)> = done
                .iter()
                .zip(&keep)
                .filter(|(c, &kept)| kept && c.f == f && c.kind == kind)
                .map(|(c, _)| (frame.x(c.invoke_ns as f64 / 1e9), frame.y(frac(c.latency_ms()))))
                .collect();
            if points.is_empty() {
                continue;
            }
            shown += points.len();
            let colour = op_colour(f);
            let name = f.as_str();
            match kind {
                OpType::Ok => {
                    s.push_str(&format!(
                        "<g class=\"pts ok {name}\" fill=\"{colour}\" fill-opacity=\"0.55\">\n"
                    ));
                    for (x, y) in points {
                        s.push_str(&format!(
                            "<circle cx=\"{}\" cy=\"{}\" r=\"2\"/>\n",
                            num(x, 1),
                            num(y, 1)
                        ));
                    }
                }
                OpType::Fail => {
                    s.push_str(&format!(
                        "<g class=\"pts fail {name}\" stroke=\"{colour}\" stroke-width=\"1.4\" fill=\"none\">\n"
                    ));
                    for (x, y) in points {
                        s.push_str(&format!("<path class=\"xf\" d=\"{}\"/>\n", cross(x, y)));
                    }
                }
                _ => {
                    s.push_str(&format!(
                        "<g class=\"pts info {name}\" stroke=\"{colour}\" stroke-width=\"1.2\" fill=\"none\">\n"
                    ));
                    for (x, y) in points {
                        s.push_str(&format!("<path class=\"xi\" d=\"{}\"/>\n", triangle(x, y)));
                    }
                }
            }
            s.push_str("</g>\n");
        }
    }
    s.push_str("</g>\n");
    if done.is_empty() {
        s.push_str(&no_data());
    }
    s.push_str("</svg>\n");
    if stride > 1 {
        s.push_str(&format!(
            "<p class=\"note\">{} operations: showing {shown} points (every fail and info, one ok in {stride}).</p>\n",
            done.len()
        ));
    } else {
        s.push_str(&format!(
            "<p class=\"note\">Each operation at its invoke time; info operations (timeouts, or never completed \
             before the end of the history) sit at their latency so far, near the top. {} points.</p>\n",
            done.len()
        ));
    }
    s
}

fn cross(x: f64, y: f64) -> String {
    format!(
        "M{} {}L{} {}M{} {}L{} {}",
        num(x - 3.0, 1),
        num(y - 3.0, 1),
        num(x + 3.0, 1),
        num(y + 3.0, 1),
        num(x - 3.0, 1),
        num(y + 3.0, 1),
        num(x + 3.0, 1),
        num(y - 3.0, 1)
    )
}

fn triangle(x: f64, y: f64) -> String {
    format!(
        "M{} {}L{} {}L{} {}Z",
        num(x, 1),
        num(y - 3.5, 1),
        num(x + 3.2, 1),
        num(y + 2.5, 1),
        num(x - 3.2, 1),
        num(y + 2.5, 1)
    )
}

/// A stepped line over the buckets; `None` breaks the line.
fn step_path(frame: &Frame, width_s: f64, values: &[Option<f64>]) -> String {
    let mut d = String::new();
    let mut previous = false;
    for (i, value) in values.iter().enumerate() {
        let Some(frac) = value else {
            previous = false;
            continue;
        };
        let x0 = num(frame.x(i as f64 * width_s), 1);
        let x1 = num(frame.x((i + 1) as f64 * width_s), 1);
        let y = num(frame.y(*frac), 1);
        d.push_str(&format!("{}{x0} {y}L{x1} {y}", if previous { "L" } else { "M" }));
        previous = true;
    }
    d
}

fn throughput_chart(frame: &Frame, buckets: &Buckets, intervals: &[Interval<'_>]) -> String {
    let rate = |count: u64| count as f64 / buckets.width_s;
    let max = (0..buckets.len())
        .map(|i| {
            let get = |v: &Vec<u64>| v.get(i).copied().map_or(0.0, rate);
            get(&buckets.ok).max(get(&buckets.fail)).max(get(&buckets.info))
        })
        .fold(0.0, f64::max);
    let (ticks, top) = linear_ticks(max);
    let mut s = chart_open("throughput", "Completed operations per second against time");
    s.push_str(&bands(frame, intervals));
    s.push_str(&x_axis(frame));
    s.push_str(&y_axis(frame, &ticks, "completions / s"));
    s.push_str("<g clip-path=\"url(#clip-throughput)\" fill=\"none\" stroke-width=\"1.5\">\n");
    for (counts, colour, name) in [
        (&buckets.info, INFO_COLOUR, "info"),
        (&buckets.fail, FAIL_COLOUR, "fail"),
        (&buckets.ok, OK_COLOUR, "ok"),
    ] {
        let values: Vec<Option<f64>> = counts.iter().map(|&c| Some(rate(c) / top)).collect();
        s.push_str(&format!(
            "<path class=\"rate {name}\" stroke=\"{colour}\" d=\"{}\"/>\n",
            step_path(frame, buckets.width_s, &values)
        ));
    }
    s.push_str("</g>\n");
    let total: u64 = buckets.ok.iter().chain(&buckets.fail).chain(&buckets.info).sum();
    if total == 0 {
        s.push_str(&no_data());
    }
    s.push_str("</svg>\n");
    s
}

fn availability_chart(frame: &Frame, buckets: &Buckets, intervals: &[Interval<'_>]) -> String {
    let ticks: Vec<Tick> = (0..=4)
        .map(|k| Tick {
            frac: f64::from(k) / 4.0,
            label: format!("{}%", k * 25),
            major: true,
        })
        .collect();
    let values: Vec<Option<f64>> = (0..buckets.len())
        .map(|i| {
            let answered = buckets.answered.get(i).copied().unwrap_or(0);
            let all = buckets.ok.get(i).copied().unwrap_or(0)
                + buckets.fail.get(i).copied().unwrap_or(0)
                + buckets.info.get(i).copied().unwrap_or(0);
            (all > 0).then(|| answered as f64 / all as f64)
        })
        .collect();
    let mut s = chart_open(
        "availability",
        "Fraction of completions answered per bucket against time",
    );
    s.push_str(&bands(frame, intervals));
    s.push_str(&x_axis(frame));
    s.push_str(&y_axis(frame, &ticks, "answered / completions"));
    s.push_str(&format!(
        "<g clip-path=\"url(#clip-availability)\"><path class=\"avail\" fill=\"none\" stroke=\"#1864ab\" \
         stroke-width=\"1.5\" d=\"{}\"/></g>\n",
        step_path(frame, buckets.width_s, &values)
    ));
    if values.iter().all(Option::is_none) {
        s.push_str(&no_data());
    }
    s.push_str("</svg>\n");
    s
}

fn no_data() -> String {
    format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#999\" font-size=\"14\">no operations</text>\n",
        num(ML + (W - ML - MR) / 2.0, 1),
        num(MT + (H - MT - MB) / 2.0, 1)
    )
}

// ---------------------------------------------------------------------------------------
// Legends and tables.

fn op_legend() -> String {
    let mut s = String::from("<div class=\"legend\">");
    for f in ALL_FNS {
        s.push_str(&format!(
            "<span class=\"key\"><svg width=\"12\" height=\"12\"><circle cx=\"6\" cy=\"6\" r=\"4.5\" fill=\"{}\"/></svg> {}</span>",
            op_colour(f),
            f.as_str()
        ));
    }
    s.push_str(" &nbsp; ");
    s.push_str(
        "<span class=\"key\"><svg width=\"12\" height=\"12\"><circle cx=\"6\" cy=\"6\" r=\"3\" fill=\"#555\" \
         fill-opacity=\"0.55\"/></svg> ok</span>",
    );
    s.push_str(&format!(
        "<span class=\"key\"><svg width=\"12\" height=\"12\"><path d=\"{}\" stroke=\"#555\" stroke-width=\"1.4\" \
         fill=\"none\"/></svg> fail</span>",
        cross(6.0, 6.0)
    ));
    s.push_str(&format!(
        "<span class=\"key\"><svg width=\"12\" height=\"12\"><path d=\"{}\" stroke=\"#555\" stroke-width=\"1.2\" \
         fill=\"none\"/></svg> info</span>",
        triangle(6.0, 7.0)
    ));
    s.push_str("</div>\n");
    s
}

fn fault_legend(intervals: &[Interval<'_>]) -> String {
    let mut faults: Vec<&str> = intervals.iter().map(|iv| iv.fault).collect();
    faults.sort_by_key(|fault| (fault_rank(fault), *fault));
    faults.dedup();
    if faults.is_empty() {
        return "<div class=\"legend note\">No nemesis interval.</div>\n".to_string();
    }
    let mut s = String::from("<div class=\"legend\">nemesis: ");
    for fault in faults {
        s.push_str(&format!(
            "<span class=\"key\"><svg width=\"14\" height=\"12\"><rect width=\"14\" height=\"12\" fill=\"{}\" \
             fill-opacity=\"0.35\"/></svg> {}</span>",
            fault_colour(fault),
            esc(fault)
        ));
    }
    s.push_str("</div>\n");
    s
}

fn line_key(colour: &str, name: &str) -> String {
    format!(
        "<span class=\"key\"><svg width=\"18\" height=\"12\"><line x1=\"1\" y1=\"6\" x2=\"17\" y2=\"6\" \
         stroke=\"{colour}\" stroke-width=\"2\"/></svg> {name}</span>"
    )
}

fn verdicts_html(verdicts: &[Verdict], history: &[Op]) -> String {
    if verdicts.is_empty() {
        return "<p class=\"note\">No checker ran.</p>\n".to_string();
    }
    let by_index: HashMap<u64, &Op> = history.iter().map(|op| (op.index, op)).collect();
    let mut s = String::new();
    for verdict in verdicts {
        let (word, class) = match verdict.validity {
            Validity::Valid => ("valid", "pass"),
            Validity::Invalid => ("invalid", "fail"),
            Validity::Unknown => ("unknown", "unknown"),
        };
        s.push_str(&format!(
            "<div class=\"verdict\">\n<h3>{} <span class=\"badge {class}\">{word}</span></h3>\n",
            esc(&verdict.checker)
        ));
        if !verdict.stats.is_empty() {
            s.push_str("<p class=\"stats\">");
            let stats: Vec<String> = verdict
                .stats
                .iter()
                .map(|(name, value)| format!("<span>{} <b>{value}</b></span>", esc(name)))
                .collect();
            s.push_str(&stats.join(" · "));
            s.push_str("</p>\n");
        }
        if verdict.anomalies.is_empty() {
            s.push_str("<p class=\"note\">No anomaly.</p>\n");
        } else {
            let n = verdict.anomalies.len();
            s.push_str(&format!(
                "<p>{n} {}:</p>\n",
                if n == 1 { "anomaly" } else { "anomalies" }
            ));
            s.push_str(
                "<table class=\"anomalies\">\n<tr><th>#</th><th>kind</th><th>key</th><th>explanation</th>\
                 <th>operations</th></tr>\n",
            );
            for (i, anomaly) in verdict.anomalies.iter().take(MAX_ANOMALIES).enumerate() {
                s.push_str(&anomaly_row(i, anomaly, &by_index));
            }
            s.push_str("</table>\n");
            if verdict.anomalies.len() > MAX_ANOMALIES {
                s.push_str(&format!(
                    "<p class=\"note\">… and {} more anomalies not shown.</p>\n",
                    verdict.anomalies.len() - MAX_ANOMALIES
                ));
            }
        }
        s.push_str("</div>\n");
    }
    s
}

fn anomaly_row(i: usize, anomaly: &Anomaly, by_index: &HashMap<u64, &Op>) -> String {
    let mut indexes: Vec<String> = anomaly.ops.iter().take(MAX_OP_INDEXES).map(u64::to_string).collect();
    if anomaly.ops.len() > MAX_OP_INDEXES {
        indexes.push(format!("… (+{})", anomaly.ops.len() - MAX_OP_INDEXES));
    }
    let mut ops_cell = indexes.join(", ");
    let found: Vec<&Op> = anomaly
        .ops
        .iter()
        .take(MAX_OP_INDEXES)
        .filter_map(|index| by_index.get(index).copied())
        .collect();
    if !found.is_empty() {
        ops_cell.push_str(
            "<details><summary>show</summary><table class=\"ops\">\n<tr><th>index</th><th>time (s)</th>\
             <th>process</th><th>type</th><th>f</th><th>key</th><th>value / names / error</th></tr>\n",
        );
        for op in found {
            ops_cell.push_str(&op_row(op));
        }
        ops_cell.push_str("</table></details>");
    }
    format!(
        "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"expl\">{}</td><td>{ops_cell}</td></tr>\n",
        i + 1,
        esc(&anomaly.kind),
        anomaly.key.as_deref().map_or_else(|| "—".to_string(), esc),
        esc(&anomaly.explanation)
    )
}

fn op_row(op: &Op) -> String {
    let mut what = Vec::new();
    if let Some(value) = &op.value {
        what.push(format!("value {}", esc(value)));
    }
    if let Some(names) = &op.names {
        let mut shown: Vec<String> = names.iter().take(MAX_NAMES).map(|name| esc(name)).collect();
        if names.len() > MAX_NAMES {
            shown.push(format!("… (+{})", names.len() - MAX_NAMES));
        }
        what.push(format!("names [{}]", shown.join(", ")));
    }
    if let Some(error) = &op.error {
        what.push(format!("error {}", esc(error)));
    }
    if let Some(data) = &op.extra.data {
        what.push(format!(
            "dataset seed {} × {} chunks of {} rows, +{}, {} replicas{}",
            data.seed,
            data.chunks,
            data.rows_per_chunk,
            data.plus,
            data.replicas,
            data.source
                .as_deref()
                .map_or_else(String::new, |source| format!(", from {}", esc(source)))
        ));
    }
    if let Some(content) = &op.extra.content {
        what.push(format!(
            "content {} rows in {} chunks, fnv {}",
            content.rows,
            content.chunks,
            esc(&content.checksum)
        ));
    }
    if let Some(graph) = &op.extra.graph {
        what.push(format!(
            "graph {} chains of {} inc from {}, sum fan-in {} ({} tasks, expects {})",
            graph.leaves,
            graph.length,
            graph.base,
            graph.fanout,
            graph.tasks,
            graph.expected()
        ));
    }
    if let Some(result) = op.extra.result {
        what.push(format!("result {result}"));
    }
    if let Some(counters) = &op.extra.counters {
        what.push(format!(
            "n{} term {}: failovers {}, recomputed {}, re-registered {}, repaired {}",
            counters.leader,
            counters.term,
            counters.failovers,
            counters.tasks_recomputed,
            counters.chunks_reregistered,
            counters.replicas_repaired
        ));
    }
    if let Some(note) = &op.extra.nemesis {
        what.push(format!("{:?}: {}", note.phase, esc(&note.detail)).to_lowercase());
    }
    if op.is_final {
        what.push("(final read)".to_string());
    }
    format!(
        "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td class=\"err\">{}</td></tr>\n",
        op.index,
        secs(op.time_ns),
        op.process,
        kind_name(op.kind),
        op.f.as_str(),
        op.key.as_deref().map_or_else(String::new, esc),
        what.join("; ")
    )
}

fn summary_table(summaries: &[OpSummary], all: &mut Tally) -> String {
    if summaries.is_empty() {
        return "<p class=\"note\">No operation.</p>\n".to_string();
    }
    let mut s = String::from(
        "<table class=\"summary\">\n<tr><th>operation</th><th>ok</th><th>fail</th><th>info</th><th>total</th>\
         <th>p50 (ms)</th><th>p99 (ms)</th><th>max (ms)</th></tr>\n",
    );
    let row = |name: &str, ok: u64, fail: u64, info: u64, p50: f64, p99: f64, max: f64| {
        format!(
            "<tr><td>{name}</td><td class=\"num\">{ok}</td><td class=\"num\">{fail}</td><td class=\"num\">{info}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
            ok + fail + info,
            num(p50, 2),
            num(p99, 2),
            num(max, 2)
        )
    };
    for sum in summaries {
        s.push_str(&row(
            sum.f.as_str(),
            sum.ok,
            sum.fail,
            sum.info,
            sum.p50_ms,
            sum.p99_ms,
            sum.max_ms,
        ));
    }
    let (p50, p99, max) = all.percentiles();
    s.push_str(&row("<b>all</b>", all.ok, all.fail, all.info, p50, p99, max));
    s.push_str(
        "</table>\n<p class=\"note\">Latency percentiles (nearest rank) over the operations completed ok or \
                fail; info counts include invokes never completed.</p>\n",
    );
    s
}

fn errors_table(history: &[Op]) -> String {
    let mut counts: HashMap<(OpFn, OpType, &str), u64> = HashMap::new();
    for op in history {
        if let (OpType::Fail | OpType::Info, Some(error)) = (op.kind, &op.error) {
            *counts.entry((op.f, op.kind, error.as_str())).or_default() += 1;
        }
    }
    if counts.is_empty() {
        return String::new();
    }
    let mut rows: Vec<((OpFn, OpType, &str), u64)> = counts.into_iter().collect();
    rows.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| (a.0 .0, kind_name(a.0 .1), a.0 .2).cmp(&(b.0 .0, kind_name(b.0 .1), b.0 .2)))
    });
    let mut s = String::from(
        "<h3>Errors</h3>\n<table class=\"errors\">\n<tr><th>count</th><th>operation</th><th>type</th><th>error</th></tr>\n",
    );
    for ((f, kind, error), count) in rows.iter().take(MAX_ERRORS) {
        s.push_str(&format!(
            "<tr><td class=\"num\">{count}</td><td>{}</td><td>{}</td><td class=\"err\">{}</td></tr>\n",
            f.as_str(),
            kind_name(*kind),
            esc(error)
        ));
    }
    s.push_str("</table>\n");
    if rows.len() > MAX_ERRORS {
        s.push_str(&format!(
            "<p class=\"note\">… and {} more distinct errors.</p>\n",
            rows.len() - MAX_ERRORS
        ));
    }
    s
}

fn timeline_table(timeline: &[NemesisEvent]) -> String {
    if timeline.is_empty() {
        return "<p class=\"note\">No nemesis event.</p>\n".to_string();
    }
    let mut events: Vec<&NemesisEvent> = timeline.iter().collect();
    events.sort_by_key(|event| event.time_ns);
    let mut s = String::from(
        "<table class=\"timeline\">\n<tr><th>time (s)</th><th>phase</th><th>fault</th><th>detail</th></tr>\n",
    );
    for event in events {
        let phase = match event.phase {
            NemesisPhase::Start => "start",
            NemesisPhase::Stop => "stop",
            NemesisPhase::Info => "info",
        };
        s.push_str(&format!(
            "<tr><td class=\"num\">{}</td><td>{phase}</td><td><span class=\"swatch\" style=\"background:{}\"></span>{}</td>\
             <td class=\"err\">{}</td></tr>\n",
            secs(event.time_ns),
            fault_colour(&event.fault),
            esc(&event.fault),
            esc(&event.detail)
        ));
    }
    s.push_str("</table>\n");
    s
}

// ---------------------------------------------------------------------------------------
// Small helpers.

fn kind_name(kind: OpType) -> &'static str {
    match kind {
        OpType::Invoke => "invoke",
        OpType::Ok => "ok",
        OpType::Fail => "fail",
        OpType::Info => "info",
    }
}

fn op_colour(f: OpFn) -> &'static str {
    match f {
        OpFn::Publish => "#1f77b4",
        OpFn::Override => "#17becf",
        OpFn::Unpublish => "#e377c2",
        OpFn::Get => "#2ca02c",
        OpFn::List => "#bcbd22",
        OpFn::Put => "#1f77b4",
        OpFn::Read => "#2ca02c",
        OpFn::Submit => "#9467bd",
        OpFn::Gather => "#8c564b",
        OpFn::Status | OpFn::Probe | OpFn::Nemesis => "#7f7f7f",
    }
}

fn fault_rank(fault: &str) -> usize {
    KNOWN_FAULTS
        .iter()
        .position(|known| *known == fault)
        .unwrap_or(KNOWN_FAULTS.len())
}

fn fault_colour(fault: &str) -> &'static str {
    match fault {
        "kill" => "#d62728",
        "pause" => "#ff7f0e",
        "partition" => "#9467bd",
        "netem" => "#8c564b",
        "membership" => "#e6ab02",
        "kill-worker" => "#e7298a",
        "pause-worker" => "#fdae6b",
        "partition-worker" => "#6a51a3",
        "full-disk" => "#17becf",
        "restart-all" => "#000000",
        _ => "#7f7f7f",
    }
}

/// A round step (1, 2 or 5 × 10^k) giving about `target` steps over `range`.
fn nice_step(range: f64, target: f64) -> f64 {
    let raw = finite(range).max(1e-9) / target;
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let factor = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    factor * magnitude
}

/// Decimals needed to print multiples of `step`.
fn decimals_for(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) || step >= 1.0 {
        0
    } else {
        ((-step.log10()).ceil().max(0.0) as usize).min(6)
    }
}

/// `v` if finite, else 0: keeps NaN and infinities out of the page.
fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

fn num(v: f64, decimals: usize) -> String {
    format!("{:.*}", decimals, finite(v))
}

fn secs(ns: u64) -> String {
    num(ns as f64 / 1e9, 3)
}

fn percent(fraction: Option<f64>) -> String {
    fraction.map_or_else(|| "n/a".to_string(), |f| format!("{}%", num(f * 100.0, 2)))
}

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "\
body{font-family:system-ui,-apple-system,\"Segoe UI\",Helvetica,Arial,sans-serif;margin:24px auto;max-width:960px;\
padding:0 16px;color:#222;background:#fff;line-height:1.4}\
h1{margin:0 0 4px;font-size:24px}\
h2{font-size:19px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:34px}\
h3{font-size:16px;margin:18px 0 6px}\
nav{font-size:13px;margin:10px 0}\
a{color:#1864ab}\
.banner{display:inline-block;font-size:40px;font-weight:700;letter-spacing:3px;padding:4px 30px;border-radius:8px;\
color:#fff;margin:8px 0}\
.banner.pass,.badge.pass{background:#2b8a3e}.banner.fail,.badge.fail{background:#c92a2a}\
.banner.unknown,.badge.unknown{background:#868e96}\
.badge{color:#fff;font-size:12px;padding:2px 8px;border-radius:4px;vertical-align:middle}\
.sub{margin:2px 0;color:#444}\
table{border-collapse:collapse;font-size:13px;margin:6px 0}\
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f5f5f5;font-weight:600}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
td.expl{max-width:460px}\
.err{word-break:break-word}\
table.facts th{min-width:90px}\
.stats{font-size:13px;color:#444;margin:2px 0 6px}\
details summary{cursor:pointer;color:#1864ab;font-size:12px}\
table.ops{font-size:12px}\
svg.chart{display:block;max-width:100%;height:auto;margin:6px 0}\
svg.chart text{fill:#444}\
.legend{font-size:12px;margin:3px 0}\
.legend .key{margin-right:14px;white-space:nowrap}\
.legend svg{vertical-align:middle}\
.swatch{display:inline-block;width:10px;height:10px;margin-right:5px;opacity:.6}\
.note{color:#666;font-size:12px;margin:3px 0}\
footer{margin:40px 0 10px;color:#999;font-size:12px}";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn op(index: u64, time_ms: u64, process: u64, kind: OpType, f: OpFn) -> Op {
        Op {
            index,
            time_ns: time_ms * 1_000_000,
            process,
            kind,
            f,
            key: (f != OpFn::List).then(|| "ds-1".to_string()),
            value: None,
            names: None,
            error: None,
            is_final: false,
            extra: Default::default(),
        }
    }

    fn event(time_ms: u64, phase: NemesisPhase, fault: &str, detail: &str) -> NemesisEvent {
        NemesisEvent {
            time_ns: time_ms * 1_000_000,
            phase,
            fault: fault.to_string(),
            detail: detail.to_string(),
        }
    }

    #[test]
    fn longest_unavailability_is_the_widest_gap_between_answers() {
        let history = vec![
            op(0, 0, 0, OpType::Invoke, OpFn::Get),
            op(1, 10, 0, OpType::Ok, OpFn::Get),
            op(2, 11, 0, OpType::Invoke, OpFn::Get),
            op(3, 900, 0, OpType::Fail, OpFn::Get),
            op(4, 901, 0, OpType::Invoke, OpFn::Publish),
            op(5, 2010, 0, OpType::Fail, OpFn::Publish),
            op(6, 2011, 0, OpType::Invoke, OpFn::Get),
            op(7, 2100, 0, OpType::Ok, OpFn::Get),
        ];
        let (start, length) = longest_unavailability(&history).unwrap();
        assert!(
            (start - 0.010).abs() < 1e-9 && (length - 2.0).abs() < 1e-9,
            "{start} {length}"
        );
        assert_eq!(longest_unavailability(&history[..2]), None);
    }

    #[test]
    fn refused_writes_count_as_available_and_failed_reads_do_not() {
        let history = vec![
            op(0, 0, 0, OpType::Invoke, OpFn::Publish),
            op(1, 5, 0, OpType::Fail, OpFn::Publish),
            op(2, 6, 1, OpType::Invoke, OpFn::Get),
            op(3, 9, 1, OpType::Fail, OpFn::Get),
        ];
        let page = render(&meta(), &history, &[], &[]);
        assert!(page.contains("availability: <strong>50.00%"), "{page}");
    }

    fn meta() -> ReportMeta {
        ReportMeta {
            title: "Cairn Jepsen: catalog <kill,partition>".to_string(),
            facts: vec![
                ("workload".to_string(), "catalog".to_string()),
                ("nemesis".to_string(), "kill,partition".to_string()),
                ("nodes".to_string(), "3".to_string()),
                ("seed".to_string(), "42".to_string()),
                ("time limit".to_string(), "60 s".to_string()),
            ],
        }
    }

    fn verdict(checker: &str, validity: Validity, anomalies: Vec<Anomaly>) -> Verdict {
        let mut stats = std::collections::BTreeMap::new();
        stats.insert("ops".to_string(), 12);
        Verdict {
            checker: checker.to_string(),
            validity,
            anomalies,
            stats,
        }
    }

    fn invalid_verdict() -> Verdict {
        verdict(
            "linearizable",
            Validity::Invalid,
            vec![Anomaly {
                kind: "stale-read".to_string(),
                key: Some("ds-1".to_string()),
                explanation: "get read <script>alert(\"x\")</script> & more".to_string(),
                ops: vec![2, 3, 7],
            }],
        )
    }

    /// Every operation type and outcome, plus an invoke never completed.
    fn small_history() -> Vec<Op> {
        let specs: [(u64, u64, OpType, OpFn); 15] = [
            (0, 0, OpType::Invoke, OpFn::Publish),
            (5, 0, OpType::Ok, OpFn::Publish),
            (10, 1, OpType::Invoke, OpFn::Get),
            (12, 1, OpType::Ok, OpFn::Get),
            (1_000, 0, OpType::Invoke, OpFn::Override),
            (1_500, 0, OpType::Fail, OpFn::Override),
            (1_600, 1, OpType::Invoke, OpFn::Unpublish),
            (2_600, 1, OpType::Info, OpFn::Unpublish),
            (2_000, 0, OpType::Invoke, OpFn::List),
            (2_010, 0, OpType::Ok, OpFn::List),
            (3_000, 2, OpType::Invoke, OpFn::Get),
            (3_100, 2, OpType::Fail, OpFn::Get),
            (3_200, 2, OpType::Invoke, OpFn::Publish),
            (3_210, 2, OpType::Ok, OpFn::Publish),
            (3_300, 3, OpType::Invoke, OpFn::Get),
        ];
        let mut ops: Vec<Op> = specs.iter().map(|&(t, p, kind, f)| op(0, t, p, kind, f)).collect();
        ops.sort_by_key(|o| o.time_ns);
        for (i, o) in ops.iter_mut().enumerate() {
            o.index = i as u64;
            if o.kind == OpType::Fail {
                o.error = Some("unavailable: <no leader>".to_string());
            }
        }
        ops
    }

    fn small_timeline() -> Vec<NemesisEvent> {
        vec![
            event(500, NemesisPhase::Start, "kill", "kill leader n2"),
            event(1_800, NemesisPhase::Stop, "kill", "restart n2"),
            event(
                2_500,
                NemesisPhase::Start,
                "partition",
                "partition majority [1,2] | [3]",
            ),
            event(2_700, NemesisPhase::Info, "pause", "could not pause n3"),
        ]
    }

    fn assert_clean(page: &str) {
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.trim_end().ends_with("</html>"));
        assert!(!page.contains("NaN"), "NaN in page");
        for infinity in ["=\"inf", "=\"-inf", ">inf<", ">-inf<", " inf ", "Linf"] {
            assert!(!page.contains(infinity), "infinity in page");
        }
        assert_eq!(page.matches("<svg class=\"chart\"").count(), 3);
        assert!(!page.contains("<script"));
    }

    #[test]
    fn empty_history_renders() {
        let page = render(&meta(), &[], &[], &[]);
        assert_clean(&page);
        assert!(page.contains("UNKNOWN"));
        assert!(!page.contains("FAIL"));
        assert!(page.contains("No nemesis event."));

        let page = render(&meta(), &[], &[], &[verdict("durable", Validity::Valid, vec![])]);
        assert_clean(&page);
        assert!(page.contains("PASS"));
        assert!(!page.contains("FAIL"));
        assert!(!page.contains("UNKNOWN"));

        let page = render(
            &ReportMeta::default(),
            &[],
            &[],
            &[verdict("x", Validity::Unknown, vec![])],
        );
        assert_clean(&page);
        assert!(page.contains("UNKNOWN"));
    }

    #[test]
    fn single_op_renders() {
        let page = render(&meta(), &[op(0, 0, 0, OpType::Invoke, OpFn::Get)], &[], &[]);
        assert_clean(&page);
        let page = render(
            &meta(),
            &[
                op(0, 0, 0, OpType::Invoke, OpFn::Get),
                op(1, 0, 0, OpType::Ok, OpFn::Get),
            ],
            &[event(0, NemesisPhase::Start, "pause", "pause n1")],
            &[],
        );
        assert_clean(&page);
        assert_eq!(page.matches("class=\"band\"").count(), 3);
    }

    #[test]
    fn synthetic_history_renders_fail_escaped_and_bands() {
        let history = small_history();
        let timeline = small_timeline();
        let verdicts = vec![invalid_verdict(), verdict("durable", Validity::Valid, vec![])];
        let page = render(&meta(), &history, &timeline, &verdicts);
        assert_clean(&page);
        assert!(page.contains("<div class=\"banner fail\">FAIL</div>"));
        assert!(page.contains("get read &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more"));
        assert!(page.contains("Cairn Jepsen: catalog &lt;kill,partition&gt;"));
        assert!(page.contains("unavailable: &lt;no leader&gt;"));
        // Two intervals (kill, unpaired partition), shaded in each of the three charts.
        assert_eq!(page.matches("class=\"band\" data-fault=\"kill\"").count(), 3);
        assert_eq!(page.matches("class=\"band\" data-fault=\"partition\"").count(), 3);
        assert_eq!(page.matches("class=\"band\"").count(), 6);
        assert!(page.contains("not healed"));
        // Every outcome is plotted: 4 ok circles, 2 fail crosses, 2 info triangles.
        assert_eq!(page.matches("r=\"2\"/>").count(), 4);
        assert_eq!(page.matches("class=\"xf\"").count(), 2);
        assert_eq!(page.matches("class=\"xi\"").count(), 2);
        for f in &ALL_FNS[..5] {
            assert!(page.contains(&format!("<td>{}</td>", f.as_str())));
        }
        assert!(page.contains("could not pause n3"));
    }

    #[test]
    fn intervals_pair_starts_with_next_stop() {
        let timeline = small_timeline();
        let ivs = intervals(&timeline, 9_000_000_000);
        assert_eq!(ivs.len(), 2);
        assert_eq!(
            (ivs[0].fault, ivs[0].start_ns, ivs[0].end_ns, ivs[0].healed),
            ("kill", 500_000_000, 1_800_000_000, true)
        );
        assert_eq!(
            (ivs[1].fault, ivs[1].start_ns, ivs[1].end_ns, ivs[1].healed),
            ("partition", 2_500_000_000, 9_000_000_000, false)
        );
    }

    #[test]
    fn summarize_known_latencies() {
        // 100 gets with latencies 1..=100 ms, then one fail (200 ms) and one timeout.
        let mut history = Vec::new();
        let mut t = 0u64;
        for latency in 1..=100u64 {
            history.push(op(0, t, 0, OpType::Invoke, OpFn::Get));
            history.push(op(0, t + latency, 0, OpType::Ok, OpFn::Get));
            t += latency + 1;
        }
        history.push(op(0, t, 1, OpType::Invoke, OpFn::Publish));
        history.push(op(0, t + 200, 1, OpType::Fail, OpFn::Publish));
        history.push(op(0, t + 300, 2, OpType::Invoke, OpFn::Publish));
        history.push(op(0, t + 5_000, 2, OpType::Info, OpFn::Publish));
        let summary = summarize(&history);
        assert_eq!(summary.len(), 2);
        let publish = &summary[0];
        assert_eq!(
            (publish.f, publish.ok, publish.fail, publish.info),
            (OpFn::Publish, 0, 1, 1)
        );
        assert_eq!((publish.p50_ms, publish.p99_ms, publish.max_ms), (200.0, 200.0, 200.0));
        let get = &summary[1];
        assert_eq!((get.f, get.ok, get.fail, get.info), (OpFn::Get, 100, 0, 0));
        assert_eq!((get.p50_ms, get.p99_ms, get.max_ms), (50.0, 99.0, 100.0));
        assert!(summarize(&[]).is_empty());
    }

    #[test]
    fn dangling_invokes_are_info_at_the_end() {
        let history = small_history();
        let summary = summarize(&history);
        let get = summary.iter().find(|s| s.f == OpFn::Get).unwrap();
        assert_eq!((get.ok, get.fail, get.info), (1, 1, 1));
        let done = complete(&history);
        let dangling = done
            .iter()
            .find(|c| c.f == OpFn::Get && c.kind == OpType::Info)
            .unwrap();
        assert_eq!(dangling.complete_ns, 3_300_000_000);
    }

    #[test]
    fn large_histories_are_downsampled_keeping_failures() {
        let mut history = Vec::new();
        for i in 0..30_000u64 {
            let kind = if i.is_multiple_of(1000) {
                OpType::Fail
            } else {
                OpType::Ok
            };
            history.push(op(2 * i, i, i % 7, OpType::Invoke, OpFn::Get));
            history.push(op(2 * i + 1, i, i % 7, kind, OpFn::Get));
        }
        let page = render(&meta(), &history, &[], &[]);
        assert_clean(&page);
        assert_eq!(page.matches("class=\"xf\"").count(), 30);
        let circles = page.matches("r=\"2\"/>").count();
        assert!((10_000..=MAX_POINTS).contains(&circles), "{circles} circles");
    }

    #[test]
    fn write_creates_report_html() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir.path().join("run"),
            &meta(),
            &small_history(),
            &small_timeline(),
            &[],
        )
        .unwrap();
        assert!(path.ends_with("report.html"));
        assert!(std::fs::read_to_string(&path).unwrap().contains("UNKNOWN"));
    }

    /// A 40 s run with 5 processes; a kill makes writes fail, an unhealed partition
    /// makes some operations time out.
    fn sample_history() -> (Vec<Op>, Vec<NemesisEvent>) {
        let mut seed = 42u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as f64 / (1u64 << 31) as f64
        };
        let mut ops = Vec::new();
        let end_ms = 40_000.0;
        let mut fresh = 5u64;
        for worker in 0..5u64 {
            let mut process = worker;
            let mut t = next() * 10.0;
            while t < end_ms {
                let f = ALL_FNS[((next() * 5.0) as usize).min(4)];
                let killed = (10_000.0..14_000.0).contains(&t);
                let partitioned = t >= 28_000.0 && worker < 2;
                let base = if f.is_write() { 4.0 } else { 1.5 };
                let mut latency = base * (1.0 + 4.0 * next() * next() * next());
                let kind = if partitioned && next() < 0.5 {
                    latency = 1_000.0;
                    OpType::Info
                } else if killed && f.is_write() && next() < 0.7 {
                    latency = 50.0 + 400.0 * next();
                    OpType::Fail
                } else if f == OpFn::Publish && next() < 0.1 {
                    OpType::Fail
                } else {
                    OpType::Ok
                };
                let mut invoke = op(0, 0, process, OpType::Invoke, f);
                invoke.time_ns = (t * 1e6) as u64;
                let mut completion = invoke.clone();
                completion.kind = kind;
                completion.time_ns = ((t + latency) * 1e6) as u64;
                completion.error = match kind {
                    OpType::Fail if killed => Some("unavailable: no leader".to_string()),
                    OpType::Fail => Some("already exists".to_string()),
                    OpType::Info => Some("timeout after 1 s".to_string()),
                    _ => None,
                };
                if f == OpFn::Get && kind == OpType::Ok {
                    completion.value = Some("v1".to_string());
                }
                ops.push(invoke);
                ops.push(completion);
                if kind == OpType::Info {
                    process = fresh;
                    fresh += 1;
                }
                t += latency + 5.0 + 20.0 * next();
            }
        }
        ops.sort_by_key(|o| o.time_ns);
        for (i, o) in ops.iter_mut().enumerate() {
            o.index = i as u64;
        }
        let timeline = vec![
            event(10_000, NemesisPhase::Start, "kill", "kill leader n2"),
            event(14_000, NemesisPhase::Stop, "kill", "restart n2"),
            event(19_000, NemesisPhase::Start, "pause", "pause n1"),
            event(22_000, NemesisPhase::Stop, "pause", "resume n1"),
            event(
                28_000,
                NemesisPhase::Start,
                "partition",
                "partition majority [1,2] | [3]",
            ),
        ];
        (ops, timeline)
    }

    /// Renders the sample run; writes it to `$CAIRN_REPORT_SAMPLE` when set.
    #[test]
    fn sample_report_renders() {
        let (history, timeline) = sample_history();
        let verdicts = vec![
            invalid_verdict(),
            verdict("stale-read", Validity::Valid, vec![]),
            verdict("durable", Validity::Unknown, vec![]),
        ];
        let page = render(&meta(), &history, &timeline, &verdicts);
        assert_clean(&page);
        assert!(page.contains("FAIL"));
        assert_eq!(page.matches("class=\"band\"").count(), 9);
        if let Ok(path) = std::env::var("CAIRN_REPORT_SAMPLE") {
            std::fs::write(path, &page).unwrap();
        }
    }
}
