//! The controller: watches `EcomPipeline`s and the Jobs, StatefulSets, Deployments and
//! Services they own, and reconciles each resource in phases (read, validate, plan/build,
//! apply, status), with a finalizer that runs the cleanup policy, Events on failures and
//! backoff on errors.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tokio::sync::watch;

use crate::admit;
use crate::apply;
use crate::build;
use crate::crd::{CleanupPolicy, ConditionStatus, EcomPipeline, EcomPipelineStatus, Phase};
use crate::leader::{self, Elector, Held, LeaseConfig};
use crate::meta::{Stage, FINALIZER, LABEL_COMPONENT, LABEL_INSTANCE};
use crate::metrics::{self, Metrics};
use crate::observe::{self, JobState};
use crate::plan::{self, state, DashboardAction, Observed, StreamAction};
use crate::reach;
use crate::status;
use crate::validate;

/// Errors of reconcile and of the operator process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading objects failed.
    #[error("reading {what} of EcomPipeline {resource}: {source}")]
    Read {
        /// What was read.
        what: &'static str,
        /// `namespace/name`.
        resource: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A write failed.
    #[error("EcomPipeline {resource}: {source}")]
    Apply {
        /// `namespace/name`.
        resource: String,
        /// The write error.
        #[source]
        source: apply::Error,
    },
    /// The finalizer machinery failed.
    #[error("finalizer of EcomPipeline {resource}: {source}")]
    Finalizer {
        /// `namespace/name`.
        resource: String,
        /// The finalizer error.
        #[source]
        source: Box<kube::runtime::finalizer::Error<Error>>,
    },
    /// The cleanup Job has not finished yet (not a failure: reconcile again soon).
    #[error("EcomPipeline {resource}: waiting for cleanup Job {job}")]
    CleanupPending {
        /// `namespace/name`.
        resource: String,
        /// The cleanup Job.
        job: String,
    },
    /// The cleanup Job failed.
    #[error("EcomPipeline {resource}: cleanup Job {job} failed ({reason}); set cleanupPolicy: Retain to delete without cleanup")]
    CleanupFailed {
        /// `namespace/name`.
        resource: String,
        /// The cleanup Job.
        job: String,
        /// The Job's failure reason.
        reason: String,
    },
    /// The resource has no namespace.
    #[error("EcomPipeline {name} has no namespace")]
    NoNamespace {
        /// Name of the resource.
        name: String,
    },
    /// The CRD is not installed or the API server unreachable.
    #[error(
        "listing EcomPipelines (is the CRD installed? `ecom crd | kubectl apply -f -`): {source}"
    )]
    CrdMissing {
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The Kubernetes client could not be configured.
    #[error("configuring the Kubernetes client: {source}")]
    Client {
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The metrics server failed.
    #[error(transparent)]
    Metrics(#[from] metrics::Error),
    /// Leadership was lost while reconciling.
    #[error("lost the lease {name}: another replica leads now")]
    LeadershipLost {
        /// Name of the Lease.
        name: String,
    },
    /// Leader election failed.
    #[error(transparent)]
    Leader(#[from] leader::Error),
}

impl Error {
    /// A short label for the failures metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Read { .. } => "read",
            Error::Apply { source, .. } => source.metric_label(),
            Error::Finalizer { .. } => "finalizer",
            Error::CleanupPending { .. } => "cleanup_pending",
            Error::CleanupFailed { .. } => "cleanup_failed",
            Error::NoNamespace { .. } => "no_namespace",
            Error::CrdMissing { .. } => "crd_missing",
            Error::Client { .. } => "client",
            Error::Metrics(_) => "metrics",
            Error::LeadershipLost { .. } => "leadership_lost",
            Error::Leader(_) => "leader",
        }
    }
}

/// Settings of the operator process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub listen: SocketAddr,
    /// Watch only this namespace (all when `None`).
    pub namespace: Option<String>,
    /// Leader election.
    pub lease: LeaseConfig,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// Probe the services of running stages and say in their status which one they wait for
    /// ([`reach`]); needs the operator to resolve and reach what the stage pods do.
    pub probe_services: bool,
    /// The images and Secrets pipelines may use.
    pub policy: admit::Policy,
}

/// Shared state of reconciles.
pub struct Context {
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    failures: Mutex<HashMap<String, u32>>,
    probe_services: bool,
    policy: admit::Policy,
    /// Every watched `EcomPipeline` (the controller's cache), for storage conflicts.
    pipelines: Store<EcomPipeline>,
}

