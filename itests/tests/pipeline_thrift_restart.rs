//! Fault test: the HBase Thrift server is stopped during `ecom load` and
//! started again; the load retries, then completes with the right counts.
//!
//! Kept in its own test binary so that no other test uses HBase meanwhile.
//! It stops only the Thrift process named by the harness's pid file and
//! restarts it with the same command line, environment and directory.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

fn state_dir() -> PathBuf {
    std::env::var("ECOM_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(service_env("HOME")).join(".cache/ecom-pipeline/state"))
}

fn split_nul(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn port_open(addr: &str) -> bool {
    addr.parse()
        .ok()
        .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_millis(300)).ok())
        .is_some()
}

/// Stops the Thrift server, waits `down`, starts it again with the same command.
fn restart_thrift(down: Duration) {
    let pid_file = state_dir().join("run/thrift.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("thrift pid file")
        .trim()
        .parse()
        .expect("pid");
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let cmdline = split_nul(&std::fs::read(proc_dir.join("cmdline")).expect("cmdline"));
    let environ = split_nul(&std::fs::read(proc_dir.join("environ")).expect("environ"));
    let cwd = std::fs::read_link(proc_dir.join("cwd")).expect("cwd");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    while proc_dir.exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if proc_dir.exists() {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    eprintln!("thrift (pid {pid}) stopped");
    std::thread::sleep(down);
    // Started like scripts/services.sh does: detached, in its own session, log appended.
    let log = state_dir().join("logs/thrift.log");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"log="$1"; shift; setsid "$@" >>"$log" 2>&1 </dev/null & echo $!"#)
        .arg("sh")
        .arg(&log)
        .args(&cmdline)
        .current_dir(cwd)
        .env_clear()
        .envs(environ.iter().filter_map(|kv| kv.split_once('=')))
        .output()
        .expect("restart thrift");
    let new_pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && !new_pid.is_empty(),
        "restart failed"
    );
    std::fs::write(&pid_file, format!("{new_pid}\n")).expect("pid file");
    let address = service_env("HBASE_THRIFT");
    let started = Instant::now();
    while !port_open(&address) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "thrift did not come back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("thrift restarted (pid {new_pid})");
}

#[test]
fn load_survives_a_thrift_restart() {
    let run = Run::new("thrift");
    run.produce_generated(200_000, &["--dirty-rate", "0.1"]);
    ecom_json(&run.sink_args(50_000));
    let cleaned = ecom_json(&run.clean_args());
    let rows_out = cleaned["report"]["rows_out"].as_u64().expect("rows_out");

    let load = run.load_args();
    let child = spawn_ecom(&[&load[..], &["--concurrency", "2", "--deadline", "5m"]].concat());
    // Let the load write a part of the rows, then take Thrift away for a while.
    std::thread::sleep(Duration::from_secs(3));
    restart_thrift(Duration::from_secs(5));
    let (summary, stderr) = wait_ecom(child);
    assert!(
        stderr.contains("retrying"),
        "the load never saw the outage:\n{stderr}"
    );
    assert_eq!(summary["rows"], rows_out, "{summary}");
    assert_eq!(run.fact_row_count(), rows_out);
    run.cleanup();
}
