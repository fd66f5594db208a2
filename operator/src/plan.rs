//! Planning: from the validated pipeline, the observed Jobs, the stream StatefulSet and the
//! previous status, decide which Jobs to create, suspend, resume or delete, what to do with
//! the stream StatefulSet ([`stream`]) and whether the dashboard runs. Pure.
//!
//! Batch mode: produce and sink first (the sink is created suspended and resumed when the
//! producer succeeded, so `--until-caught-up` sees every record), then clean, then load, then
//! the dashboard. A stage whose Job succeeded for the current stage key is never re-run: the
//! success is remembered in the status, so a TTL-deleted Job or an operator restart changes
//! nothing. Streaming mode: the produce Job, the stream StatefulSet and the dashboard at once;
//! no sink, clean or load Job. Sink, clean and load Jobs never run beside a stream pod.

pub mod stream;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;

use crate::build::{self, JobOptions};
use crate::crd::{EcomPipelineStatus, StageStatus};
use crate::meta::Stage;
use crate::observe::{ActivePods, JobRun, JobState, StreamRun};
use crate::validate::Pipeline;

pub use stream::{StreamAction, StreamPlan};

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
    /// The StatefulSet with the stream stage's name, if one exists (owned or not).
    pub stream: Option<&'a StreamRun>,
    /// The pipeline's pods that have not finished.
    pub active: ActivePods,
    /// The status before this reconcile.
    pub previous: Option<&'a EcomPipelineStatus>,
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
    /// The stream StatefulSet.
    pub stream: StreamPlan,
    /// Stage states to write to the status.
    pub stages: BTreeMap<String, StageStatus>,
    /// Reconcile again after this long even without a change.
    pub requeue_after: Option<Duration>,
}

