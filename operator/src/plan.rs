//! Planning: from the validated pipeline, the observed Jobs and the previous status, decide
//! which Jobs to create, suspend, resume or delete, and whether the dashboard runs. Pure.
//!
//! Order: produce and sink first (in batch mode the sink is created suspended and resumed
//! when the producer succeeded, so `--until-caught-up` sees every record), then clean, then
//! load, then the dashboard (immediately in streaming mode). A stage whose Job succeeded for
//! the current stage key is never re-run: the success is remembered in the status, so a
//! TTL-deleted Job or an operator restart changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;

use crate::build::{self, JobOptions};
use crate::crd::{EcomPipelineStatus, Mode, StageStatus};
use crate::meta::Stage;
use crate::observe::{JobRun, JobState};
use crate::validate::Pipeline;

/// Stage states as written to the status.
pub mod state {
    use crate::crd::StageState;

    /// Not created yet: an upstream stage has not finished.
    pub const PENDING: StageState = StageState::Pending;
    /// Created suspended until an upstream stage finished.
    pub const WAITING: StageState = StageState::Waiting;
    /// Created, running (or about to).
    pub const RUNNING: StageState = StageState::Running;
    /// Suspended by `spec.suspend`.
    pub const SUSPENDED: StageState = StageState::Suspended;
    /// Finished successfully.
    pub const SUCCEEDED: StageState = StageState::Succeeded;
    /// Failed (backoff limit or deadline exceeded).
    pub const FAILED: StageState = StageState::Failed;
}

/// What to do with the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DashboardAction {
    /// Apply the Deployment and Service.
    Apply,
    /// Delete them (dashboard disabled).
    Delete,
    /// Leave them as they are.
    Keep,
}

/// What reconcile observed, as plain values.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The Jobs of this pipeline.
    pub jobs: &'a [JobRun],
    /// The status before this reconcile.
    pub previous: Option<&'a EcomPipelineStatus>,
    /// Now.
    pub now: Timestamp,
}

/// The decisions of one reconcile.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Jobs to create.
    pub create: Vec<Job>,
    /// Existing Jobs whose `spec.suspend` must change.
    pub set_suspend: Vec<(String, bool)>,
    /// Jobs to delete: unfinished Jobs of an outdated stage key, and failed Jobs whose
    /// execution settings changed (recreated on the next reconcile).
    pub delete: Vec<String>,
    /// The dashboard.
    pub dashboard: DashboardAction,
    /// Stage states to write to the status.
    pub stages: BTreeMap<String, StageStatus>,
    /// Streaming mode: the current clean+load cycle.
    pub cycle: Option<i64>,
    /// Reconcile again after this long even without a change (next streaming cycle).
    pub requeue_after: Option<Duration>,
}

fn secs(t: &str) -> Option<i64> {
    t.parse::<Timestamp>().ok().map(|t| t.as_second())
}

/// The streaming cycle to run now, and how long until the next one is due.
fn streaming_cycle(p: &Pipeline, obs: &Observed) -> (i64, Option<Duration>) {
    let prev = obs.previous;
    let cycle = prev.and_then(|s| s.cycle).unwrap_or(1).max(1);
    let interval = i64::from(
        p.spec
            .streaming
            .as_ref()
            .map_or(300, |s| s.interval_seconds),
    );
    let load = prev.and_then(|s| s.stages.get(Stage::Load.as_str()));
    let done_at = load
        .filter(|l| {
            l.state == state::SUCCEEDED
                && l.job.as_deref() == Some(&build::job_name(p, Stage::Load, Some(cycle)))
        })
        .and_then(|l| l.completion_time.as_deref().and_then(secs));
    match done_at {
        Some(t) => {
            let due = t + interval;
            let now = obs.now.as_second();
            if now >= due {
                (cycle + 1, None)
            } else {
                let wait = u64::try_from(due - now).unwrap_or(1);
                (cycle, Some(Duration::from_secs(wait)))
            }
        }
        None => (cycle, None),
    }
}