fn resource_id(obj: &EcomPipeline) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

fn now_string() -> String {
    Timestamp::from_second(Timestamp::now().as_second())
        .unwrap_or_else(|_| Timestamp::now())
        .to_string()
}

impl Context {
    /// The watched pipelines that could run: not being deleted, valid, within the
    /// allow-lists (the others hold no storage).
    fn runnable_pipelines(&self) -> Vec<validate::Pipeline> {
        self.pipelines
            .state()
            .iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
            .filter_map(|o| validate::validate(o).ok())
            .filter(|o| admit::check_policy(o, &self.policy).is_ok())
            .collect()
    }

    async fn event(&self, obj: &EcomPipeline, type_: EventType, reason: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(resource = %resource_id(obj), error = %e, "publishing an Event");
        }
    }
}

/// Reconciles one `EcomPipeline` (through the finalizer helper).
async fn reconcile(obj: Arc<EcomPipeline>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let resource = resource_id(&obj);
    let ns = obj.namespace().ok_or_else(|| Error::NoNamespace {
        name: obj.name_any(),
    })?;
    let api: Api<EcomPipeline> = Api::namespaced(ctx.client.clone(), &ns);
    let c = ctx.clone();
    let result = finalizer(&api, FINALIZER, obj, |event| async move {
        match event {
            Finalizer::Apply(o) => apply_pipeline(&o, &c).await,
            Finalizer::Cleanup(o) => cleanup(&o, &c).await,
        }
    })
    .await;
    use kube::runtime::finalizer::Error as FinErr;
    let result = match result {
        Ok(action) => Ok(action),
        // A stale event for an object already gone: nothing left to do.
        Err(
            FinErr::AddFinalizer(kube::Error::Api(s))
            | FinErr::RemoveFinalizer(kube::Error::Api(s)),
        ) if s.code == 404 => Ok(Action::await_change()),
        Err(FinErr::ApplyFailed(err) | FinErr::CleanupFailed(err)) => Err(err),
        Err(other) => Err(Error::Finalizer {
            resource: resource.clone(),
            source: Box::new(other),
        }),
    };
    ctx.metrics.reconciled(started.elapsed());
    if result.is_ok() {
        if let Ok(mut f) = ctx.failures.lock() {
            f.remove(&resource);
        }
    }
    result
}

/// After an error: count it, and back off exponentially per resource (5 s to 5 min).
fn error_policy(obj: Arc<EcomPipeline>, error: &Error, ctx: Arc<Context>) -> Action {
    if let Error::CleanupPending { .. } = error {
        return Action::requeue(Duration::from_secs(2));
    }
    tracing::warn!(resource = %resource_id(&obj), error = %error, "reconcile failed");
    ctx.metrics.failed(error.metric_label());
    let n = ctx
        .failures
        .lock()
        .map(|mut f| {
            let n = f.entry(resource_id(&obj)).or_insert(0);
            *n = n.saturating_add(1);
            *n
        })
        .unwrap_or(1);
    let secs = 5u64.saturating_mul(1 << n.min(6).saturating_sub(1));
    Action::requeue(Duration::from_secs(secs.min(300)))
}

