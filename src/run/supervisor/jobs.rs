//! The leader's handling of `KuberhealthyJob`s: run once, complete, delete when old.

use jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};

use super::{Source, Supervisor};
use crate::api::{JobPhase, KuberhealthyJob};
use crate::schedule;

impl Supervisor {
    /// Jobs run once: new ones start, finished ones complete, old completed ones go.
    pub(super) async fn supervise_jobs(&mut self, now: Timestamp) -> Option<Timestamp> {
        let mut wake = None;
        for job in self.cache.jobs.state() {
            let (namespace, name) = (job.namespace().unwrap_or_default(), job.name_any());
            let source = Source::Job(&job);
            let timeout = match job.validate() {
                Ok(t) => t,
                Err(errors) => {
                    tracing::warn!(job = %source.key(), errors = ?errors.iter().map(ToString::to_string).collect::<Vec<_>>(), "invalid job");
                    continue;
                }
            };
            let state = self.state(&namespace, &name);
            match job.phase() {
                Ok(JobPhase::New) => {
                    if self.budget.try_take() && self.start_run(&source, timeout).await {
                        self.set_job_phase(&job, JobPhase::Running).await;
                    }
                }
                Ok(JobPhase::Running) => match state {
                    Some(s) if s.spec.run_in_flight() => {
                        if let Some(t) = self.supervise_run(&s, Source::Job(&job)).await {
                            wake = Some(wake.map_or(t, |w: Timestamp| w.min(t)));
                        }
                    }
                    Some(_) => self.set_job_phase(&job, JobPhase::Completed).await,
                    // Running but no state (a crash between the two writes): run it again.
                    None => {
                        self.start_run(&source, timeout).await;
                    }
                },
                Ok(JobPhase::Completed) => {
                    let finished = state.and_then(|s| s.spec.run_finished_at.or(s.spec.last_run));
                    let since = finished
                        .or(job.creation_timestamp().map(|t| t.0))
                        .unwrap_or(now);
                    let expires = schedule::add(since, self.settings.max_khjob_age);
                    if expires <= now {
                        self.delete_job(&job).await;
                    } else {
                        wake = Some(wake.map_or(expires, |w: Timestamp| w.min(expires)));
                    }
                }
                Err(e) => tracing::warn!(job = %source.key(), "{e}"),
            }
        }
        wake
    }

    async fn set_job_phase(&self, job: &KuberhealthyJob, phase: JobPhase) {
        if !self.term.is_valid() {
            return;
        }
        let api: Api<KuberhealthyJob> =
            Api::namespaced(self.client.clone(), &job.namespace().unwrap_or_default());
        let mut next = job.clone();
        next.spec.phase = Some(phase.as_str().into());
        match api
            .replace(&job.name_any(), &PostParams::default(), &next)
            .await
        {
            Ok(_) => tracing::info!(job = %job.name_any(), phase = phase.as_str(), "job phase"),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => tracing::warn!(job = %job.name_any(), error = %e, "cannot set the job phase"),
        }
    }

    async fn delete_job(&self, job: &KuberhealthyJob) {
        if !self.term.is_valid() {
            return;
        }
        let namespace = job.namespace().unwrap_or_default();
        let api: Api<KuberhealthyJob> = Api::namespaced(self.client.clone(), &namespace);
        match api.delete(&job.name_any(), &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(job = %job.name_any(), namespace = %namespace, "deleted a completed job older than maxKHJobAge")
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(job = %job.name_any(), error = %e, "cannot delete the completed job")
            }
        }
    }
}
