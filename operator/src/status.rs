//! Status: conditions, phase and counts computed from the planned stage states (which come
//! from the observed Jobs and the stream StatefulSet) and the dashboard Deployment. Pure.
//!
//! Streaming mode keeps the condition types: Ingested holds while the producer runs (or
//! has succeeded) and every stream shard is ready, Cleaned and Loaded while every shard is
//! ready (each micro-batch is cleaned and loaded as it commits), Ready when those and the
//! dashboard hold.

use std::collections::BTreeMap;

use crate::build;
use crate::crd::{
    Condition, ConditionStatus, Counts, DashboardStatus, EcomPipelineStatus, Phase, StageStatus,
};
use crate::meta::Stage;
use crate::plan::{state, Plan};
use crate::validate::Pipeline;

/// Condition types, in the order they are written.
pub const CONDITION_TYPES: [&str; 6] = [
    "Ingested",
    "Cleaned",
    "Loaded",
    "DashboardAvailable",
    "Ready",
    "Degraded",
];

/// Counts from the stages' typed summaries: `records` of produce and sink, the clean
/// report's rows in, out and dropped, and the rows load wrote.
pub fn counts(stages: &BTreeMap<String, StageStatus>) -> Counts {
    let summary = |s: Stage| stages.get(s.as_str()).and_then(|st| st.summary.as_ref());
    let clean = summary(Stage::Clean);
    Counts {
        produced: summary(Stage::Produce).and_then(|c| c.records),
        sunk: summary(Stage::Sink).and_then(|c| c.records),
        clean_input: clean.and_then(|c| c.rows_in),
        cleaned: clean.and_then(|c| c.rows_out),
        dropped: clean.map(|c| c.dropped.clone()).unwrap_or_default(),
        loaded: summary(Stage::Load).and_then(|c| c.rows),
    }
}

/// A condition value before its transition time is settled.
struct Cond {
    type_: &'static str,
    status: bool,
    reason: String,
    message: String,
}

fn stage_cond(type_: &'static str, stages: &BTreeMap<String, StageStatus>, names: &[&str]) -> Cond {
    let sts: Vec<(&str, &StageStatus)> = names
        .iter()
        .filter_map(|n| stages.get(*n).map(|s| (*n, s)))
        .collect();
    if let Some((n, st)) = sts.iter().find(|(_, s)| s.state == state::FAILED) {
        return Cond {
            type_,
            status: false,
            reason: "StageFailed".into(),
            message: format!("{n} failed: {}", st.message.clone().unwrap_or_default()),
        };
    }
    if !sts.is_empty() && sts.iter().all(|(_, s)| s.state == state::SUCCEEDED) {
        return Cond {
            type_,
            status: true,
            reason: "Succeeded".into(),
            message: format!("{} succeeded", names.join(" and ")),
        };
    }
    let (reason, message) = match sts.iter().find(|(_, s)| s.state != state::SUCCEEDED) {
        Some((n, s)) if s.state == state::SUSPENDED => ("Suspended", format!("{n} is suspended")),
        Some((n, s)) if s.state == state::PENDING => ("Pending", format!("{n} has not started")),
        // A running stage whose pod is stuck (image, scheduling) says why.
        Some((n, s)) => match &s.message {
            Some(m) => (
                "InProgress",
                format!("{n} is {}: {m}", s.state.as_str().to_lowercase()),
            ),
            None => (
                "InProgress",
                format!("{n} is {}", s.state.as_str().to_lowercase()),
            ),
        },
        None => ("Pending", String::new()),
    };
    Cond {
        type_,
        status: false,
        reason: reason.into(),
        message,
    }
}