/// The normal reconcile: validate, read, plan, apply, write status.
async fn apply_pipeline(obj: &EcomPipeline, ctx: &Context) -> Result<Action, Error> {
    let resource = resource_id(obj);
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let client = &ctx.client;
    let apply_err = |source| Error::Apply {
        resource: resource.clone(),
        source,
    };
    let previous = obj.status.as_ref();
    let p = match validate::validate(obj) {
        Ok(p) => p,
        Err(e) => {
            let message = e.to_string();
            refuse(obj, ctx, (Phase::Invalid, "InvalidSpec"), &message).await?;
            // Nothing to retry until the spec changes.
            return Ok(Action::await_change());
        }
    };
    if let Err(r) = admit::check_policy(&p, &ctx.policy) {
        refuse(obj, ctx, (Phase::Refused, r.reason()), &r.to_string()).await?;
        // The allow-lists change only with the operator's flags (a restart re-reconciles).
        return Ok(Action::await_change());
    }
    let others = ctx.runnable_pipelines();
    if let Some(r) = admit::storage_conflict(&p, &others) {
        refuse(obj, ctx, (Phase::Refused, r.reason()), &r.to_string()).await?;
        // The other pipeline may go away or move: look again.
        return Ok(Action::requeue(REFUSED_RECHECK));
    }

    // Read what exists.
    let selector = format!("{LABEL_INSTANCE}={name}");
    let lp = ListParams::default().labels(&selector);
    let read_err = |what| {
        let resource = resource.clone();
        move |source| Error::Read {
            what,
            resource,
            source,
        }
    };
    let uid = p.owner.uid.clone();
    let owned = |refs: Option<
        &Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
    >| { refs.is_some_and(|r| r.iter().any(|o| o.uid == uid)) };
    let jobs: Vec<Job> = Api::<Job>::namespaced(client.clone(), &ns)
        .list(&lp)
        .await
        .map_err(read_err("Jobs"))?
        .items
        .into_iter()
        .filter(|j| owned(j.metadata.owner_references.as_ref()))
        .collect();
    let pods: Vec<Pod> = Api::<Pod>::namespaced(client.clone(), &ns)
        .list(&lp)
        .await
        .map_err(read_err("Pods"))?
        .items;
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get_opt(&build::dashboard_name(&p))
        .await
        .map_err(read_err("the dashboard Deployment"))?;
    // The stream StatefulSet by name, owned or not (the plan touches only an owned one).
    let stream_name = build::stream::statefulset_name(&p);
    let mut stream = Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .get_opt(&stream_name)
        .await
        .map_err(read_err("the stream StatefulSet"))?
        .map(|s| observe::stream_run(&s, &pods, &uid));
    let mut runs: Vec<_> = jobs.iter().map(|j| observe::job_run(j, &pods)).collect();
    if ctx.probe_services {
        say_what_running_stages_wait_for(&p, &jobs, &mut runs).await;
        if let Some(run) = stream.as_mut().filter(|_| p.is_streaming()) {
            say_what_the_stream_waits_for(&p, run).await;
        }
    }

    // Plan and apply.
    let plan = plan::plan(
        &p,
        &Observed {
            jobs: &runs,
            stream: stream.as_ref(),
            active: observe::active_pods(&pods),
            previous,
        },
    );
    let applied = apply_plan(&p, &plan, deployment.as_ref(), &stream_name, client).await;
    let dashboard_ready = match applied {
        Ok(ready) => ready,
        Err(apply::Error::NotOwned {
            kind,
            namespace: _,
            name: object,
        }) => {
            let r = admit::Refusal::NotOwned { kind, name: object };
            refuse(obj, ctx, (Phase::Refused, r.reason()), &r.to_string()).await?;
            return Ok(Action::requeue(REFUSED_RECHECK));
        }
        Err(e) => return Err(apply_err(e)),
    };
    ctx.metrics.jobs_created(plan.create.len());
    if !plan.create.is_empty() {
        let names: Vec<_> = plan.create.iter().map(|j| j.name_any()).collect();
        ctx.event(obj, EventType::Normal, "JobsCreated", names.join(", "))
            .await;
    }
    if let Some((reason, note)) = &plan.stream.event {
        tracing::info!(resource = %resource, statefulset = %stream_name, "{note}");
        ctx.event(obj, EventType::Normal, reason, note.clone())
            .await;
    }
    // Events for stages that newly failed.
    for (stage, st) in &plan.stages {
        let was_failed = previous
            .and_then(|s| s.stages.get(stage))
            .is_some_and(|o| o.state == state::FAILED && o.job == st.job);
        if st.state == state::FAILED && !was_failed {
            let note = format!(
                "stage {stage} (Job {}) failed: {}",
                st.job.clone().unwrap_or_default(),
                st.message.clone().unwrap_or_default()
            );
            ctx.event(obj, EventType::Warning, "StageFailed", note)
                .await;
        }
    }

    let st = status::compute(&p, &plan, dashboard_ready, previous, &now_string());
    let became_ready =
        st.phase == Some(Phase::Ready) && previous.and_then(|s| s.phase) != Some(Phase::Ready);
    if Some(&st) != previous {
        apply::status(client, &ns, &name, &st)
            .await
            .map_err(apply_err)?;
    }
    if became_ready {
        let what = if p.is_streaming() {
            "streaming"
        } else {
            "data loaded"
        };
        let note = format!(
            "{what}; dashboard: {}",
            st.dashboard
                .as_ref()
                .map(|d| d.port_forward.clone())
                .unwrap_or_else(|| "disabled".into())
        );
        ctx.event(obj, EventType::Normal, "Ready", note).await;
    }
    // Owned objects trigger reconciles; the periodic requeue is a safety net.
    Ok(Action::requeue(
        plan.requeue_after.unwrap_or(Duration::from_secs(300)),
    ))
}

