//! Planning the stream StatefulSet of streaming mode. Pure.
//!
//! Each stream pod owns a share of the topic's partitions, chosen by its index and the shard
//! count. Two pods must never own the same partition, so:
//! - a changed shard count (the observed [`ANNOTATION_SHARDS`](crate::meta::ANNOTATION_SHARDS)
//!   against `spec.streaming.shards`) first scales the StatefulSet, still with its old count,
//!   to zero, and applies the new count only once it is drained: no replica in its status
//!   (current ones included, for the generation applied) and no stream pod left, terminating
//!   ones included;
//! - scaling up from zero (after a suspend, or a drain) and creating the StatefulSet wait
//!   the same way, and also for the pods of batch sink, clean and load Jobs;
//! - a template change with the same count rolls one pod at a time, each ordinal keeping
//!   its shard.
//!
//! Only a StatefulSet the pipeline owns is applied or deleted; in batch mode it is deleted.

use crate::build::stream::{statefulset_name, StreamShape};
use crate::crd::StageStatus;
use crate::meta::Stage;
use crate::observe::StreamRun;
use crate::validate::Pipeline;

use super::{state, Observed};

/// What to do with the stream StatefulSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamAction {
    /// Server-side apply it with this shape.
    Apply(StreamShape),
    /// Delete it (batch mode; only when the pipeline owns it).
    Delete,
    /// Leave it as it is.
    Keep,
}

/// The stream stage's part of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamPlan {
    /// The StatefulSet.
    pub action: StreamAction,
    /// The stage's status (streaming mode only).
    pub status: Option<StageStatus>,
    /// Every shard is ready and none is stuck or waiting for a service.
    pub ready: bool,
    /// Reason and note of an Event to record (creation, resharding, removal).
    pub event: Option<(&'static str, String)>,
}

impl StreamPlan {
    fn keep() -> Self {
        Self {
            action: StreamAction::Keep,
            status: None,
            ready: false,
            event: None,
        }
    }
}

/// Pods of the observed StatefulSet that have not stopped yet: those in its status and
/// those listed, whichever is more.
fn still_running(run: &StreamRun, obs: &Observed) -> usize {
    let counted = usize::try_from(run.status_replicas.max(run.current_replicas)).unwrap_or(0);
    counted.max(obs.active.stream)
}

/// Whether nothing that owns partitions or writes files runs: the StatefulSet scaled to
/// zero with a status that says so for its current generation, and no stream or batch
/// pod left.
fn drained(run: &StreamRun, obs: &Observed) -> bool {
    run.replicas == 0
        && run.observed
        && run.status_replicas == 0
        && run.current_replicas == 0
        && obs.active.stream == 0
        && obs.active.batch == 0
}