/// The new status of `p` after `plan`, keeping transition times of unchanged conditions.
pub fn compute(
    p: &Pipeline,
    plan: &Plan,
    dashboard_ready: Option<i32>,
    previous: Option<&EcomPipelineStatus>,
    now: &str,
) -> EcomPipelineStatus {
    let stages = &plan.stages;
    let streaming = p.is_streaming();
    let (ingested, cleaned, loaded) = if streaming {
        streaming_conds(stages, plan.stream.ready)
    } else {
        (
            stage_cond("Ingested", stages, &["produce", "sink"]),
            stage_cond("Cleaned", stages, &["clean"]),
            stage_cond("Loaded", stages, &["load"]),
        )
    };
    let d = &p.spec.dashboard;
    let dashboard = if !d.enabled {
        Cond {
            type_: "DashboardAvailable",
            status: false,
            reason: "Disabled".into(),
            message: "spec.dashboard.enabled is false".into(),
        }
    } else {
        match dashboard_ready {
            Some(n) if n > 0 => Cond {
                type_: "DashboardAvailable",
                status: true,
                reason: "Available".into(),
                message: format!("{n} dashboard pod(s) ready"),
            },
            Some(_) if d.replicas == 0 => Cond {
                type_: "DashboardAvailable",
                status: false,
                reason: "ScaledToZero".into(),
                message: "spec.dashboard.replicas is 0".into(),
            },
            Some(_) => Cond {
                type_: "DashboardAvailable",
                status: false,
                reason: "Unavailable".into(),
                message: "no dashboard pod is ready".into(),
            },
            None => Cond {
                type_: "DashboardAvailable",
                status: false,
                reason: "NotCreated".into(),
                message: "the dashboard starts once the data is loaded".into(),
            },
        }
    };
    let dashboard_ok = dashboard.status || !d.enabled || d.replicas == 0;
    let failed: Vec<String> = stages
        .iter()
        .filter(|(_, s)| s.state == state::FAILED)
        .map(|(n, s)| format!("{n}: {}", s.message.clone().unwrap_or_default()))
        .collect();
    // Streaming: Ingested holds only with every shard ready, so it says it all.
    let data_ok = if streaming {
        ingested.status
    } else {
        loaded.status
    };
    let ready_message = if streaming {
        "streaming: every shard commits micro-batches and the dashboard is available"
    } else {
        "data loaded and dashboard available"
    };
    let ready = Cond {
        type_: "Ready",
        status: data_ok && dashboard_ok && failed.is_empty(),
        reason: if !failed.is_empty() {
            "StageFailed".into()
        } else if data_ok && dashboard_ok {
            "Ready".into()
        } else if p.spec.suspend {
            "Suspended".into()
        } else if data_ok {
            "DashboardNotAvailable".into()
        } else {
            "InProgress".into()
        },
        message: if !failed.is_empty() {
            failed.join("; ")
        } else if data_ok && dashboard_ok {
            ready_message.into()
        } else if data_ok {
            dashboard.message.clone()
        } else {
            // Where the data stands: the first stage condition not yet true says what it is
            // doing or waiting for.
            [&ingested, &cleaned, &loaded]
                .into_iter()
                .find(|c| !c.status)
                .map(|c| c.message.clone())
                .unwrap_or_default()
        },
    };
    let degraded = Cond {
        type_: "Degraded",
        status: !failed.is_empty(),
        reason: if failed.is_empty() {
            "AsExpected".into()
        } else {
            "StageFailed".into()
        },
        message: failed.join("; "),
    };
    let conds = [ingested, cleaned, loaded, dashboard, ready, degraded];
    let phase = if !degraded_is(&conds) {
        if conds[4].status {
            Phase::Ready
        } else if p.spec.suspend {
            Phase::Suspended
        } else if stages.values().all(|s| s.state == state::PENDING) {
            Phase::Pending
        } else {
            Phase::Running
        }
    } else {
        Phase::Failed
    };
    EcomPipelineStatus {
        observed_generation: Some(p.generation),
        phase: Some(phase),
        run_key: Some(p.run_key().to_string()),
        conditions: settle(conds, p.generation, previous, now),
        counts: Some(counts(stages)),
        stages: stages.clone(),
        cycle: None,
        dashboard: d.enabled.then(|| DashboardStatus {
            service: build::dashboard_name(p),
            port: d.port,
            port_forward: build::port_forward_command(p),
            ready_replicas: dashboard_ready.unwrap_or(0),
        }),
    }
}

/// Ingested, Cleaned and Loaded of streaming mode: true while the producer runs or has
/// succeeded and every stream shard is ready (`stream_ready`), else what the producer or
/// the stream stage says.
fn streaming_conds(
    stages: &BTreeMap<String, StageStatus>,
    stream_ready: bool,
) -> (Cond, Cond, Cond) {
    let producing = stages
        .get(Stage::Produce.as_str())
        .is_some_and(|s| s.state == state::RUNNING || s.state == state::SUCCEEDED);
    let shards = stages
        .get(Stage::Stream.as_str())
        .map_or(0, |s| s.completions);
    // The stream first: while it is not ready, it is what the pipeline waits for.
    let mut ingested = stage_cond("Ingested", stages, &["stream", "produce"]);
    let mut cleaned = stage_cond("Cleaned", stages, &["stream"]);
    let mut loaded = stage_cond("Loaded", stages, &["stream"]);
    if stream_ready {
        let holds = |c: &mut Cond, message: String| {
            c.status = true;
            c.reason = "Streaming".into();
            c.message = message;
        };
        if producing && ingested.reason != "StageFailed" {
            holds(
                &mut ingested,
                format!("{shards} stream shard(s) consume the topic"),
            );
        }
        holds(
            &mut cleaned,
            "every micro-batch is cleaned as it commits".into(),
        );
        holds(
            &mut loaded,
            "every micro-batch is loaded as it commits".into(),
        );
    }
    (ingested, cleaned, loaded)
}

