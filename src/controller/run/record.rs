//! Where an owner's runs are recorded: a khstate for v1 checks and jobs, the status of a v3
//! HealthCheck. The planner, the report judge and the status page read either in the
//! khstate's terms ([`Record::run`]); the executor and report intake write each to its own
//! place, always conditioned on the `resourceVersion` it was read at.

use std::borrow::Cow;
use std::sync::Arc;

use kube::ResourceExt;

use super::healthcheck;
use crate::api::key_of;
use crate::api::{HealthCheck, KuberhealthyState, KuberhealthyStateSpec};

#[derive(Debug, Clone)]
pub enum Record {
    /// A khstate.
    State(Arc<KuberhealthyState>),
    /// A HealthCheck, whose status is its record.
    Status(Arc<HealthCheck>),
}

impl Record {
    /// The record in the khstate's terms.
    pub fn run(&self) -> Cow<'_, KuberhealthyStateSpec> {
        match self {
            Record::State(s) => Cow::Borrowed(&s.spec),
            Record::Status(hc) => Cow::Owned(healthcheck::as_run(hc)),
        }
    }

    /// The khstate, when the record is one.
    pub fn as_state(&self) -> Option<&Arc<KuberhealthyState>> {
        match self {
            Record::State(s) => Some(s),
            Record::Status(_) => None,
        }
    }

    /// The version every write of this record is conditioned on.
    pub fn resource_version(&self) -> Option<String> {
        match self {
            Record::State(s) => s.resource_version(),
            Record::Status(hc) => hc.resource_version(),
        }
    }

    pub fn namespace(&self) -> String {
        match self {
            Record::State(s) => s.namespace().unwrap_or_default(),
            Record::Status(hc) => hc.namespace().unwrap_or_default(),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Record::State(s) => s.name_any(),
            Record::Status(hc) => hc.name_any(),
        }
    }

    /// `namespace/name` of the record's owner.
    pub fn key(&self) -> String {
        key_of(&self.namespace(), &self.name())
    }

    /// What the record is, for messages: `khstate`, or `HealthCheck status`.
    pub fn describe_record(&self) -> &'static str {
        match self {
            Record::State(_) => "khstate",
            Record::Status(_) => "HealthCheck status",
        }
    }
}