/// Plans one reconcile of `p`.
pub fn plan(p: &Pipeline, obs: &Observed) -> Plan {
    let streaming = p.spec.mode == Mode::Streaming;
    let (cycle, requeue_after) = if streaming {
        let (c, r) = streaming_cycle(p, obs);
        (Some(c), r)
    } else {
        (None, None)
    };
    let cycle_of = |s: Stage| match s {
        Stage::Clean | Stage::Load => cycle,
        _ => None,
    };
    let names: BTreeMap<Stage, String> = Stage::ALL
        .into_iter()
        .map(|s| (s, build::job_name(p, s, cycle_of(s))))
        .collect();
    let by_name: BTreeMap<&str, &JobRun> = obs.jobs.iter().map(|j| (j.name.as_str(), j)).collect();

    // Current state of every stage, from its Job or from the remembered status.
    let mut stages: BTreeMap<Stage, StageStatus> = BTreeMap::new();
    for s in Stage::ALL {
        let name = &names[&s];
        let remembered = obs
            .previous
            .and_then(|st| st.stages.get(s.as_str()))
            .filter(|st| st.job.as_deref() == Some(name.as_str()));
        let st = match by_name.get(name.as_str()) {
            Some(run) => {
                let (state, message) = match &run.state {
                    JobState::Succeeded => (state::SUCCEEDED, None),
                    JobState::Failed { reason, message } => {
                        (state::FAILED, Some(format!("{reason}: {message}")))
                    }
                    JobState::Suspended => (state::SUSPENDED, None),
                    JobState::Running => (state::RUNNING, run.waiting.clone()),
                };
                StageStatus {
                    state,
                    job: Some(name.clone()),
                    run_key: Some(p.stage_key(s).to_string()),
                    succeeded: run.succeeded,
                    completions: run.completions,
                    message,
                    completion_time: run.completion_time.clone(),
                    summary: run
                        .summary
                        .clone()
                        .or_else(|| remembered.and_then(|r| r.summary.clone())),
                }
            }
            None => match remembered.filter(|r| r.state == state::SUCCEEDED) {
                Some(r) => r.clone(),
                None => StageStatus {
                    state: state::PENDING,
                    job: Some(name.clone()),
                    run_key: Some(p.stage_key(s).to_string()),
                    ..StageStatus::default()
                },
            },
        };
        stages.insert(s, st);
    }

    let done = |stages: &BTreeMap<Stage, StageStatus>, s: Stage| {
        stages
            .get(&s)
            .is_some_and(|st| st.state == state::SUCCEEDED)
    };
    let exists = |s: Stage| by_name.contains_key(names[&s].as_str());
    let mut out = Plan {
        create: Vec::new(),
        set_suspend: Vec::new(),
        delete: Vec::new(),
        dashboard: DashboardAction::Keep,
        stages: BTreeMap::new(),
        cycle,
        requeue_after,
    };
    for s in Stage::ALL {
        let ready = match s {
            Stage::Produce | Stage::Sink => true,
            Stage::Clean if streaming => exists(Stage::Sink) || done(&stages, Stage::Sink),
            Stage::Clean => done(&stages, Stage::Produce) && done(&stages, Stage::Sink),
            Stage::Load => done(&stages, Stage::Clean),
        };
        let gated = !streaming && s == Stage::Sink && !done(&stages, Stage::Produce);
        let want_suspend = p.spec.suspend || gated;
        let name = names[&s].clone();
        let Some(st) = stages.get_mut(&s) else {
            continue;
        };
        match by_name.get(name.as_str()) {
            Some(run) => match &run.state {
                JobState::Succeeded => {}
                JobState::Failed { .. } => {
                    if run.exec_hash.as_deref() != Some(p.exec_hash(s).as_str()) {
                        out.delete.push(name);
                        st.message = Some(format!(
                            "{} (replacing the Job: its settings changed)",
                            st.message.clone().unwrap_or_default()
                        ));
                    }
                }
                JobState::Running | JobState::Suspended => {
                    if run.suspend != want_suspend {
                        out.set_suspend.push((name, want_suspend));
                    }
                    if want_suspend {
                        st.state = if p.spec.suspend {
                            state::SUSPENDED
                        } else {
                            state::WAITING
                        };
                    }
                }
            },
            None if st.state == state::SUCCEEDED => {}
            None if ready && !p.spec.suspend => {
                let opts = JobOptions {
                    suspend: want_suspend,
                    cycle: cycle_of(s),
                };
                out.create.push(build::stage_job(p, s, opts));
                st.state = if gated {
                    state::WAITING
                } else {
                    state::RUNNING
                };
                st.message = gated.then(|| "waiting for produce to succeed".to_string());
            }
            None => {
                st.message = Some(if p.spec.suspend {
                    "suspended".to_string()
                } else {
                    "waiting for the previous stage".to_string()
                });
            }
        }
    }

    // Unfinished Jobs of an outdated stage key or cycle stop.
    let current: BTreeSet<&str> = names.values().map(String::as_str).collect();
    for run in obs.jobs {
        if !current.contains(run.name.as_str())
            && matches!(run.state, JobState::Running | JobState::Suspended)
        {
            out.delete.push(run.name.clone());
        }
    }

    let d = &p.spec.dashboard;
    out.dashboard = if !d.enabled {
        DashboardAction::Delete
    } else if streaming || done(&stages, Stage::Load) {
        DashboardAction::Apply
    } else {
        DashboardAction::Keep
    };
    out.stages = stages
        .into_iter()
        .map(|(s, st)| (s.as_str().to_string(), st))
        .collect();
    // Pods trigger no reconcile (their Jobs do): while a stage runs, look again soon, so a pod
    // stuck on its image or its scheduling shows in the status.
    if out.stages.values().any(|st| st.state == state::RUNNING) {
        out.requeue_after = Some(
            out.requeue_after
                .map_or(RUNNING_RECHECK, |d| d.min(RUNNING_RECHECK)),
        );
    }
    out
}

