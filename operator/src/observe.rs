//! Observation: what the stage Jobs, the stream StatefulSet and their pods say, as plain
//! values. Pure: counts come from the typed stage summaries ([`ecom_contract::summary`]) in
//! the pods' termination messages, one per completion index, summed over the shards.

use std::collections::BTreeMap;

use ecom_contract::summary::StageCounts;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::meta::{Stage, ANNOTATION_EXEC_HASH, ANNOTATION_SHARDS, LABEL_COMPONENT};

/// Pod label naming the Job (set by the Job controller).
pub const POD_JOB_LABEL: &str = "batch.kubernetes.io/job-name";
/// Pod annotation with the completion index of an Indexed Job.
pub const POD_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";

/// State of a Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Created, pods not finished.
    Running,
    /// `spec.suspend` is true and no pod is active.
    Suspended,
    /// The `Complete` condition is true.
    Succeeded,
    /// The `Failed` condition is true.
    Failed {
        /// Condition reason, e.g. BackoffLimitExceeded or DeadlineExceeded.
        reason: String,
        /// Condition message.
        message: String,
    },
}

/// One Job as the status needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    /// Job name.
    pub name: String,
    /// State.
    pub state: JobState,
    /// Pods that succeeded.
    pub succeeded: i32,
    /// Completions the Job needs.
    pub completions: i32,
    /// When the Job completed (RFC 3339).
    pub completion_time: Option<String>,
    /// The exec-hash annotation the Job was built with.
    pub exec_hash: Option<String>,
    /// `spec.suspend`.
    pub suspend: bool,
    /// The succeeded pods' summaries' counts, summed, when at least one was found.
    pub summary: Option<StageCounts>,
    /// Why a pod of a running Job cannot make progress ([`pod_waiting`]), when one is stuck.
    pub waiting: Option<String>,
}

fn condition_true<'a>(
    job: &'a Job,
    type_: &str,
) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// The state of `job`.
pub fn job_state(job: &Job) -> JobState {
    if condition_true(job, "Complete").is_some() {
        return JobState::Succeeded;
    }
    if let Some(c) = condition_true(job, "Failed") {
        return JobState::Failed {
            reason: c.reason.clone().unwrap_or_else(|| "Failed".to_string()),
            message: c.message.clone().unwrap_or_default(),
        };
    }
    let status = job.status.clone().unwrap_or_default();
    let suspend = job.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false);
    if suspend && status.active.unwrap_or(0) == 0 {
        return JobState::Suspended;
    }
    JobState::Running
}

/// The termination message of a pod's first terminated container that exited with 0.
fn succeeded_message(pod: &Pod) -> Option<&str> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Succeeded") {
        return None;
    }
    status
        .container_statuses
        .as_ref()?
        .iter()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
        .find(|t| t.exit_code == 0)
        .and_then(|t| t.message.as_deref())
}

/// The counts of the summaries of `pods` (those of `job`, a Job of `stage`), summed over
/// one succeeded pod per completion index.
pub fn job_summary(stage: Stage, job: &str, pods: &[Pod]) -> Option<StageCounts> {
    let mut per_index: BTreeMap<String, StageCounts> = BTreeMap::new();
    for pod in pods {
        if pod.labels().get(POD_JOB_LABEL).map(String::as_str) != Some(job) {
            continue;
        }
        let index = pod
            .annotations()
            .get(POD_INDEX_ANNOTATION)
            .cloned()
            .unwrap_or_else(|| "0".to_string());
        if let Some(counts) =
            succeeded_message(pod).and_then(|m| StageCounts::from_message(stage.summary_name(), m))
        {
            per_index.insert(index, counts);
        }
    }
    let mut shards = per_index.into_values();
    let mut sum = shards.next()?;
    for counts in shards {
        sum.add(&counts);
    }
    Some(sum)
}

/// Longest termination message quoted in a status message, in bytes.
const MAX_QUOTED_MESSAGE: usize = 1024;

/// How the most recently finished failed container among the pods of `job` ended, as the
/// kubelet reported it: `pod NAME: REASON (exit code N): TERMINATION MESSAGE`. The reason is
/// the kubelet's (`Error`, `OOMKilled`, ...); the message is the container's termination
/// message (its last log lines under `FallbackToLogsOnError`), its last 1 KiB.
pub fn last_pod_failure(job: &str, pods: &[Pod]) -> Option<String> {
    last_failure_in(pods.iter().filter(|p| of_job(p, job)))
}