/// Plans the stream StatefulSet of `p`.
pub fn plan_stream(p: &Pipeline, obs: &Observed) -> StreamPlan {
    let name = statefulset_name(p);
    let run = obs.stream.filter(|r| r.name == name);
    if !p.is_streaming() {
        return match run {
            Some(r) if r.owned && !r.deleting => StreamPlan {
                action: StreamAction::Delete,
                event: Some((
                    "StreamRemoved",
                    format!("StatefulSet {name} deleted: the pipeline runs in batch mode"),
                )),
                ..StreamPlan::keep()
            },
            _ => StreamPlan::keep(),
        };
    }
    let desired = StreamShape::desired(p);
    let shards = desired.shards;
    let suspended = p.spec.suspend;
    let mut st = StageStatus {
        state: if suspended {
            state::SUSPENDED
        } else {
            state::RUNNING
        },
        stateful_set: Some(name.clone()),
        run_key: Some(p.stage_key(Stage::Stream).to_string()),
        completions: shards,
        ready: Some(run.map_or(0, |r| r.ready_replicas)),
        ..StageStatus::default()
    };
    let mut event = None;
    let mut ready = false;
    let action = match run {
        Some(r) if !r.owned => {
            st.state = state::FAILED;
            st.message = Some(format!(
                "StatefulSet {name} exists and is not owned by this EcomPipeline: delete or rename it"
            ));
            StreamAction::Keep
        }
        Some(r) if r.deleting => {
            st.message = Some(format!("waiting for StatefulSet {name} to finish deleting"));
            StreamAction::Keep
        }
        None => {
            let others = obs.active.stream + obs.active.batch;
            if others > 0 && desired.replicas > 0 {
                st.message = Some(format!(
                    "waiting for {others} pod(s) of earlier stream or batch stages to stop"
                ));
                StreamAction::Keep
            } else {
                st.message = Some(if suspended {
                    "suspended".to_string()
                } else {
                    format!("starting {shards} shard(s)")
                });
                event = Some((
                    "StreamCreated",
                    format!("StatefulSet {name} with {shards} shard(s)"),
                ));
                StreamAction::Apply(desired)
            }
        }
        Some(r) if r.shards == Some(shards) => {
            let stopping = still_running(r, obs);
            if r.replicas == 0 && desired.replicas > 0 && !drained(r, obs) {
                // Starting again: the pods of before (a suspend, a drain) go first.
                st.message = Some(format!(
                    "waiting for {stopping} pod(s) to stop before starting {shards} shard(s)"
                ));
                StreamAction::Apply(StreamShape {
                    replicas: 0,
                    ..desired
                })
            } else {
                let (message, all_ready) = running_message(r, shards, suspended, stopping);
                st.message = Some(message);
                ready = all_ready;
                StreamAction::Apply(desired)
            }
        }
        Some(r) => {
            let from = r
                .shards
                .map_or_else(|| "an unknown count".to_string(), |n| n.to_string());
            if drained(r, obs) {
                st.message = Some(format!(
                    "resharding from {from} to {shards}: starting the new shards"
                ));
                event = Some((
                    "StreamResharded",
                    format!("StatefulSet {name}: every pod of {from} shard(s) stopped, starting {shards}"),
                ));
                StreamAction::Apply(desired)
            } else {
                let stopping = still_running(r, obs);
                st.message = Some(format!(
                    "resharding from {from} to {shards}: waiting for {stopping} pod(s) to stop"
                ));
                if r.replicas != 0 {
                    event = Some((
                        "StreamResharding",
                        format!(
                            "StatefulSet {name}: stopping {from} shard(s) before starting {shards}"
                        ),
                    ));
                }
                // The old count, so the annotation keeps naming the pods that still run.
                StreamAction::Apply(StreamShape {
                    shards: r.shards.unwrap_or(shards),
                    replicas: 0,
                })
            }
        }
    };
    StreamPlan {
        action,
        status: Some(st),
        ready,
        event,
    }
}

