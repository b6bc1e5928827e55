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

mod data_plane {
    //! Stored histories of the data and graph workloads are re-checked from the file
    //! alone: the expected content of a dataset and the result of a graph come from
    //! the parameters the history records.

    use cairn_jepsen::content;
    use cairn_jepsen::history::{
        write_jsonl, Content, Counters, DataSpec, Extra, GraphSpec, NemesisNote, NemesisPhase, Op, OpFn, OpType,
    };

    struct Builder(Vec<Op>);

    impl Builder {
        fn push(&mut self, process: u64, kind: OpType, f: OpFn, key: &str, value: Option<String>, extra: Extra) {
            let index = self.0.len() as u64;
            self.0.push(Op {
                index,
                time_ns: (index + 1) * 1_000_000_000,
                process,
                kind,
                f,
                key: Some(key.to_string()),
                value,
                names: None,
                error: None,
                is_final: process >= 1_000_000,
                extra,
            });
        }

        fn text(&self) -> String {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let path = dir.path().join("history.jsonl");
            write_jsonl(&path, &self.0).expect("write the history");
            std::fs::read_to_string(&path).expect("read it back")
        }
    }

    fn spec() -> DataSpec {
        DataSpec {
            seed: 42,
            chunks: 3,
            rows_per_chunk: 100,
            plus: 0,
            replicas: 2,
            source: None,
        }
    }

    /// A put acknowledged, then a final read returning `read`.
    fn put_then_final_read(read: Content) -> Builder {
        let expected = content::expected(&spec());
        let mut b = Builder(Vec::new());
        let put = Extra {
            data: Some(spec()),
            content: Some(expected.clone()),
            ..Extra::default()
        };
        b.push(1, OpType::Invoke, OpFn::Put, "jd-1-1", Some(expected.label()), put);
        b.push(
            1,
            OpType::Ok,
            OpFn::Put,
            "jd-1-1",
            Some(expected.label()),
            Extra::default(),
        );
        b.push(1_000_000, OpType::Invoke, OpFn::Read, "jd-1-1", None, Extra::default());
        let label = read.label();
        let read = Extra {
            content: Some(read),
            ..Extra::default()
        };
        b.push(1_000_000, OpType::Ok, OpFn::Read, "jd-1-1", Some(label), read);
        b
    }

    #[test]
    fn a_dataset_read_back_whole_passes_and_a_partial_one_fails() {
        let expected = content::expected(&spec());
        let (output, text) = super::check(&put_then_final_read(expected.clone()).text());
        assert_eq!(output.status.code(), Some(0), "{text}");
        assert!(text.contains("final_verified=1"), "{text}");

        // The first two chunks only: what a read that silently skipped a chunk returns.
        let batches = content::batches(&spec()).expect("batches");
        let partial = content::of_batches(&batches[..2]);
        let (output, text) = super::check(&put_then_final_read(partial).text());
        assert_eq!(output.status.code(), Some(1), "{text}");
        assert!(text.contains("partial-read"), "{text}");
    }

    #[test]
    fn a_wrong_graph_result_fails_the_check() {
        let graph = GraphSpec {
            base: 1000,
            leaves: 5,
            length: 3,
            fanout: 2,
            tasks: cairn_jepsen::workload::graph::task_count(5, 3, 2),
        };
        let right = i64::try_from(graph.expected()).expect("small");
        for (result, code) in [(right, 0), (right + 1, 1)] {
            let mut b = Builder(Vec::new());
            let submitted = Extra {
                graph: Some(graph.clone()),
                ..Extra::default()
            };
            b.push(3, OpType::Invoke, OpFn::Submit, "jg-1", None, submitted.clone());
            b.push(3, OpType::Ok, OpFn::Submit, "jg-1", None, Extra::default());
            b.push(3, OpType::Invoke, OpFn::Gather, "jg-1", None, submitted);
            let read = Extra {
                result: Some(result),
                ..Extra::default()
            };
            b.push(3, OpType::Ok, OpFn::Gather, "jg-1", None, read);
            let (output, text) = super::check(&b.text());
            assert_eq!(output.status.code(), Some(code), "{text}");
            if code == 1 {
                assert!(text.contains("wrong-result"), "{text}");
            }
        }
    }

    #[test]
    fn recomputation_under_scheduler_faults_only_fails_the_check() {
        let mut b = Builder(Vec::new());
        let sample = |recomputed: u64| Extra {
            counters: Some(Counters {
                leader: 1,
                term: 3,
                tasks_recomputed: recomputed,
                ..Counters::default()
            }),
            ..Extra::default()
        };
        b.push(7, OpType::Invoke, OpFn::Status, "leader", None, Extra::default());
        b.push(7, OpType::Ok, OpFn::Status, "leader", None, sample(0));
        let kill = |phase| Extra {
            nemesis: Some(NemesisNote {
                phase,
                detail: "SIGKILL the leader: n1".to_string(),
                hosts: vec!["n1".to_string()],
            }),
            ..Extra::default()
        };
        b.push(9, OpType::Info, OpFn::Nemesis, "kill", None, kill(NemesisPhase::Start));
        b.push(9, OpType::Info, OpFn::Nemesis, "kill", None, kill(NemesisPhase::Stop));
        b.push(7, OpType::Invoke, OpFn::Status, "leader", None, Extra::default());
        b.push(7, OpType::Ok, OpFn::Status, "leader", None, sample(40));
        let (output, text) = super::check(&b.text());
        assert_eq!(output.status.code(), Some(1), "{text}");
        assert!(text.contains("recomputation-without-worker-loss"), "{text}");
        assert!(text.contains("tasks_recomputed=40"), "{text}");
    }
}