/// Whether `pod` belongs to Job `job`.
fn of_job(pod: &Pod, job: &str) -> bool {
    pod.labels().get(POD_JOB_LABEL).map(String::as_str) == Some(job)
}

/// [`last_pod_failure`] over `pods`.
fn last_failure_in<'a>(pods: impl Iterator<Item = &'a Pod>) -> Option<String> {
    let mut failures: Vec<(String, &str, _)> = Vec::new();
    for pod in pods {
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref());
        for c in statuses.into_iter().flatten() {
            let states = [c.state.as_ref(), c.last_state.as_ref()];
            for t in states
                .into_iter()
                .flatten()
                .filter_map(|s| s.terminated.as_ref())
            {
                if t.exit_code != 0 || t.reason.as_deref() == Some("OOMKilled") {
                    let finished = t.finished_at.as_ref().map(|f| f.0.to_string());
                    failures.push((
                        finished.unwrap_or_default(),
                        pod.metadata.name.as_deref().unwrap_or(""),
                        t,
                    ));
                }
            }
        }
    }
    let (_, pod, t) = failures.into_iter().max_by(|a, b| a.0.cmp(&b.0))?;
    let reason = t.reason.as_deref().unwrap_or("Error");
    let mut text = format!("pod {pod}: {reason} (exit code {})", t.exit_code);
    let message = t.message.as_deref().unwrap_or("").trim();
    if !message.is_empty() {
        // The tail: the error is on the last lines.
        text.push_str(": ");
        text.push_str(quoted_tail(message));
    }
    Some(text)
}

/// Container waiting reasons that need a change to go away: they are not start-up steps.
const STUCK_REASONS: [&str; 8] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
];

/// Why a pod of `job` that has not finished cannot start, as the kubelet or the scheduler
/// says it: `pod NAME: REASON: MESSAGE`, from a container (or init container) waiting with a
/// reason of [`STUCK_REASONS`], or the pod's `PodScheduled` condition being false. `None`
/// while every pod is merely starting or running.
pub fn pod_waiting(job: &str, pods: &[Pod]) -> Option<String> {
    waiting_in(pods.iter().filter(|p| of_job(p, job)))
}

/// [`pod_waiting`] over `pods`.
fn waiting_in<'a>(pods: impl Iterator<Item = &'a Pod>) -> Option<String> {
    for pod in pods {
        let Some(status) = pod.status.as_ref() else {
            continue;
        };
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            continue;
        }
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let containers = status.init_container_statuses.iter().flatten();
        for c in containers.chain(status.container_statuses.iter().flatten()) {
            let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let reason = w.reason.as_deref().unwrap_or("");
            if STUCK_REASONS.contains(&reason) {
                let message = w.message.as_deref().unwrap_or("").trim();
                return Some(format!("pod {name}: {reason}: {}", quoted_tail(message)));
            }
        }
        let unscheduled = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False");
        if let Some(c) = unscheduled {
            let reason = c.reason.as_deref().unwrap_or("Unschedulable");
            let message = c.message.as_deref().unwrap_or("").trim();
            return Some(format!("pod {name}: {reason}: {}", quoted_tail(message)));
        }
    }
    None
}

/// The last [`MAX_QUOTED_MESSAGE`] bytes of `message` (on a character boundary).
fn quoted_tail(message: &str) -> &str {
    let mut start = message.len().saturating_sub(MAX_QUOTED_MESSAGE);
    while !message.is_char_boundary(start) {
        start += 1;
    }
    &message[start..]
}

/// `job` and its pods as a [`JobRun`]. A failed Job's message also says how its last failed
/// pod ended ([`last_pod_failure`]).
pub fn job_run(job: &Job, pods: &[Pod]) -> JobRun {
    let name = job.name_any();
    let status = job.status.clone().unwrap_or_default();
    let spec = job.spec.clone().unwrap_or_default();
    let mut state = job_state(job);
    if let JobState::Failed { message, .. } = &mut state {
        if let Some(failure) = last_pod_failure(&name, pods) {
            *message = if message.is_empty() {
                failure
            } else {
                format!("{message}; {failure}")
            };
        }
    }
    let waiting = match state {
        JobState::Running => pod_waiting(&name, pods),
        _ => None,
    };
    JobRun {
        summary: job
            .labels()
            .get(LABEL_COMPONENT)
            .and_then(|c| Stage::from_name(c))
            .and_then(|stage| job_summary(stage, &name, pods)),
        waiting,
        state,
        succeeded: status.succeeded.unwrap_or(0),
        completions: spec.completions.unwrap_or(1),
        completion_time: status.completion_time.map(|t| t.0.to_string()),
        exec_hash: job.annotations().get(ANNOTATION_EXEC_HASH).cloned(),
        suspend: spec.suspend.unwrap_or(false),
        name,
    }
}

