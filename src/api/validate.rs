//! Validation of check and job specs that the CRD schema cannot express. Each error names
//! the field, the value and what is expected, so it can go straight into an Event or a
//! khstate error.

use std::fmt;
use std::time::Duration;

use super::pod_spec::PodSpecText;

use super::Workload;
use super::duration::{self, DurationError};

/// v2's timeout when `spec.timeout` is empty.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// One problem with one field of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The field's path, such as `spec.runInterval`.
    pub field: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for SpecError {}

fn duration_error(field: &str, value: &str, err: DurationError) -> SpecError {
    SpecError {
        field: field.to_string(),
        message: format!(
            "{value:?} is not a valid duration ({err}); write a Go duration such as \"6h\", \"5m\" or \"1m30s\""
        ),
    }
}

/// A Go duration above zero; the error names `field`.
pub fn positive_duration(field: &str, value: &str) -> Result<Duration, SpecError> {
    let d = duration::parse(value.trim()).map_err(|e| duration_error(field, value, e))?;
    if d.is_zero() {
        return Err(SpecError {
            field: field.to_string(),
            message: format!("{value:?} must be greater than zero"),
        });
    }
    Ok(d)
}

/// `spec.runInterval`: required, positive.
pub fn run_interval(value: &str) -> Result<Duration, SpecError> {
    if value.trim().is_empty() {
        return Err(SpecError {
            field: "spec.runInterval".into(),
            message:
                "is empty; set how often the check runs, such as \"10m\", or set spec.schedule"
                    .into(),
        });
    }
    positive_duration("spec.runInterval", value)
}

/// `spec.dependsOn[i]`: `name` or `namespace/name`, each a DNS subdomain name. Whether
/// the check exists, and cycles, are judged against all checks (`run::depends`).
pub fn dependency(i: usize, value: &str) -> Result<(), SpecError> {
    let field = format!("spec.dependsOn[{i}]");
    let parts: Vec<&str> = value.split('/').collect();
    let valid = |part: &str| {
        !part.is_empty()
            && part.len() <= 253
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    if (1..=2).contains(&parts.len()) && parts.iter().all(|p| valid(p)) {
        Ok(())
    } else {
        Err(SpecError {
            field,
            message: format!(
                "{value:?} is not a check name; write `name` (a check of this namespace) or `namespace/name`"
            ),
        })
    }
}

/// `spec.timeout`: positive; empty means v2's default of five minutes.
pub fn timeout(value: &str) -> Result<Duration, SpecError> {
    if value.trim().is_empty() {
        return Ok(DEFAULT_TIMEOUT);
    }
    positive_duration("spec.timeout", value)
}

/// `spec.podSpec`: at least one container, and every container names an image (the
/// checker pod could not start otherwise).
pub fn pod_spec(spec: &PodSpecText) -> Result<(), Vec<SpecError>> {
    pod_spec_at(spec, "spec.podSpec")
}

/// [`pod_spec`] for a pod spec at `path` (a HealthCheck's is `spec.podSpec.spec`).
pub fn pod_spec_at(spec: &PodSpecText, path: &str) -> Result<(), Vec<SpecError>> {
    let mut errors = Vec::new();
    if spec.containers().is_empty() {
        errors.push(SpecError {
            field: format!("{path}.containers"),
            message: "is empty; a checker pod needs at least one container".into(),
        });
    }
    for (i, c) in spec.containers().iter().enumerate() {
        if c.image.as_deref().is_none_or(|s| s.trim().is_empty()) {
            errors.push(SpecError {
                field: format!("{path}.containers[{i}].image"),
                message: format!("container {:?} has no image; set the checker image", c.name),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// How an invalid check or job is reported, in its khstate, its Event and on the status
/// page: one message per field, prefixed with `namespace/name` and what it is.
pub fn describe_invalid(key: &str, workload: Workload, errors: &[SpecError]) -> Vec<String> {
    let what = match workload {
        Workload::Check => "check",
        Workload::Job => "job",
    };
    describe_invalid_as(key, what, errors)
}

/// [`describe_invalid`] naming what is invalid (`check`, `job`, `HealthCheck`).
pub fn describe_invalid_as(key: &str, what: &str, errors: &[SpecError]) -> Vec<String> {
    errors
        .iter()
        .map(|e| format!("{key}: invalid {what}: {e}"))
        .collect()
}

/// Collects the errors of several field validations into one list.
pub(crate) fn collect<T>(result: Result<T, SpecError>, errors: &mut Vec<SpecError>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}