/// How often a refused pipeline is looked at again (another pipeline may have released its
/// storage, or an object in the way may be gone).
const REFUSED_RECHECK: Duration = Duration::from_secs(30);

/// Writes the status of a pipeline the operator does not run (and an Event when the reason
/// or the generation is new).
async fn refuse(
    obj: &EcomPipeline,
    ctx: &Context,
    (phase, reason): (Phase, &str),
    message: &str,
) -> Result<(), Error> {
    let previous = obj.status.as_ref();
    let already = previous.is_some_and(|s| {
        s.phase == Some(phase)
            && s.observed_generation == obj.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.reason == reason && c.message == message)
    });
    if !already {
        ctx.event(obj, EventType::Warning, reason, message.to_string())
            .await;
    }
    let st = status::refused(
        obj.metadata.generation,
        (phase, reason),
        message,
        previous,
        &now_string(),
    );
    if Some(&st) != previous {
        let ns = obj.namespace().unwrap_or_default();
        apply::status(&ctx.client, &ns, &obj.name_any(), &st)
            .await
            .map_err(|source| Error::Apply {
                resource: resource_id(obj),
                source,
            })?;
    }
    Ok(())
}

/// The apply phase: creates, suspends and deletes the plan's Jobs, the stream StatefulSet
/// and the dashboard, touching only objects the pipeline controls. Returns the dashboard's
/// ready replicas (`None`: no dashboard).
async fn apply_plan(
    p: &validate::Pipeline,
    plan: &plan::Plan,
    deployment: Option<&Deployment>,
    stream_name: &str,
    client: &Client,
) -> Result<Option<i32>, apply::Error> {
    let ns = &p.owner.namespace;
    let uid = &p.owner.uid;
    let resource = format!("{ns}/{}", p.owner.name);
    let dashboard_name = build::dashboard_name(p);
    // A named object of the plan that belongs to someone else refuses the pipeline before
    // anything is written: a refused pipeline holds no workloads.
    if plan.dashboard == DashboardAction::Apply {
        apply::ensure_controllable::<Deployment>(client, ns, &dashboard_name, uid).await?;
        apply::ensure_controllable::<Service>(client, ns, &dashboard_name, uid).await?;
    }
    if let StreamAction::Apply(_) = plan.stream.action {
        apply::ensure_controllable::<StatefulSet>(client, ns, stream_name, uid).await?;
    }
    for job in &plan.create {
        apply::apply(client, job, uid).await?;
        tracing::info!(resource = %resource, job = %job.name_any(), "created Job");
    }
    for (job, suspend) in &plan.set_suspend {
        apply::set_job_suspend(client, ns, job, *suspend).await?;
    }
    for job in &plan.delete {
        if apply::delete::<Job>(client, ns, job, uid).await? {
            tracing::info!(resource = %resource, job = %job, "deleted Job");
        }
    }
    match plan.stream.action {
        StreamAction::Apply(shape) => {
            apply::apply(client, &build::stream::statefulset(p, shape), uid).await?;
        }
        StreamAction::Delete => {
            if apply::delete::<StatefulSet>(client, ns, stream_name, uid).await? {
                tracing::info!(resource = %resource, statefulset = %stream_name, "deleted StatefulSet");
            }
        }
        StreamAction::Keep => {}
    }
    let mut dashboard_ready = deployment
        .filter(|d| apply::controlled_by(*d, uid))
        .map(|d| {
            d.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
        });
    match plan.dashboard {
        DashboardAction::Apply => {
            apply::apply(client, &build::dashboard_deployment(p), uid).await?;
            apply::apply(client, &build::dashboard_service(p), uid).await?;
            dashboard_ready.get_or_insert(0);
        }
        DashboardAction::Delete => {
            apply::delete::<Deployment>(client, ns, &dashboard_name, uid).await?;
            apply::delete::<Service>(client, ns, &dashboard_name, uid).await?;
            dashboard_ready = None;
        }
        DashboardAction::Keep => {}
    }
    Ok(dashboard_ready)
}