/// The stream StatefulSet and its pods, as the plan needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamRun {
    /// Name of the StatefulSet.
    pub name: String,
    /// Whether the pipeline owns it (a controller owner reference with the pipeline's uid):
    /// the operator applies and deletes only what it owns.
    pub owned: bool,
    /// Whether it is being deleted (`metadata.deletionTimestamp` set).
    pub deleting: bool,
    /// The shard count its pods run with ([`ANNOTATION_SHARDS`]), when readable.
    pub shards: Option<i32>,
    /// `spec.replicas`.
    pub replicas: i32,
    /// Whether the status describes the current spec (`status.observedGeneration` has
    /// reached `metadata.generation`).
    pub observed: bool,
    /// `status.replicas`: pods the controller has created and not yet seen gone.
    pub status_replicas: i32,
    /// `status.currentReplicas`.
    pub current_replicas: i32,
    /// `status.readyReplicas`.
    pub ready_replicas: i32,
    /// `status.updatedReplicas`.
    pub updated_replicas: i32,
    /// `status.currentRevision`.
    pub current_revision: Option<String>,
    /// `status.updateRevision`.
    pub update_revision: Option<String>,
    /// Why one of its pods cannot run ([`pod_waiting`]), with the last failed container's
    /// end ([`last_pod_failure`]) when it crash-loops.
    pub waiting: Option<String>,
}

impl StreamRun {
    /// Whether a rollout of a new pod template is under way.
    pub fn rolling(&self) -> bool {
        self.update_revision.is_some() && self.update_revision != self.current_revision
    }
}

/// Whether `pod` is controlled by StatefulSet `name`.
fn of_statefulset(pod: &Pod, name: &str) -> bool {
    pod.owner_references()
        .iter()
        .any(|o| o.kind == "StatefulSet" && o.name == name && o.controller == Some(true))
}

/// `sts` and its pods (among `pods`) as a [`StreamRun`]; owned when its controller owner
/// reference has uid `owner_uid`.
pub fn stream_run(sts: &StatefulSet, pods: &[Pod], owner_uid: &str) -> StreamRun {
    let name = sts.name_any();
    let status = sts.status.clone().unwrap_or_default();
    let owned = sts
        .owner_references()
        .iter()
        .any(|o| o.uid == owner_uid && o.controller == Some(true));
    let mine = || pods.iter().filter(|p| of_statefulset(p, &name));
    let waiting = waiting_in(mine()).map(|w| match last_failure_in(mine()) {
        Some(last) if w.contains("CrashLoopBackOff") => format!("{w}; last exit: {last}"),
        _ => w,
    });
    StreamRun {
        owned,
        deleting: sts.metadata.deletion_timestamp.is_some(),
        shards: sts
            .annotations()
            .get(ANNOTATION_SHARDS)
            .and_then(|v| v.parse().ok()),
        replicas: sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        observed: status.observed_generation >= sts.metadata.generation,
        status_replicas: status.replicas,
        current_replicas: status.current_replicas.unwrap_or(0),
        ready_replicas: status.ready_replicas.unwrap_or(0),
        updated_replicas: status.updated_replicas.unwrap_or(0),
        current_revision: status.current_revision,
        update_revision: status.update_revision,
        waiting,
        name,
    }
}

/// Pods of a pipeline that have not finished, by what they write: two of them must never
/// own the same Kafka partition or raw file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActivePods {
    /// Stream pods (of any StatefulSet, also one being deleted).
    pub stream: usize,
    /// Pods of the sink, clean and load Jobs of batch mode.
    pub batch: usize,
}

