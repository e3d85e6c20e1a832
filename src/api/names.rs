//! Names that v2 checker images, clients, dashboards and RBAC depend on. They are part of
//! the compatibility contract: never rename them.

/// Environment variables injected into every checker container.
pub const ENV_REPORTING_URL: &str = "KH_REPORTING_URL";
pub const ENV_RUN_UUID: &str = "KH_RUN_UUID";
pub const ENV_CHECK_RUN_DEADLINE: &str = "KH_CHECK_RUN_DEADLINE";
pub const ENV_POD_NAMESPACE: &str = "KH_POD_NAMESPACE";
/// The injected names, which replace user-supplied values of the same names.
pub const INJECTED_ENV: [&str; 4] = [
    ENV_REPORTING_URL,
    ENV_RUN_UUID,
    ENV_CHECK_RUN_DEADLINE,
    ENV_POD_NAMESPACE,
];

/// Labels on every checker pod.
pub const LABEL_RUN_ID: &str = "kuberhealthy-run-id";
pub const LABEL_CHECK_NAME: &str = "kuberhealthy-check-name";
pub const LABEL_APP: &str = "app";
pub const LABEL_APP_VALUE: &str = "kuberhealthy-check";

/// Annotation on every checker pod naming its check.
pub const ANNOTATION_CHECK_NAME: &str = "comcast.github.io/check-name";

/// Header that carries the run UUID on a report.
pub const HEADER_RUN_UUID: &str = "kh-run-uuid";

/// Report paths: v2's and v3's.
pub const REPORT_PATH_V2: &str = "/externalCheckStatus";
pub const REPORT_PATH_V3: &str = "/check";

/// Kuberhealthy v3's checker pod labels: the HealthCheck's name and the run's UUID.
pub const LABEL_HEALTHCHECK: &str = "healthcheck";
pub const LABEL_RUN_UUID: &str = "kh-run-uuid";
/// Kuberhealthy v3's checker pod annotations.
pub const ANNOTATION_CREATED_BY: &str = "createdBy";
pub const ANNOTATION_CREATED_BY_VALUE: &str = "kuberhealthy";
pub const ANNOTATION_RUN_UUID: &str = "kh-run-uuid";
pub const ANNOTATION_CREATED_TIME: &str = "createdTime";
pub const ANNOTATION_HEALTHCHECK_NAME: &str = "kuberhealthyCheckName";
/// The finalizer Kuberhealthy v3 puts on every HealthCheck; released here when one written by
/// v3 is deleted, or its deletion would wait forever.
pub const FINALIZER_V3: &str = "kuberhealthy.io/healthcheck";
/// HealthCheck labels v3 copies into its metrics as `severity` and `category`.
pub const LABEL_SEVERITY: &str = "kuberhealthy.io/severity";
pub const LABEL_CATEGORY: &str = "kuberhealthy.io/category";