/// Running stages whose pods are not stuck but one of whose services is unreachable wait
/// for it (their own retries run within the deadline): their status says so.
async fn say_what_running_stages_wait_for(
    p: &validate::Pipeline,
    jobs: &[Job],
    runs: &mut [observe::JobRun],
) {
    let mut prober = reach::Prober::default();
    for (job, run) in jobs.iter().zip(runs.iter_mut()) {
        if run.state != JobState::Running || run.waiting.is_some() || run.suspend {
            continue;
        }
        let stage = job
            .labels()
            .get(LABEL_COMPONENT)
            .and_then(|c| Stage::from_name(c));
        let Some(stage) = stage else { continue };
        if let Some(u) = prober.first_unreachable(&reach::endpoints(p, stage)).await {
            run.waiting = Some(format!("waiting for {u}"));
        }
    }
}

/// A stream StatefulSet whose pods are not stuck but one of whose services is unreachable
/// waits for it (its pods retry, bounded by their failure streak): its status says so.
async fn say_what_the_stream_waits_for(p: &validate::Pipeline, run: &mut observe::StreamRun) {
    if run.waiting.is_some() || run.replicas == 0 || !run.owned {
        return;
    }
    let mut prober = reach::Prober::default();
    if let Some(u) = prober
        .first_unreachable(&reach::endpoints(p, Stage::Stream))
        .await
    {
        run.waiting = Some(format!("waiting for {u}"));
    }
}