fn degraded_is(conds: &[Cond]) -> bool {
    conds.iter().any(|c| c.type_ == "Degraded" && c.status)
}

fn settle(
    conds: impl IntoIterator<Item = Cond>,
    generation: i64,
    previous: Option<&EcomPipelineStatus>,
    now: &str,
) -> Vec<Condition> {
    conds
        .into_iter()
        .map(|c| {
            let status = ConditionStatus::from(c.status);
            let since = previous
                .and_then(|p| p.conditions.iter().find(|o| o.type_ == c.type_))
                .filter(|o| o.status == status)
                .map(|o| o.last_transition_time.clone());
            Condition {
                type_: c.type_.to_string(),
                status,
                reason: c.reason,
                message: c.message,
                last_transition_time: since.unwrap_or_else(|| now.to_string()),
                observed_generation: Some(generation),
            }
        })
        .collect()
}

/// Status of a resource whose spec is invalid: Ready false with the field errors.
pub fn invalid(
    generation: Option<i64>,
    message: &str,
    previous: Option<&EcomPipelineStatus>,
    now: &str,
) -> EcomPipelineStatus {
    refused(
        generation,
        (Phase::Invalid, "InvalidSpec"),
        message,
        previous,
        now,
    )
}

/// Status of a resource the operator does not run: `phase`, and Ready false and Degraded
/// true with `reason` and `message`; the stages' last states stay as they were.
pub fn refused(
    generation: Option<i64>,
    (phase, reason): (Phase, &str),
    message: &str,
    previous: Option<&EcomPipelineStatus>,
    now: &str,
) -> EcomPipelineStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let g = generation.unwrap_or(0);
    let conds = [
        Cond {
            type_: "Ready",
            status: false,
            reason: reason.into(),
            message: message.to_string(),
        },
        Cond {
            type_: "Degraded",
            status: true,
            reason: reason.into(),
            message: message.to_string(),
        },
    ];
    let mut new = settle(conds, g, previous, now);
    status
        .conditions
        .retain(|c| c.type_ != "Ready" && c.type_ != "Degraded");
    status.conditions.append(&mut new);
    status.observed_generation = generation;
    status.phase = Some(phase);
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::StageCounts;
    use crate::observe::{ActivePods, JobRun, JobState, StreamRun};
    use crate::plan::{plan, Observed};
    use crate::test_support::example;
    use crate::validate::validate;

    #[test]
    fn counts_follow_the_stage_summaries() {
        // Each stage's summary as its pod writes it, read the way the operator reads it.
        let st = |stage: Stage, message: &str| StageStatus {
            summary: StageCounts::from_message(stage.summary_name(), message),
            ..StageStatus::default()
        };
        let stages = BTreeMap::from([
            (
                "produce".to_string(),
                st(Stage::Produce, r#"{"records":100,"bytes":5000}"#),
            ),
            (
                "sink".to_string(),
                st(Stage::Sink, r#"{"records":100,"files":2}"#),
            ),
            (
                "clean".to_string(),
                st(
                    Stage::Clean,
                    r#"{"report":{"rows_in":100,"rows_out":90,"dropped":{"missing_field":10}}}"#,
                ),
            ),
            ("load".to_string(), st(Stage::Load, r#"{"rows":90}"#)),
        ]);
        let c = counts(&stages);
        assert_eq!(
            (c.produced, c.sunk, c.clean_input, c.cleaned, c.loaded),
            (Some(100), Some(100), Some(100), Some(90), Some(90))
        );
        assert_eq!(
            c.dropped,
            BTreeMap::from([("missing_field".to_string(), 10)])
        );
    }

    /// The Job of `stage` in `state`, done when succeeded.
    fn run(p: &Pipeline, stage: Stage, state: JobState) -> JobRun {
        JobRun {
            name: build::job_name(p, stage),
            succeeded: i32::from(state == JobState::Succeeded),
            state,
            completions: 1,
            completion_time: None,
            exec_hash: None,
            suspend: false,
            summary: None,
            waiting: None,
        }
    }

    fn ready_of(s: &EcomPipelineStatus) -> &Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready condition")
    }

    /// The plan of `p` with `jobs` and the stream StatefulSet `stream`.
    fn planned_with(p: &Pipeline, jobs: &[JobRun], stream: Option<&StreamRun>) -> Plan {
        plan(
            p,
            &Observed {
                jobs,
                stream,
                active: ActivePods::default(),
                previous: None,
            },
        )
    }

    /// The plan of `p` with `jobs`.
    fn planned(p: &Pipeline, jobs: &[JobRun]) -> Plan {
        planned_with(p, jobs, None)
    }

    #[test]
    fn ready_after_every_stage_and_the_dashboard() {
        let p = validate(&example()).expect("valid");
        let jobs: Vec<JobRun> = Stage::ALL
            .into_iter()
            .map(|s| run(&p, s, JobState::Succeeded))
            .collect();
        let pl = planned(&p, &jobs);
        let s = compute(&p, &pl, None, None, "2026-01-01T00:00:00Z");
        assert_eq!(s.phase, Some(Phase::Running));
        let ready = ready_of(&s);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "DashboardNotAvailable")
        );
        let s2 = compute(&p, &pl, Some(1), Some(&s), "2026-01-01T00:01:00Z");
        assert_eq!(s2.phase, Some(Phase::Ready));
        let loaded = |s: &EcomPipelineStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Loaded")
                .map(|c| c.last_transition_time.clone())
        };
        assert_eq!(
            loaded(&s2),
            loaded(&s),
            "unchanged conditions keep their time"
        );
        assert_eq!(
            s2.dashboard.expect("dashboard").port_forward,
            "kubectl -n shop port-forward svc/demo-dashboard 8080:8080"
        );
    }

    #[test]
    fn ready_says_what_a_running_stage_waits_for() {
        let p = validate(&example()).expect("valid");
        let produce = JobRun {
            waiting: Some("waiting for Kafka at kafka:9092: connection refused".into()),
            ..run(&p, Stage::Produce, JobState::Running)
        };
        let pl = planned(&p, &[produce]);
        let s = compute(&p, &pl, None, None, "2026-01-01T00:00:00Z");
        let ready = ready_of(&s);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "InProgress")
        );
        assert_eq!(
            ready.message,
            "produce is running: waiting for Kafka at kafka:9092: connection refused"
        );
    }

    #[test]
    fn streaming_is_ready_when_every_shard_and_the_dashboard_are() {
        let mut obj = example();
        obj.spec.mode = crate::crd::Mode::Streaming;
        let p = validate(&obj).expect("valid");
        let produce = run(&p, Stage::Produce, JobState::Running);
        let mut sts = StreamRun {
            name: build::stream::statefulset_name(&p),
            owned: true,
            shards: Some(1),
            replicas: 1,
            observed: true,
            status_replicas: 1,
            current_replicas: 1,
            ..StreamRun::default()
        };
        let starting = planned_with(&p, std::slice::from_ref(&produce), Some(&sts));
        let s = compute(&p, &starting, Some(1), None, "2026-01-01T00:00:00Z");
        assert_eq!(s.phase, Some(Phase::Running));
        assert_eq!(ready_of(&s).message, "stream is running: 0/1 shards ready");
        assert_eq!(s.cycle, None);
        sts.ready_replicas = 1;
        let up = planned_with(&p, std::slice::from_ref(&produce), Some(&sts));
        let s = compute(&p, &up, Some(1), None, "2026-01-01T00:00:00Z");
        assert_eq!(s.phase, Some(Phase::Ready), "{:?}", s.conditions);
        for c in ["Ingested", "Cleaned", "Loaded"] {
            let cond = s.conditions.iter().find(|x| x.type_ == c).expect(c);
            assert_eq!(
                (cond.status, cond.reason.as_str()),
                (ConditionStatus::True, "Streaming")
            );
        }
        assert_eq!(
            s.stages.keys().collect::<Vec<_>>(),
            ["produce", "stream"],
            "no sink, clean or load stage in streaming mode"
        );
        assert_eq!(
            s.stages["stream"].message.as_deref(),
            Some("1/1 shards streaming")
        );
        // Without the dashboard it is not Ready yet.
        let s = compute(&p, &up, Some(0), None, "2026-01-01T00:00:00Z");
        assert_eq!(ready_of(&s).reason, "DashboardNotAvailable");
    }
}
