//! Fault tests on the real services: components of the harness are killed and started again
//! with the same command line, environment and directory (their data kept), while a stage
//! runs; the results must still equal the truth.
//!
//! Kept in their own test binary (cargo runs test binaries one after another), and the tests
//! here take a lock, so no other test uses the services while they are down.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ecom_jobs::load::{AGG_FAMILY, REPORT_PREFIX};
use ecom_jobs::store::kafka::{KafkaConfig, KafkaLog};
use ecom_jobs::store::table::scan_prefix;
use ecom_jobs::store::{FileStore, MessageLog, TableStore};

/// One test at a time: each takes services down.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

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

/// The address a harness component serves on.
fn address_of(component: &str) -> String {
    let hdfs = service_env("HDFS_URL");
    let host = hdfs
        .trim_start_matches("hdfs://")
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string();
    match component {
        "kafka" => service_env("KAFKA_BOOTSTRAP"),
        "namenode" => hdfs
            .trim_start_matches("hdfs://")
            .trim_end_matches('/')
            .to_string(),
        "datanode" => format!(
            "{host}:{}",
            std::env::var("ECOM_HDFS_DATANODE_PORT").unwrap_or_else(|_| "9866".into())
        ),
        "thrift" => service_env("HBASE_THRIFT"),
        // Master, region server and ZooKeeper in one JVM; the region server's port last.
        "hbase" => format!(
            "127.0.0.1:{}",
            std::env::var("ECOM_HBASE_REGIONSERVER_PORT").unwrap_or_else(|_| "16020".into())
        ),
        other => panic!("no address known for {other}"),
    }
}