/// The finalizer: with `cleanupPolicy: Delete`, run the cleanup Job and wait for it.
async fn cleanup(obj: &EcomPipeline, ctx: &Context) -> Result<Action, Error> {
    let resource = resource_id(obj);
    if obj.spec.cleanup_policy == CleanupPolicy::Retain {
        ctx.event(
            obj,
            EventType::Normal,
            "DataRetained",
            "cleanupPolicy Retain: HDFS paths and HBase table kept".into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let p = match validate::validate(obj) {
        Ok(p) => p,
        Err(e) => {
            ctx.event(
                obj,
                EventType::Warning,
                "CleanupSkipped",
                format!("invalid spec, nothing to clean: {e}"),
            )
            .await;
            return Ok(Action::await_change());
        }
    };
    // Data this pipeline never wrote is not its to delete: a pipeline refused all along, or
    // one whose storage an older pipeline holds.
    let quiet_status = obj
        .status
        .as_ref()
        .is_none_or(|s| s.stages.is_empty() && s.phase != Some(Phase::Ready));
    let never_ran = quiet_status && !has_workloads(&p, &ctx.client).await?;
    let others = ctx.runnable_pipelines();
    let held = admit::storage_conflict(&p, &others);
    if never_ran || held.is_some() {
        let why = held.map_or("the pipeline never ran".to_string(), |r| r.to_string());
        ctx.event(
            obj,
            EventType::Normal,
            "CleanupSkipped",
            format!("HDFS paths and HBase table kept: {why}"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let ns = p.owner.namespace.clone();
    let job_name = build::cleanup_job_name(&p);
    let existing = Api::<Job>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&job_name)
        .await
        .map_err(|source| Error::Read {
            what: "the cleanup Job",
            resource: resource.clone(),
            source,
        })?
        .filter(|j| apply::controlled_by(j, &p.owner.uid));
    match existing.as_ref().map(observe::job_state) {
        None => {
            apply::apply(&ctx.client, &build::cleanup_job(&p), &p.owner.uid)
                .await
                .map_err(|source| Error::Apply {
                    resource: resource.clone(),
                    source,
                })?;
            ctx.event(
                obj,
                EventType::Normal,
                "CleanupStarted",
                format!("Job {job_name} deletes the HDFS paths and the HBase table"),
            )
            .await;
            Err(Error::CleanupPending {
                resource,
                job: job_name,
            })
        }
        Some(JobState::Succeeded) => {
            ctx.event(
                obj,
                EventType::Normal,
                "CleanedUp",
                format!("Job {job_name} deleted the pipeline's data"),
            )
            .await;
            Ok(Action::await_change())
        }
        Some(JobState::Failed { reason, .. }) => {
            let e = Error::CleanupFailed {
                resource,
                job: job_name,
                reason,
            };
            ctx.event(obj, EventType::Warning, "CleanupFailed", e.to_string())
                .await;
            Err(e)
        }
        Some(_) => Err(Error::CleanupPending {
            resource,
            job: job_name,
        }),
    }
}

/// Whether a Job or the stream StatefulSet of `p` exists (it ran, or was about to).
async fn has_workloads(p: &validate::Pipeline, client: &Client) -> Result<bool, Error> {
    let ns = &p.owner.namespace;
    let resource = format!("{ns}/{}", p.owner.name);
    let lp = ListParams::default().labels(&format!("{LABEL_INSTANCE}={}", p.owner.name));
    let jobs = Api::<Job>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .map_err(|source| Error::Read {
            what: "Jobs",
            resource: resource.clone(),
            source,
        })?;
    if jobs
        .items
        .iter()
        .any(|j| apply::controlled_by(j, &p.owner.uid))
    {
        return Ok(true);
    }
    let stream = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .get_opt(&build::stream::statefulset_name(p))
        .await
        .map_err(|source| Error::Read {
            what: "the stream StatefulSet",
            resource,
            source,
        })?;
    Ok(stream.is_some_and(|s| apply::controlled_by(&s, &p.owner.uid)))
}

fn shutdown_signal(tx: watch::Sender<bool>) {
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    futures::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        tracing::info!("shutdown requested");
        let _ = tx.send(true);
    });
}

/// Runs the operator until SIGTERM/SIGINT: serves metrics and probes, waits for the lease,
/// then reconciles until shutdown (releasing the lease) or until leadership is lost (error).
pub async fn run(cfg: Config) -> Result<(), Error> {
    let client = Client::try_default()
        .await
        .map_err(|source| Error::Client { source })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    shutdown_signal(stop_tx.clone());
    let metrics = Arc::new(Metrics::default());
    let (bound, server) = metrics::serve(cfg.listen, metrics.clone(), stop_rx.clone()).await?;
    tracing::info!(address = %bound, "serving /metrics, /healthz and /readyz");
    let server = tokio::spawn(server);

    let pipelines: Api<EcomPipeline> = match &cfg.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    pipelines
        .list(&ListParams::default().limit(1))
        .await
        .map_err(|source| Error::CrdMissing { source })?;
    metrics.set_ready(true);

    let elector = Elector::new(client.clone(), cfg.lease.clone());
    let mut stop = stop_rx.clone();
    tracing::info!(lease = %cfg.lease.name, identity = %cfg.lease.identity, "waiting for the lease");
    if !elector.acquire(&mut stop).await {
        let _ = server.await;
        return Ok(());
    }
    tracing::info!(identity = %cfg.lease.identity, "leading");
    metrics.set_leader(true);
    let (lost_tx, mut lost_rx) = watch::channel(false);
    let holder = {
        let elector = elector.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let held = elector.hold(&mut stop).await;
            let _ = lost_tx.send(held == Held::Lost);
            held
        })
    };

    let (jobs, statefulsets, deployments, services) = match &cfg.namespace {
        Some(ns) => (
            Api::<Job>::namespaced(client.clone(), ns),
            Api::<StatefulSet>::namespaced(client.clone(), ns),
            Api::<Deployment>::namespaced(client.clone(), ns),
            Api::<Service>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=ecom-operator");
    let mut stop_for_ctrl = stop_rx.clone();
    let mut lost_for_ctrl = lost_rx.clone();
    let controller = Controller::new(pipelines, watcher::Config::default())
        .owns(jobs, owned.clone())
        // A stream pod becoming ready (or not) changes its StatefulSet's status.
        .owns(statefulsets, owned.clone())
        .owns(deployments, owned.clone())
        .owns(services, owned)
        .with_config(kube::runtime::controller::Config::default().concurrency(cfg.concurrency));
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "ecom-operator".into(),
                instance: Some(cfg.lease.identity.clone()),
            },
        ),
        metrics: metrics.clone(),
        failures: Mutex::new(HashMap::new()),
        probe_services: cfg.probe_services,
        policy: cfg.policy.clone(),
        pipelines: controller.store(),
    });
    controller
        .graceful_shutdown_on(async move {
            tokio::select! {
                _ = stop_for_ctrl.wait_for(|s| *s) => {}
                _ = lost_for_ctrl.wait_for(|l| *l) => {}
            }
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(resource = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile"),
            }
        })
        .await;
    metrics.set_leader(false);
    if *lost_rx.borrow_and_update() {
        return Err(Error::LeadershipLost {
            name: cfg.lease.name.clone(),
        });
    }
    let _ = stop_tx.send(true);
    let _ = holder.await;
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}

/// Whether `status` has the condition Ready=True.
pub fn is_ready(status: Option<&EcomPipelineStatus>) -> bool {
    status.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
    })
}