/// Plans one reconcile of `p`.
pub fn plan(p: &Pipeline, obs: &Observed) -> Plan {
    let streaming = p.is_streaming();
    // Streaming mode runs only the producer as a Job; the stream StatefulSet does the rest.
    let job_stages: &[Stage] = if streaming {
        &[Stage::Produce]
    } else {
        &Stage::ALL
    };
    let names: BTreeMap<Stage, String> = job_stages
        .iter()
        .map(|&s| (s, build::job_name(p, s)))
        .collect();
    let by_name: BTreeMap<&str, &JobRun> = obs.jobs.iter().map(|j| (j.name.as_str(), j)).collect();

    // Current state of every stage, from its Job or from the remembered status.
    let mut stages: BTreeMap<Stage, StageStatus> = BTreeMap::new();
    for (&s, name) in &names {
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
                    ..StageStatus::default()
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
    let mut out = Plan {
        create: Vec::new(),
        set_suspend: Vec::new(),
        delete: Vec::new(),
        dashboard: DashboardAction::Keep,
        stream: stream::plan_stream(p, obs),
        stages: BTreeMap::new(),
        requeue_after: None,
    };
    // Batch stages that write raw or clean files wait until no stream pod runs (after a
    // switch from streaming mode): two writers must never own the same partition.
    let stream_pods = obs.active.stream;
    for (&s, name) in &names {
        let writes = matches!(s, Stage::Sink | Stage::Clean | Stage::Load);
        let ready = match s {
            Stage::Produce | Stage::Sink => true,
            Stage::Clean => done(&stages, Stage::Produce) && done(&stages, Stage::Sink),
            Stage::Load | Stage::Stream => done(&stages, Stage::Clean),
        };
        let blocked = writes && stream_pods > 0;
        let gated = !streaming && s == Stage::Sink && !done(&stages, Stage::Produce);
        let want_suspend = p.spec.suspend || gated;
        let name = name.clone();
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
            None if ready && blocked && !p.spec.suspend => {
                st.message = Some(format!("waiting for {stream_pods} stream pod(s) to stop"));
                out.requeue_after = Some(RUNNING_RECHECK);
            }
            None if ready && !p.spec.suspend => {
                let opts = JobOptions {
                    suspend: want_suspend,
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

    // Unfinished Jobs of an outdated stage key stop, and in streaming mode every unfinished
    // sink, clean or load Job.
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
    if let Some(st) = out.stream.status.clone() {
        stages.insert(Stage::Stream, st);
    }
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
    use crate::crd::Mode;
    use crate::test_support::example;
    use crate::validate::validate;
    use kube::ResourceExt;

    fn run(p: &Pipeline, s: Stage, state: JobState, suspend: bool) -> JobRun {
        JobRun {
            name: build::job_name(p, s),
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

    /// What a reconcile sees: `jobs`, no StatefulSet, no pod running.
    fn seen<'a>(jobs: &'a [JobRun], previous: Option<&'a EcomPipelineStatus>) -> Observed<'a> {
        Observed {
            jobs,
            stream: None,
            active: ActivePods::default(),
            previous,
        }
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
        let obs = seen(&[], None);
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
        let obs = seen(&jobs, None);
        let plan1 = plan(&p, &obs);
        assert!(plan1.create.is_empty());
        assert_eq!(plan1.set_suspend, [(jobs[1].name.clone(), false)]);
        let jobs = [
            run(&p, Stage::Produce, JobState::Succeeded, false),
            run(&p, Stage::Sink, JobState::Succeeded, false),
        ];
        let obs = seen(&jobs, None);
        assert_eq!(created(&plan(&p, &obs)), ["clean"]);
    }

    #[test]
    fn remembered_success_is_never_rerun_after_the_job_is_gone() {
        let p = validate(&example()).expect("valid");
        let jobs: Vec<_> = Stage::ALL
            .into_iter()
            .map(|s| run(&p, s, JobState::Succeeded, false))
            .collect();
        let obs = seen(&jobs, None);
        let first = plan(&p, &obs);
        assert_eq!(first.dashboard, DashboardAction::Apply);
        let status = EcomPipelineStatus {
            stages: first.stages.clone(),
            ..EcomPipelineStatus::default()
        };
        // Every Job TTL-deleted: nothing is created again.
        let obs = seen(&[], Some(&status));
        let second = plan(&p, &obs);
        assert!(second.create.is_empty(), "{:?}", created(&second));
        assert_eq!(second.stages, first.stages);
    }

    #[test]
    fn suspend_creates_nothing_and_suspends_running_jobs() {
        let mut obj = example();
        obj.spec.suspend = true;
        let p = validate(&obj).expect("valid");
        let obs = seen(&[], None);
        assert!(plan(&p, &obs).create.is_empty());
        let jobs = [run(&p, Stage::Produce, JobState::Running, false)];
        let obs = seen(&jobs, None);
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
        let obs = seen(&jobs, None);
        let same = plan(&p, &obs);
        assert!(same.delete.is_empty() && same.create.iter().all(|j| j.name_any() != jobs[0].name));
        assert_eq!(same.stages["produce"].state, state::FAILED);
        let mut obj = example();
        obj.spec.image = "fixed:2".into();
        let fixed = validate(&obj).expect("valid");
        assert_eq!(plan(&fixed, &obs).delete, [jobs[0].name.clone()]);
    }

    fn streaming(obj: &mut crate::crd::EcomPipeline) -> Pipeline {
        obj.spec.mode = Mode::Streaming;
        obj.spec.streaming = Some(crate::crd::StreamingSpec {
            shards: 2,
            ..crate::crd::StreamingSpec::default()
        });
        validate(obj).expect("valid")
    }

    #[test]
    fn streaming_creates_the_producer_the_stream_and_the_dashboard_and_no_batch_job() {
        let p = streaming(&mut example());
        let first = plan(&p, &seen(&[], None));
        assert_eq!(created(&first), ["produce"]);
        assert_eq!(
            first.stream.action,
            StreamAction::Apply(build::stream::StreamShape {
                shards: 2,
                replicas: 2
            })
        );
        assert_eq!(first.dashboard, DashboardAction::Apply);
        assert_eq!(
            first.stages.keys().collect::<Vec<_>>(),
            ["produce", "stream"]
        );
        assert_eq!(first.stages["stream"].state, state::RUNNING);
        // Running: looked at again soon, so pod problems show.
        assert_eq!(first.requeue_after, Some(RUNNING_RECHECK));
        // A sink, clean or load Job left from before (batch mode, an older operator) stops.
        let batch = validate(&example()).expect("valid");
        let old: Vec<JobRun> = [Stage::Sink, Stage::Clean, Stage::Load]
            .into_iter()
            .map(|s| run(&batch, s, JobState::Running, false))
            .collect();
        let produce = run(&p, Stage::Produce, JobState::Running, false);
        let jobs: Vec<JobRun> = old.iter().cloned().chain([produce]).collect();
        let later = plan(&p, &seen(&jobs, None));
        assert!(later.create.is_empty());
        assert_eq!(
            later.delete,
            old.iter().map(|j| j.name.clone()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn streaming_suspended_scales_the_stream_to_zero() {
        let mut obj = example();
        obj.spec.suspend = true;
        let p = streaming(&mut obj);
        let planned = plan(&p, &seen(&[], None));
        assert!(planned.create.is_empty());
        assert_eq!(
            planned.stream.action,
            StreamAction::Apply(build::stream::StreamShape {
                shards: 2,
                replicas: 0
            })
        );
        assert_eq!(planned.stages["stream"].state, state::SUSPENDED);
    }

    #[test]
    fn batch_mode_deletes_the_stream_and_waits_for_its_pods() {
        let p = validate(&example()).expect("valid");
        let sts = StreamRun {
            name: build::stream::statefulset_name(&p),
            owned: true,
            shards: Some(2),
            replicas: 2,
            ..StreamRun::default()
        };
        let jobs = [run(&p, Stage::Produce, JobState::Succeeded, false)];
        let obs = Observed {
            stream: Some(&sts),
            active: ActivePods {
                stream: 2,
                batch: 0,
            },
            ..seen(&jobs, None)
        };
        let planned = plan(&p, &obs);
        assert_eq!(planned.stream.action, StreamAction::Delete);
        assert!(!planned.stages.contains_key("stream"));
        // No sink while a stream pod still owns partitions.
        assert!(planned.create.is_empty(), "{:?}", created(&planned));
        assert_eq!(
            planned.stages["sink"].message.as_deref(),
            Some("waiting for 2 stream pod(s) to stop")
        );
        assert_eq!(planned.requeue_after, Some(RUNNING_RECHECK));
        // Once they stopped (and the StatefulSet is gone), the sink starts.
        assert_eq!(created(&plan(&p, &seen(&jobs, None))), ["sink"]);
    }

    #[test]
    fn outdated_running_jobs_are_deleted() {
        let p = validate(&example()).expect("valid");
        let mut old = run(&p, Stage::Produce, JobState::Running, false);
        old.name = "demo-produce-00000000".into();
        let jobs = [old];
        let obs = seen(&jobs, None);
        assert_eq!(plan(&p, &obs).delete, ["demo-produce-00000000"]);
    }
}