/// Stops the harness component `name` with `signal` (`TERM` or `KILL`), waits `down`, and
/// starts it again as `scripts/services.sh` did: detached, in its own session, log appended.
fn restart_component(name: &str, signal: &str, down: Duration) {
    let pid_file = state_dir().join(format!("run/{name}.pid"));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{name} pid file: {e}"))
        .trim()
        .parse()
        .expect("pid");
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let cmdline = split_nul(&std::fs::read(proc_dir.join("cmdline")).expect("cmdline"));
    let environ = split_nul(&std::fs::read(proc_dir.join("environ")).expect("environ"));
    let cwd = std::fs::read_link(proc_dir.join("cwd")).expect("cwd");
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    while proc_dir.exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if proc_dir.exists() {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    std::thread::sleep(down);
    let log = state_dir().join(format!("logs/{name}.log"));
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
        .unwrap_or_else(|e| panic!("restart {name}: {e}"));
    let new_pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && !new_pid.is_empty(),
        "restart of {name} failed"
    );
    std::fs::write(&pid_file, format!("{new_pid}\n")).expect("pid file");
    let address = address_of(name);
    let started = Instant::now();
    while !port_open(&address) {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{name} did not come back at {address}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("{name} killed with SIG{signal} and restarted (pid {new_pid})");
}

#[test]
fn load_survives_a_thrift_restart() {
    let _serial = serial();
    let run = Run::new("thrift");
    run.produce_generated(200_000, &["--dirty-rate", "0.1"]);
    ecom_json(&run.sink_args(50_000));
    let cleaned = ecom_json(&run.clean_args());
    let rows_out = cleaned["report"]["rows_out"].as_u64().expect("rows_out");

    let load = run.load_args();
    let child = spawn_ecom(&[&load[..], &["--concurrency", "2", "--deadline", "5m"]].concat());
    // Let the load write a part of the rows, then take Thrift away for a while.
    std::thread::sleep(Duration::from_secs(3));
    restart_component("thrift", "TERM", Duration::from_secs(5));
    let (summary, stderr) = wait_ecom(child);
    assert!(
        stderr.contains("retrying"),
        "the load never saw the outage:\n{stderr}"
    );
    assert_eq!(summary["rows"], rows_out, "{summary}");
    assert_eq!(run.fact_row_count(), rows_out);
    run.cleanup();
}

/// Keeps `ecom stream` running, as a StatefulSet's kubelet would: a process that exits with
/// an error or is killed is started again, until `stop` is set; then the running one gets
/// SIGTERM. Returns the summaries of the processes that ended by themselves.
struct Supervisor {
    pid: Arc<Mutex<Option<u32>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<serde_json::Value>>,
}

impl Supervisor {
    fn start(args: Vec<String>) -> Supervisor {
        let pid = Arc::new(Mutex::new(None));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, s) = (pid.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut summaries = Vec::new();
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let child = ecom_cmd(&args)
                    .args(["--attempts", "3", "--deadline", "20s"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("spawn stream");
                *p.lock().expect("pid") = Some(child.id());
                let out = child.wait_with_output().expect("wait stream");
                *p.lock().expect("pid") = None;
                let stdout = String::from_utf8_lossy(&out.stdout);
                if let Some(v) = stdout
                    .lines()
                    .last()
                    .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                {
                    summaries.push(v);
                }
                if !out.status.success() {
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
            summaries
        });
        Supervisor { pid, stop, thread }
    }

    fn signal(&self, signal: &str) -> bool {
        let Some(pid) = *self.pid.lock().expect("pid") else {
            return false;
        };
        std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn finish(self) -> Vec<serde_json::Value> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // A process started just before `stop` was set gets its SIGTERM too.
        while !self.thread.is_finished() {
            self.signal("TERM");
            std::thread::sleep(Duration::from_millis(300));
        }
        self.thread.join().expect("supervisor")
    }
}

// One scenario (a few minutes): faults at random moments while records stream, then every
// count against the truth.
#[test]
fn streaming_loses_and_duplicates_nothing_through_kill_9_of_the_stage_and_the_services() {
    let _serial = serial();
    let run = Run::new("chaos");
    // ECOM_CHAOS_ROUNDS=30 makes it a soak of about half an hour: that many rounds of faults
    // and 120,000 rows per round.
    let rounds: u64 = std::env::var("ECOM_CHAOS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1)
        .max(1);
    let rows = 120_000u64 * rounds;
    let (input, truth) = run.generate(&[
        "--rows",
        &rows.to_string(),
        "--dirty-rate",
        "0.2",
        "--seed",
        "13",
    ]);
    let producer = spawn_ecom(
        &[
            &run.produce_args(&input)[..],
            // Produce never retries (a retry would send its records again), so its delivery
            // timeout must outlast a broker restart, which replays its logs after SIGKILL.
            &[
                "--rate",
                "3000",
                "--call-timeout",
                "5m",
                "--deadline",
                "60m",
            ],
        ]
        .concat(),
    );
    let stream = Supervisor::start(run.stream_args());
    // Every component once per round, in a random order, 2 to 5 s apart, while the producer
    // runs.
    let round = [
        "stream", "kafka", "datanode", "namenode", "thrift", "hbase", "stream",
    ];
    let mut components: Vec<&str> = (0..rounds).flat_map(|_| round).collect();
    let mut faults: BTreeMap<&str, u32> = BTreeMap::new();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for i in (1..components.len()).rev() {
        components.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    eprintln!("fault order: {components:?}");
    let started = Instant::now();
    for component in components {
        std::thread::sleep(Duration::from_millis(2000 + next() % 3000));
        if component == "stream" {
            if !stream.signal("KILL") {
                continue;
            }
            eprintln!("stream killed with SIGKILL at {:?}", started.elapsed());
        } else {
            restart_component(
                component,
                "KILL",
                Duration::from_millis(500 + next() % 2000),
            );
        }
        *faults.entry(component).or_default() += 1;
    }
    let (produced, _) = wait_ecom(producer);
    eprintln!("producer: {produced}");
    // Records in the topic (a producer retry after a broker kill re-sends its records).
    let log = KafkaLog::open(KafkaConfig::new(service_env("KAFKA_BOOTSTRAP"), &run.topic))
        .expect("topic");
    let in_topic: u64 = (0..log.partitions())
        .map(|p| log.end_offset(p).expect("end offset"))
        .sum();
    assert!(in_topic >= rows);
    let caught_up = Instant::now();
    let mark = || run.stream_mark();
    while mark().is_none_or(|m| m.offsets.values().sum::<u64>() < in_topic) {
        assert!(
            caught_up.elapsed() < Duration::from_secs(180),
            "the stream did not catch up: {:?}",
            mark()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let catch_up = caught_up.elapsed();
    let summaries = stream.finish();

    // Every record of the topic in exactly one committed raw file.
    let raw = run.raw_files();
    assert_eq!(line_count(&raw) as u64, in_topic);
    let mut next_offset: BTreeMap<u32, u64> = BTreeMap::new();
    for (name, _) in &raw {
        let f = ecom_jobs::sink::RawFileName::parse(name).expect("raw file name");
        let n = next_offset.entry(f.partition).or_default();
        assert_eq!(f.first, *n, "{name} overlaps or leaves a gap");
        *n = f.last + 1;
    }
    let store = run.hdfs_store();
    assert_eq!(
        store
            .list_hidden(&format!("{}/raw", run.base))
            .expect("list"),
        vec![],
        "temporary raw files left"
    );
    let staging = format!("{}/clean/{}", run.base, ecom_jobs::incremental::STAGING_DIR);
    assert!(store.list_dirs(&staging).unwrap_or_default().is_empty());
    // The table holds each clean row once; the aggregates and reports add up to the truth.
    let loaded = run.fact_row_count();
    let agg = run.stored_aggregates();
    let agg_table = run
        .hbase()
        .table(&format!("{}_agg", run.table))
        .expect("agg table");
    let (mut rows_in, mut rows_out) = (0, 0);
    for r in scan_prefix(&*agg_table, REPORT_PREFIX.as_bytes(), 100_000).expect("reports") {
        let report: ecom_jobs::clean::QualityReport =
            serde_json::from_slice(&r.cells[&format!("{AGG_FAMILY}:json")]).expect("report");
        rows_in += report.rows_in;
        rows_out += report.rows_out;
    }
    let mark = mark().expect("mark");
    let max_lag = ecom_jobs::stream::LogEntry::read_range(&*agg_table, "0-1", 1, mark.batches)
        .expect("log")
        .iter()
        .filter_map(|e| e.lag_ms)
        .max();
    eprintln!(
        "chaos: faults {faults:?}; records in the topic {in_topic} ({rows} rows generated); \
         clean rows expected {}, loaded {loaded}, lost {}, duplicated {}; \
         catch-up after the last fault {catch_up:?}; largest micro-batch lag {max_lag:?} ms; \
         {} stage processes ended by themselves",
        truth.full.rows_out,
        truth.full.rows_out.saturating_sub(loaded),
        loaded.saturating_sub(truth.full.rows_out),
        summaries.len(),
    );
    assert!(faults.len() >= 6, "every component was hit: {faults:?}");
    assert_eq!(loaded, truth.full.rows_out);
    assert_eq!(agg.total.orders, truth.full.rows_out);
    assert_eq!(agg.total.revenue_cents, truth.clean_revenue_cents);
    assert_eq!((rows_in, rows_out), (in_topic, truth.full.rows_out));
    run.cleanup();
}