/// The [`ActivePods`] among `pods` (those of one pipeline): pods not Succeeded or Failed,
/// terminating ones included.
pub fn active_pods(pods: &[Pod]) -> ActivePods {
    let mut active = ActivePods::default();
    for pod in pods {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        match pod
            .labels()
            .get(LABEL_COMPONENT)
            .and_then(|c| Stage::from_name(c))
        {
            Some(Stage::Stream) => active.stream += 1,
            Some(Stage::Sink | Stage::Clean | Stage::Load) => active.batch += 1,
            _ => {}
        }
    }
    active
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(job: &str, index: Option<&str>, phase: &str, message: &str) -> Pod {
        let mut annotations = serde_json::Map::new();
        if let Some(i) = index {
            annotations.insert(POD_INDEX_ANNOTATION.into(), json!(i));
        }
        serde_json::from_value(json!({
            "metadata": {"name": format!("{job}-{}", index.unwrap_or("x")), "labels": {POD_JOB_LABEL: job}, "annotations": annotations},
            "status": {"phase": phase, "containerStatuses": [{
                "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": if phase == "Succeeded" {0} else {1}, "message": message}}
            }]}
        }))
        .expect("pod")
    }

    #[test]
    fn shards_are_summed_once_per_index() {
        let pods = vec![
            pod("j", Some("0"), "Succeeded", r#"{"rows":5}"#),
            pod("j", Some("1"), "Failed", r#"{"rows":100}"#),
            pod("j", Some("1"), "Succeeded", r#"{"rows":7}"#),
            pod("other", Some("0"), "Succeeded", r#"{"rows":1000}"#),
        ];
        let sum = job_summary(Stage::Load, "j", &pods).expect("sum");
        assert_eq!(sum.rows, Some(12));
        assert!(job_summary(Stage::Load, "none", &pods).is_none());
    }

    #[test]
    fn a_failed_job_names_its_last_failed_pod() {
        let failed_pod = |name: &str,
                          finished: &str,
                          reason: &str,
                          code: i32,
                          message: &str|
         -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {POD_JOB_LABEL: "j"}},
                "status": {"phase": "Failed", "containerStatuses": [{
                    "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": code, "reason": reason, "message": message, "finishedAt": finished}}
                }]}
            }))
            .expect("pod")
        };
        let pods = vec![
            failed_pod("j-a", "2026-01-01T00:00:01Z", "Error", 1, "first"),
            failed_pod("j-b", "2026-01-01T00:00:09Z", "OOMKilled", 137, ""),
            pod("j", Some("0"), "Succeeded", r#"{"rows":5}"#),
        ];
        assert_eq!(
            last_pod_failure("j", &pods).as_deref(),
            Some("pod j-b: OOMKilled (exit code 137)")
        );
        let long = "x".repeat(3000) + "the end";
        let pods = vec![failed_pod("j-c", "2026-01-01T00:00:01Z", "Error", 2, &long)];
        let text = last_pod_failure("j", &pods).expect("failure");
        assert!(
            text.starts_with("pod j-c: Error (exit code 2): x"),
            "{text}"
        );
        assert!(
            text.ends_with("the end"),
            "the message's tail is kept: {text}"
        );
        assert!(text.len() < 1100, "{}", text.len());
        assert!(last_pod_failure("other", &pods).is_none());

        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "j"}, "spec": {"template": {}},
            "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}
        }))
        .expect("job");
        assert_eq!(
            job_run(&job, &pods).state,
            JobState::Failed {
                reason: "BackoffLimitExceeded".into(),
                message: format!("Job has reached the specified backoff limit; {text}")
            }
        );
    }

    #[test]
    fn a_stuck_pod_says_why_and_a_starting_one_does_not() {
        let mut p = pod("ecp-load", Some("0"), "Pending", "");
        p.status = Some(serde_json::from_value(json!({
            "phase": "Pending",
            "containerStatuses": [{"name": "stage", "image": "ecom:typo", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImageNeverPull",
                    "message": "Container image \"ecom:typo\" is not present with pull policy of Never"}}}]
        })).expect("status"));
        let pods = [p.clone()];
        assert_eq!(
            pod_waiting("ecp-load", &pods).as_deref(),
            Some("pod ecp-load-0: ErrImageNeverPull: Container image \"ecom:typo\" is not present with pull policy of Never")
        );
        assert_eq!(pod_waiting("other", &pods), None);
        let mut starting = p.clone();
        starting.status = Some(
            serde_json::from_value(json!({
                "phase": "Pending",
                "containerStatuses": [{"name": "stage", "image": "ecom:dev", "imageID": "",
                    "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "ContainerCreating"}}}]
            }))
            .expect("status"),
        );
        assert_eq!(pod_waiting("ecp-load", &[starting]), None);
        let mut unscheduled = p;
        unscheduled.status = Some(serde_json::from_value(json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient memory."}]
        })).expect("status"));
        assert_eq!(
            pod_waiting("ecp-load", &[unscheduled]).as_deref(),
            Some("pod ecp-load-0: Unschedulable: 0/1 nodes are available: 1 Insufficient memory.")
        );
    }

    #[test]
    fn job_states() {
        let job = |status: serde_json::Value, suspend: bool| -> Job {
            serde_json::from_value(json!({"metadata": {"name": "j"}, "spec": {"suspend": suspend, "template": {}}, "status": status}))
                .expect("job")
        };
        assert_eq!(job_state(&job(json!({}), false)), JobState::Running);
        assert_eq!(job_state(&job(json!({}), true)), JobState::Suspended);
        let done = json!({"conditions": [{"type": "Complete", "status": "True"}]});
        assert_eq!(job_state(&job(done, false)), JobState::Succeeded);
        let failed = json!({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "too slow"}]});
        assert_eq!(
            job_state(&job(failed, false)),
            JobState::Failed {
                reason: "DeadlineExceeded".into(),
                message: "too slow".into()
            }
        );
    }

    #[test]
    fn a_stream_statefulset_says_its_shards_and_why_a_pod_crash_loops() {
        let sts: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "demo-stream", "generation": 4,
                "annotations": {ANNOTATION_SHARDS: "2"},
                "ownerReferences": [{"apiVersion": "v", "kind": "EcomPipeline", "name": "demo",
                    "uid": "u1", "controller": true}]},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 4, "replicas": 2, "currentReplicas": 2,
                "readyReplicas": 1, "updatedReplicas": 2, "currentRevision": "demo-stream-a",
                "updateRevision": "demo-stream-a"}
        }))
        .expect("sts");
        let stream_pod = |name: &str, sts: &str, state: serde_json::Value| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {LABEL_COMPONENT: "stream"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                        "name": sts, "uid": "s", "controller": true}]},
                "status": {"phase": "Running", "containerStatuses": [state]}
            }))
            .expect("pod")
        };
        let looping = json!({"name": "stream", "image": "i", "imageID": "", "ready": false,
            "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                "message": "HBase unreachable", "finishedAt": "2026-01-01T00:00:00Z"}}});
        let running = json!({"name": "stream", "image": "i", "imageID": "", "ready": true,
            "restartCount": 0, "state": {"running": {}}});
        let pods = [
            stream_pod("demo-stream-0", "demo-stream", running.clone()),
            stream_pod("demo-stream-1", "demo-stream", looping.clone()),
            stream_pod("other-stream-0", "other-stream", looping),
        ];
        let run = stream_run(&sts, &pods, "u1");
        assert!(run.owned && run.observed && !run.rolling());
        assert_eq!(run.shards, Some(2));
        assert_eq!(
            (run.replicas, run.status_replicas, run.ready_replicas),
            (2, 2, 1)
        );
        assert_eq!(
            run.waiting.as_deref(),
            Some("pod demo-stream-1: CrashLoopBackOff: back-off 40s; last exit: pod demo-stream-1: Error (exit code 1): HBase unreachable")
        );
        assert!(!stream_run(&sts, &pods[..1], "other-uid").owned);
        assert_eq!(stream_run(&sts, &pods[..1], "u1").waiting, None);

        // Pods that have not finished, by what they write.
        let job_pod = |component: &str, phase: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": component, "labels": {LABEL_COMPONENT: component}},
                "status": {"phase": phase}
            }))
            .expect("pod")
        };
        let all = [
            stream_pod("demo-stream-0", "demo-stream", running),
            job_pod("sink", "Running"),
            job_pod("clean", "Succeeded"),
            job_pod("load", "Pending"),
            job_pod("produce", "Running"),
        ];
        assert_eq!(
            active_pods(&all),
            ActivePods {
                stream: 1,
                batch: 2
            }
        );
    }
}