/// The message of a StatefulSet with the desired shard count, and whether every shard is
/// ready and none stuck.
fn running_message(r: &StreamRun, shards: i32, suspended: bool, stopping: usize) -> (String, bool) {
    if suspended {
        let m = if stopping > 0 {
            format!("suspended: waiting for {stopping} pod(s) to stop")
        } else {
            "suspended".to_string()
        };
        return (m, false);
    }
    if let Some(w) = &r.waiting {
        return (w.clone(), false);
    }
    let ready = r.ready_replicas;
    if ready < shards {
        return (format!("{ready}/{shards} shards ready"), false);
    }
    let mut m = format!("{shards}/{shards} shards streaming");
    if r.rolling() {
        m.push_str(&format!(
            "; rolling out a new revision ({}/{shards} updated)",
            r.updated_replicas
        ));
    }
    (m, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::ActivePods;
    use crate::test_support::{example, streaming};
    use crate::validate::validate;

    /// A StatefulSet of `p` with `shards` and `replicas`, every pod running and ready.
    fn settled(p: &Pipeline, shards: i32, replicas: i32) -> StreamRun {
        StreamRun {
            name: statefulset_name(p),
            owned: true,
            deleting: false,
            shards: Some(shards),
            replicas,
            observed: true,
            status_replicas: replicas,
            current_replicas: replicas,
            ready_replicas: replicas,
            updated_replicas: replicas,
            current_revision: Some("r1".into()),
            update_revision: Some("r1".into()),
            waiting: None,
        }
    }

    fn observe<'a>(run: Option<&'a StreamRun>, active: ActivePods) -> Observed<'a> {
        Observed {
            jobs: &[],
            stream: run,
            active,
            previous: None,
        }
    }

    fn pods(stream: usize, batch: usize) -> ActivePods {
        ActivePods { stream, batch }
    }

    fn message(plan: &StreamPlan) -> String {
        plan.status
            .as_ref()
            .and_then(|s| s.message.clone())
            .unwrap_or_default()
    }

    #[test]
    fn created_with_one_pod_per_shard_and_ready_when_all_are() {
        let p = streaming(2, false);
        let first = plan_stream(&p, &observe(None, pods(0, 0)));
        assert_eq!(
            first.action,
            StreamAction::Apply(StreamShape {
                shards: 2,
                replicas: 2
            })
        );
        assert_eq!(first.event.map(|e| e.0), Some("StreamCreated"));
        assert!(!first.ready);
        let mut run = settled(&p, 2, 2);
        run.ready_replicas = 1;
        let half = plan_stream(&p, &observe(Some(&run), pods(2, 0)));
        assert_eq!(message(&half), "1/2 shards ready");
        assert!(!half.ready);
        let all = settled(&p, 2, 2);
        let up = plan_stream(&p, &observe(Some(&all), pods(2, 0)));
        assert_eq!(message(&up), "2/2 shards streaming");
        assert!(up.ready);
        let st = up.status.expect("status");
        assert_eq!(st.state, state::RUNNING);
        assert_eq!((st.ready, st.completions), (Some(2), 2));
    }

    #[test]
    fn a_stuck_pod_is_named_and_not_ready() {
        let p = streaming(1, false);
        let mut run = settled(&p, 1, 1);
        run.ready_replicas = 0;
        run.waiting = Some("pod demo-stream-0: ErrImageNeverPull: no image".into());
        let plan = plan_stream(&p, &observe(Some(&run), pods(1, 0)));
        assert_eq!(
            message(&plan),
            "pod demo-stream-0: ErrImageNeverPull: no image"
        );
        assert!(!plan.ready);
    }

    #[test]
    fn suspend_scales_to_zero_and_resuming_waits_for_the_old_pods() {
        let p = streaming(2, true);
        let run = settled(&p, 2, 2);
        let plan = plan_stream(&p, &observe(Some(&run), pods(2, 0)));
        assert_eq!(
            plan.action,
            StreamAction::Apply(StreamShape {
                shards: 2,
                replicas: 0
            })
        );
        assert_eq!(
            plan.status.as_ref().map(|s| s.state),
            Some(state::SUSPENDED)
        );
        assert_eq!(message(&plan), "suspended: waiting for 2 pod(s) to stop");
        // Resumed while a pod still terminates: stay at zero until it is gone.
        let p = streaming(2, false);
        let mut stopping = settled(&p, 2, 0);
        stopping.status_replicas = 1;
        let waiting = plan_stream(&p, &observe(Some(&stopping), pods(1, 0)));
        assert_eq!(
            waiting.action,
            StreamAction::Apply(StreamShape {
                shards: 2,
                replicas: 0
            })
        );
        assert_eq!(
            message(&waiting),
            "waiting for 1 pod(s) to stop before starting 2 shard(s)"
        );
        let gone = settled(&p, 2, 0);
        let resumed = plan_stream(&p, &observe(Some(&gone), pods(0, 0)));
        assert_eq!(
            resumed.action,
            StreamAction::Apply(StreamShape {
                shards: 2,
                replicas: 2
            })
        );
    }

    #[test]
    fn resharding_drains_the_old_count_before_starting_the_new_one() {
        let p = streaming(3, false);
        let old = settled(&p, 2, 2);
        let first = plan_stream(&p, &observe(Some(&old), pods(2, 0)));
        // The old count at zero replicas: the annotation still names the pods that run.
        assert_eq!(
            first.action,
            StreamAction::Apply(StreamShape {
                shards: 2,
                replicas: 0
            })
        );
        assert_eq!(
            message(&first),
            "resharding from 2 to 3: waiting for 2 pod(s) to stop"
        );
        assert_eq!(first.event.map(|e| e.0), Some("StreamResharding"));
        // Scaled to zero, a pod still terminating (listed, no longer counted by the status).
        let mut draining = settled(&p, 2, 0);
        draining.ready_replicas = 0;
        let second = plan_stream(&p, &observe(Some(&draining), pods(1, 0)));
        assert_eq!(
            second.action,
            StreamAction::Apply(StreamShape {
                shards: 2,
                replicas: 0
            })
        );
        assert_eq!(
            message(&second),
            "resharding from 2 to 3: waiting for 1 pod(s) to stop"
        );
        assert_eq!(second.event, None, "one event when the drain starts");
        // A status not yet caught up with the scale-down is not trusted either.
        let mut stale = settled(&p, 2, 0);
        stale.observed = false;
        let third = plan_stream(&p, &observe(Some(&stale), pods(0, 0)));
        assert!(matches!(
            third.action,
            StreamAction::Apply(StreamShape { replicas: 0, .. })
        ));
        // Drained: the new count starts.
        let done = settled(&p, 2, 0);
        let last = plan_stream(&p, &observe(Some(&done), pods(0, 0)));
        assert_eq!(
            last.action,
            StreamAction::Apply(StreamShape {
                shards: 3,
                replicas: 3
            })
        );
        assert_eq!(last.event.map(|e| e.0), Some("StreamResharded"));
    }

    #[test]
    fn an_unknown_shard_count_is_drained_too() {
        let p = streaming(2, false);
        let mut run = settled(&p, 2, 2);
        run.shards = None;
        let plan = plan_stream(&p, &observe(Some(&run), pods(2, 0)));
        assert_eq!(
            plan.action,
            StreamAction::Apply(StreamShape {
                shards: 2,
                replicas: 0
            })
        );
        assert_eq!(
            message(&plan),
            "resharding from an unknown count to 2: waiting for 2 pod(s) to stop"
        );
    }

    #[test]
    fn a_new_template_rolls_with_the_same_count() {
        let p = streaming(2, false);
        let mut run = settled(&p, 2, 2);
        run.update_revision = Some("r2".into());
        run.updated_replicas = 1;
        let plan = plan_stream(&p, &observe(Some(&run), pods(2, 0)));
        assert_eq!(
            plan.action,
            StreamAction::Apply(StreamShape {
                shards: 2,
                replicas: 2
            })
        );
        assert_eq!(
            message(&plan),
            "2/2 shards streaming; rolling out a new revision (1/2 updated)"
        );
    }

    #[test]
    fn creation_waits_for_batch_and_old_stream_pods() {
        let p = streaming(1, false);
        let plan = plan_stream(&p, &observe(None, pods(1, 2)));
        assert_eq!(plan.action, StreamAction::Keep);
        assert_eq!(
            message(&plan),
            "waiting for 3 pod(s) of earlier stream or batch stages to stop"
        );
    }

    #[test]
    fn only_an_owned_statefulset_is_touched() {
        let p = streaming(1, false);
        let mut foreign = settled(&p, 1, 1);
        foreign.owned = false;
        let plan = plan_stream(&p, &observe(Some(&foreign), pods(1, 0)));
        assert_eq!(plan.action, StreamAction::Keep);
        assert_eq!(plan.status.map(|s| s.state), Some(state::FAILED));
        let batch = validate(&example()).expect("valid");
        let plan = plan_stream(&batch, &observe(Some(&foreign), pods(1, 0)));
        assert_eq!(plan.action, StreamAction::Keep);
        let mut owned = foreign.clone();
        owned.owned = true;
        let plan = plan_stream(&batch, &observe(Some(&owned), pods(1, 0)));
        assert_eq!(plan.action, StreamAction::Delete);
        assert_eq!(plan.status, None);
        // Being deleted: not deleted again, and not applied again in streaming mode.
        owned.deleting = true;
        let plan = plan_stream(&batch, &observe(Some(&owned), pods(1, 0)));
        assert_eq!(plan.action, StreamAction::Keep);
        let plan = plan_stream(&p, &observe(Some(&owned), pods(1, 0)));
        assert_eq!(plan.action, StreamAction::Keep);
        assert_eq!(
            message(&plan),
            "waiting for StatefulSet demo-stream to finish deleting"
        );
    }
}