/// How soon a pipeline with a running stage is reconciled again.
pub const RUNNING_RECHECK: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::example;
    use crate::validate::validate;
    use kube::ResourceExt;

    fn run(p: &Pipeline, s: Stage, state: JobState, suspend: bool) -> JobRun {
        JobRun {
            name: build::job_name(p, s, None),
            state,
            succeeded: 1,
            completions: 1,
            completion_time: Some("2026-01-01T00:00:00Z".into()),
            exec_hash: Some(p.exec_hash(s)),
            suspend,
            summary: Some(crate::crd::StageCounts {
                records: Some(10),
                ..Default::default()
            }),
            waiting: None,
        }
    }

    fn now() -> Timestamp {
        "2026-01-01T00:10:00Z".parse().expect("time")
    }

    fn created(plan: &Plan) -> Vec<String> {
        plan.create
            .iter()
            .map(|j| j.labels()["app.kubernetes.io/component"].clone())
            .collect()
    }

    #[test]
    fn first_reconcile_creates_produce_and_a_gated_sink() {
        let p = validate(&example()).expect("valid");
        let obs = Observed {
            jobs: &[],
            previous: None,
            now: now(),
        };
        let plan = plan(&p, &obs);
        assert_eq!(created(&plan), ["produce", "sink"]);
        let sink = &plan.create[1];
        assert_eq!(sink.spec.as_ref().and_then(|s| s.suspend), Some(true));
        assert_eq!(plan.stages["sink"].state, state::WAITING);
        assert_eq!(plan.stages["clean"].state, state::PENDING);
        assert_eq!(plan.dashboard, DashboardAction::Keep);
    }

    #[test]
    fn sink_resumes_after_produce_and_clean_follows_both() {
        let p = validate(&example()).expect("valid");
        let jobs = [
            run(&p, Stage::Produce, JobState::Succeeded, false),
            run(&p, Stage::Sink, JobState::Suspended, true),
        ];
        let obs = Observed {
            jobs: &jobs,
            previous: None,
            now: now(),
        };
        let plan1 = plan(&p, &obs);
        assert!(plan1.create.is_empty());
        assert_eq!(plan1.set_suspend, [(jobs[1].name.clone(), false)]);
        let jobs = [
            run(&p, Stage::Produce, JobState::Succeeded, false),
            run(&p, Stage::Sink, JobState::Succeeded, false),
        ];
        let obs = Observed {
            jobs: &jobs,
            previous: None,
            now: now(),
        };
        assert_eq!(created(&plan(&p, &obs)), ["clean"]);
    }

    #[test]
    fn remembered_success_is_never_rerun_after_the_job_is_gone() {
        let p = validate(&example()).expect("valid");
        let jobs: Vec<_> = Stage::ALL
            .into_iter()
            .map(|s| run(&p, s, JobState::Succeeded, false))
            .collect();
        let obs = Observed {
            jobs: &jobs,
            previous: None,
            now: now(),
        };
        let first = plan(&p, &obs);
        assert_eq!(first.dashboard, DashboardAction::Apply);
        let status = EcomPipelineStatus {
            stages: first.stages.clone(),
            ..EcomPipelineStatus::default()
        };
        // Every Job TTL-deleted: nothing is created again.
        let obs = Observed {
            jobs: &[],
            previous: Some(&status),
            now: now(),
        };
        let second = plan(&p, &obs);
        assert!(second.create.is_empty(), "{:?}", created(&second));
        assert_eq!(second.stages, first.stages);
    }

    #[test]
    fn suspend_creates_nothing_and_suspends_running_jobs() {
        let mut obj = example();
        obj.spec.suspend = true;
        let p = validate(&obj).expect("valid");
        let obs = Observed {
            jobs: &[],
            previous: None,
            now: now(),
        };
        assert!(plan(&p, &obs).create.is_empty());
        let jobs = [run(&p, Stage::Produce, JobState::Running, false)];
        let obs = Observed {
            jobs: &jobs,
            previous: None,
            now: now(),
        };
        let plan = plan(&p, &obs);
        assert_eq!(plan.set_suspend, [(jobs[0].name.clone(), true)]);
        assert_eq!(plan.stages["produce"].state, state::SUSPENDED);
    }

    #[test]
    fn failed_job_is_replaced_only_when_its_settings_changed() {
        let p = validate(&example()).expect("valid");
        let failed = JobState::Failed {
            reason: "BackoffLimitExceeded".into(),
            message: "x".into(),
        };
        let jobs = [run(&p, Stage::Produce, failed, false)];
        let obs = Observed {
            jobs: &jobs,
            previous: None,
            now: now(),
        };
        let same = plan(&p, &obs);
        assert!(same.delete.is_empty() && same.create.iter().all(|j| j.name_any() != jobs[0].name));
        assert_eq!(same.stages["produce"].state, state::FAILED);
        let mut obj = example();
        obj.spec.image = "fixed:2".into();
        let fixed = validate(&obj).expect("valid");
        assert_eq!(plan(&fixed, &obs).delete, [jobs[0].name.clone()]);
    }

    #[test]
    fn streaming_starts_the_dashboard_and_repeats_clean_and_load() {
        let mut obj = example();
        obj.spec.mode = Mode::Streaming;
        obj.spec.streaming = Some(crate::crd::StreamingSpec {
            interval_seconds: 60,
        });
        let p = validate(&obj).expect("valid");
        let obs = Observed {
            jobs: &[],
            previous: None,
            now: now(),
        };
        let first = plan(&p, &obs);
        assert_eq!(created(&first), ["produce", "sink"]);
        assert_eq!(
            first.create[1].spec.as_ref().and_then(|s| s.suspend),
            Some(false)
        );
        assert_eq!(first.dashboard, DashboardAction::Apply);
        assert_eq!(first.cycle, Some(1));
        // Cycle 1 loaded at 00:09:30; the next cycle is due at 00:10:30.
        let mut status = EcomPipelineStatus {
            cycle: Some(1),
            stages: first.stages.clone(),
            ..EcomPipelineStatus::default()
        };
        let load = status.stages.get_mut("load").expect("load");
        load.state = state::SUCCEEDED;
        load.job = Some(build::job_name(&p, Stage::Load, Some(1)));
        load.completion_time = Some("2026-01-01T00:09:30Z".into());
        let obs = Observed {
            jobs: &[],
            previous: Some(&status),
            now: now(),
        };
        let waiting = plan(&p, &obs);
        assert_eq!(waiting.cycle, Some(1));
        // The next cycle is due in 30 s; the running sink brings the recheck closer.
        assert_eq!(waiting.requeue_after, Some(RUNNING_RECHECK));
        let later = Observed {
            now: "2026-01-01T00:11:00Z".parse().expect("time"),
            ..obs
        };
        let next = plan(&p, &later);
        assert_eq!(next.cycle, Some(2));
        assert!(next.stages["clean"]
            .job
            .as_deref()
            .is_some_and(|j| j.ends_with("-c2")));
    }

    #[test]
    fn outdated_running_jobs_are_deleted() {
        let p = validate(&example()).expect("valid");
        let mut old = run(&p, Stage::Produce, JobState::Running, false);
        old.name = "demo-produce-00000000".into();
        let jobs = [old];
        let obs = Observed {
            jobs: &jobs,
            previous: None,
            now: now(),
        };
        assert_eq!(plan(&p, &obs).delete, ["demo-produce-00000000"]);
    }
}
