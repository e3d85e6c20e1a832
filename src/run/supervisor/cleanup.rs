//! What deleted checks and jobs leave behind (states and pods), and finished pods beyond
//! the retention settings.

use std::collections::HashSet;

use jiff::Timestamp;
use kube::ResourceExt;

use super::{Supervisor, key_of};
use crate::api::names;
use crate::run::reap;

impl Supervisor {
    /// Removes what deleted checks and jobs left behind (their states and pods), and reaps
    /// finished pods beyond the retention settings.
    pub(super) async fn clean_up(&mut self, now: Timestamp) {
        let owners: HashSet<String> = self
            .cache
            .checks
            .state()
            .iter()
            .map(|c| key_of(&c.namespace().unwrap_or_default(), &c.name_any()))
            .chain(
                self.cache
                    .jobs
                    .state()
                    .iter()
                    .map(|j| key_of(&j.namespace().unwrap_or_default(), &j.name_any())),
            )
            .collect();
        let mut in_flight = HashSet::new();
        for state in self.cache.states.state() {
            let namespace = state.namespace().unwrap_or_default();
            let key = key_of(&namespace, &state.name_any());
            if owners.contains(&key) {
                if state.spec.run_in_flight()
                    && let Some(pod) = &state.spec.run_pod
                {
                    in_flight.insert(key_of(&namespace, pod));
                }
                continue;
            }
            if self.term.is_valid() {
                match self.states.delete(&namespace, &state.name_any()).await {
                    Ok(()) => {
                        tracing::info!(state = %key, "deleted the khstate of a deleted check or job")
                    }
                    Err(e) => {
                        tracing::warn!(state = %key, error = %e, "cannot delete an orphaned khstate")
                    }
                }
            }
        }
        let pods = self.cache.pods.state();
        for pod in &pods {
            let namespace = pod.namespace().unwrap_or_default();
            let Some(check) = pod.labels().get(names::LABEL_CHECK_NAME) else {
                continue;
            };
            let running = !matches!(
                pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            );
            if !owners.contains(&key_of(&namespace, check))
                && pod.metadata.deletion_timestamp.is_none()
            {
                let why = if running {
                    "its check or job was deleted"
                } else {
                    "its check or job was deleted (finished pod)"
                };
                self.delete_pod(&namespace, &pod.name_any(), why).await;
            }
        }
        let retention = self.settings.retention;
        for reaped in reap::reap(pods.iter().map(|p| p.as_ref()), &in_flight, retention, now) {
            self.delete_pod(&reaped.namespace, &reaped.name, reaped.reason)
                .await;
        }
    }
}
