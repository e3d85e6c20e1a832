//! The examples of this target's nine checks are well-formed, name built-in checks, and run
//! as the ServiceAccount their committed RBAC creates (no cluster needed).

use kuberhealthy_e2e::binaries;
use kuberhealthy_e2e::manifests;
use kuberhealthy_e2e::session::workspace_root;
use serde_json::json;

use crate::support::{example, run_binary};

/// The checks whose examples the tests of this binary run.
const CHECKS: [&str; 9] = [
    "dns-status",
    "http",
    "http-content",
    "network-connection",
    "pod-restarts",
    "pod-status",
    "resource-quota",
    "ssl-expiry",
    "ssl-handshake",
];

/// The checks `kuberhealthy check --help` lists as possible values.
fn built_in_checks() -> Vec<String> {
    let help = run_binary(&binaries::kuberhealthy().unwrap(), &["check", "--help"]).unwrap();
    let list = help
        .split("[possible values: ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_else(|| panic!("no possible values in `kuberhealthy check --help`:\n{help}"));
    list.split(',').map(|s| s.trim().to_string()).collect()
}

#[test]
fn each_example_names_a_built_in_check_and_its_committed_service_account() {
    let built_in = built_in_checks();
    for check in CHECKS {
        assert!(
            built_in.iter().any(|c| c == check),
            "{check} is not among the built-in checks {built_in:?}"
        );
        // Asserts the example's shape (see `support::example`).
        let object = example(check);
        let account = &object["spec"]["podSpec"]["serviceAccountName"];
        let rbac = workspace_root().join(format!("rbac/checks/{check}.yaml"));
        let text = std::fs::read_to_string(&rbac)
            .unwrap_or_else(|e| panic!("reading {}: {e}", rbac.display()));
        let service_account = manifests::parse(&text)
            .unwrap()
            .into_iter()
            .find(|o| o.types.as_ref().is_some_and(|t| t.kind == "ServiceAccount"))
            .unwrap_or_else(|| panic!("{} creates no ServiceAccount", rbac.display()));
        assert_eq!(
            json!(service_account.metadata.name),
            *account,
            "{check}: the example's serviceAccountName is the one {} creates",
            rbac.display()
        );
        assert_eq!(
            service_account.metadata.namespace.as_deref(),
            object["metadata"]["namespace"].as_str(),
            "{check}: the ServiceAccount is in the example's namespace"
        );
    }
}
