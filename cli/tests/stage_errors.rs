//! How the stage commands end on errors, run on local files only: a permanent
//! error (a path that is not a directory) fails on the first attempt, a
//! transient one (HDFS at a closed port) is retried up to `--attempts`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn ecom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ecom"))
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// Runs a stage command, checks it failed, and returns its summary: the last
/// line of standard output, which must equal the summary file's content.
fn failed_summary(cmd: &mut Command, summary_file: &Path) -> Value {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .arg("--summary-file")
        .arg(summary_file)
        .output()
        .expect("run ecom");
    let stdout = String::from_utf8_lossy(&stdout);
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(
        !status.success(),
        "the stage must fail\nstdout: {stdout}\nstderr: {stderr}"
    );
    // A pipe is no terminal: the log (a pod's log, its termination message) has no colours.
    // (The retried stages below log a WARN line per failed attempt.)
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a piped log: {stderr:?}"
    );
    let last = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no summary line\nstderr: {stderr}"));
    let summary: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last stdout line is not JSON ({e}): {last}"));
    let written = std::fs::read_to_string(summary_file).expect("read the summary file");
    assert_eq!(written, last, "the summary file holds the same summary");
    let mut keys: Vec<&str> = summary
        .as_object()
        .expect("summary is a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["attempts", "error", "ok", "stage"], "{summary}");
    assert_eq!(summary["ok"], false, "{summary}");
    summary
}

#[test]
fn load_from_a_regular_file_fails_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("orders.tsv");
    std::fs::write(&input, "order_id\tamount\n1\t9.99\n").expect("write input");
    let summary = failed_summary(
        ecom()
            .arg("load")
            .arg("--input")
            .arg(&input)
            .args(["--hbase-thrift", &format!("127.0.0.1:{}", closed_port())])
            .args(["--attempts", "3"]),
        &dir.path().join("summary.json"),
    );
    assert_eq!(summary["stage"], "load", "{summary}");
    assert_eq!(summary["attempts"], 1, "{summary}");
    let error = summary["error"].as_str().expect("error text");
    assert!(
        error.contains(&input.display().to_string()),
        "the error names the input: {error}"
    );
    assert!(
        error.contains("Not a directory"),
        "the error says why: {error}"
    );
    assert!(
        error.ends_with("(permanent error, not retried)"),
        "the error says it was not retried: {error}"
    );
}

#[test]
fn clean_into_a_regular_file_fails_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = dir.path().join("clean.parquet");
    std::fs::write(&output, b"PAR1").expect("write a file where the output goes");
    // The output's manifest is read before anything from the input: HDFS at a
    // closed port is never reached.
    let summary = failed_summary(
        ecom()
            .arg("clean")
            .args([
                "--input",
                &format!("hdfs://127.0.0.1:{}/raw", closed_port()),
            ])
            .arg("--output")
            .arg(&output)
            .args(["--attempts", "3"]),
        &dir.path().join("summary.json"),
    );
    assert_eq!(summary["stage"], "clean", "{summary}");
    assert_eq!(summary["attempts"], 1, "{summary}");
    let error = summary["error"].as_str().expect("error text");
    assert!(
        error.contains(&output.display().to_string()),
        "the error names the output: {error}"
    );
    assert!(
        error.ends_with("(permanent error, not retried)"),
        "the error says it was not retried: {error}"
    );
}

#[test]
fn clean_into_unreachable_hdfs_is_retried() {
    let dir = tempfile::tempdir().expect("temp dir");
    let raw = dir.path().join("raw");
    std::fs::create_dir(&raw).expect("create raw dir");
    let address = format!("127.0.0.1:{}", closed_port());
    let summary = failed_summary(
        ecom()
            .arg("clean")
            .arg("--input")
            .arg(&raw)
            .args(["--output", &format!("hdfs://{address}/clean")])
            .args([
                "--attempts",
                "2",
                "--call-timeout",
                "1s",
                "--deadline",
                "5m",
            ]),
        &dir.path().join("summary.json"),
    );
    assert_eq!(summary["stage"], "clean", "{summary}");
    assert_eq!(summary["attempts"], 2, "{summary}");
    let error = summary["error"].as_str().expect("error text");
    assert!(error.contains(&address), "the error names HDFS: {error}");
    assert!(
        error.ends_with("(after 2 attempts)"),
        "the error counts the attempts: {error}"
    );
}

/// Every file under `dir` with its content, sorted by path.
fn tree(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("list") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let data = std::fs::read(&p).expect("read");
                out.push((p, data));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn clean_refuses_an_output_that_overlaps_its_input() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    std::fs::write(
        data.join("in.tsv"),
        "1\t7\tBooks\t12.5\tCash\tPending\t2024-01-01 10:00:00\n",
    )
    .expect("write input");
    // A clean output beside it, and then the output cleaned into itself: refused, and the
    // good data stays as it was.
    let clean = dir.path().join("clean");
    let ok = ecom()
        .args(["clean", "--summary-file", "/dev/null", "--input"])
        .arg(&data)
        .arg("--output")
        .arg(&clean)
        .output()
        .expect("run ecom");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let before = tree(&clean);
    let cases = [
        (clean.clone(), clean.clone(), "they are the same directory"),
        (
            data.clone(),
            data.join("clean"),
            "the output is inside the input",
        ),
        (
            data.join("in.tsv"),
            data.clone(),
            "the input is inside the output",
        ),
        (
            clean.join("x/.."),
            clean.clone(),
            "they are the same directory",
        ),
    ];
    for (i, (input, output, relation)) in cases.iter().enumerate() {
        let summary = failed_summary(
            ecom()
                .arg("clean")
                .arg("--input")
                .arg(input)
                .arg("--output")
                .arg(output)
                .args(["--attempts", "3"]),
            &dir.path().join(format!("summary-{i}.json")),
        );
        assert_eq!(summary["attempts"], 1, "{summary}");
        let error = summary["error"].as_str().expect("error text");
        assert!(
            error.contains(&format!("--input {}", input.display()))
                && error.contains(&format!("--output {}", output.display()))
                && error.contains(relation),
            "the error names both and why: {error}"
        );
        assert!(error.ends_with("(permanent error, not retried)"), "{error}");
    }
    assert_eq!(tree(&clean), before, "the clean output is untouched");
    assert!(!data.join("clean").exists());
}
