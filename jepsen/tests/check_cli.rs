//! `cairn-jepsen check HISTORY` re-checks a stored history: exit 0 when valid, 1 on
//! an anomaly, 3 with a message naming the line when the file is not a history.

use std::process::{Command, Output};

fn check(history: &str) -> (Output, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("history.jsonl");
    std::fs::write(&path, history).expect("write the history");
    let output = Command::new(env!("CARGO_BIN_EXE_cairn-jepsen"))
        .args(["check", "--report"])
        .arg(&path)
        .output()
        .expect("cairn-jepsen runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.code() == Some(3) || dir.path().join("report.html").exists(),
        "check --report writes report.html next to the history:\n{text}"
    );
    (output, text)
}

const WRITE_A_THEN_B: &str = r#"{"index":0,"time_ns":1000,"process":0,"type":"invoke","f":"publish","key":"k","value":"a"}
{"index":1,"time_ns":2000,"process":0,"type":"ok","f":"publish","key":"k","value":"a"}
{"index":2,"time_ns":3000,"process":0,"type":"invoke","f":"override","key":"k","value":"b"}
{"index":3,"time_ns":4000,"process":0,"type":"ok","f":"override","key":"k","value":"b"}
"#;

#[test]
fn a_stale_read_in_a_stored_history_fails_the_check() {
    let history = format!(
        "{WRITE_A_THEN_B}{}\n{}\n",
        r#"{"index":4,"time_ns":5000,"process":1,"type":"invoke","f":"get","key":"k"}"#,
        r#"{"index":5,"time_ns":6000,"process":1,"type":"ok","f":"get","key":"k","value":"a"}"#
    );
    let (output, text) = check(&history);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("stale-read"), "{text}");
    assert!(text.contains("INVALID"), "{text}");
}

#[test]
fn a_lost_write_in_a_stored_history_fails_the_check() {
    let history = format!(
        "{WRITE_A_THEN_B}{}\n{}\n",
        r#"{"index":4,"time_ns":5000,"process":1,"type":"invoke","f":"get","key":"k","final":true}"#,
        r#"{"index":5,"time_ns":6000,"process":1,"type":"ok","f":"get","key":"k","final":true}"#
    );
    let (output, text) = check(&history);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("lost-write"), "{text}");
}

#[test]
fn a_linearizable_stored_history_passes() {
    let history = format!(
        "{WRITE_A_THEN_B}{}\n{}\n",
        r#"{"index":4,"time_ns":5000,"process":1,"type":"invoke","f":"get","key":"k"}"#,
        r#"{"index":5,"time_ns":6000,"process":1,"type":"ok","f":"get","key":"k","value":"b"}"#
    );
    let (output, text) = check(&history);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("VALID: no anomalies"), "{text}");
}

#[test]
fn a_file_that_is_not_a_history_is_refused_with_its_line() {
    let (output, text) = check("{\"index\":0}\nnot json\n");
    assert_eq!(output.status.code(), Some(3), "{text}");
    assert!(text.contains("line 1"), "{text}");
}
