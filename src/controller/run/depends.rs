//! Dependencies between checks (`spec.dependsOn`), judged against all checks at once (pure):
//! names resolve to `namespace/name`, a name no check has and a cycle are spec errors of the
//! checks that hold them, and a failing check is blocked by the first of its dependencies
//! that fails or is stale.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kube::ResourceExt;

use crate::api::KuberhealthyCheck;
use crate::api::key_of;
use crate::api::validate::SpecError;

/// Every check's dependencies, resolved, and the spec errors they cause.
#[derive(Debug, Default)]
pub struct Dependencies {
    /// `namespace/name` → the `namespace/name`s it depends on, in the order written.
    needs: HashMap<String, Vec<String>>,
    /// `namespace/name` → what is wrong with its `dependsOn`.
    errors: HashMap<String, Vec<SpecError>>,
}

impl Dependencies {
    pub fn resolve(checks: &[Arc<KuberhealthyCheck>]) -> Dependencies {
        let keys: std::collections::HashSet<String> = checks
            .iter()
            .map(|c| key_of(&c.namespace().unwrap_or_default(), &c.name_any()))
            .collect();
        let mut deps = Dependencies::default();
        for check in checks {
            let namespace = check.namespace().unwrap_or_default();
            let key = key_of(&namespace, &check.name_any());
            let mut needs = Vec::new();
            for (i, name) in check.spec.depends_on.iter().flatten().enumerate() {
                let target = match name.split_once('/') {
                    Some(_) => name.clone(),
                    None => key_of(&namespace, name),
                };
                if !keys.contains(&target) {
                    deps.errors.entry(key.clone()).or_default().push(SpecError {
                        field: format!("spec.dependsOn[{i}]"),
                        message: format!("names check {target}, which does not exist"),
                    });
                } else if !needs.contains(&target) {
                    needs.push(target);
                }
            }
            if !needs.is_empty() {
                deps.needs.insert(key, needs);
            }
        }
        for cycle in deps.cycles() {
            let path = cycle.join(" -> ");
            for key in &cycle[..cycle.len() - 1] {
                deps.errors.entry(key.clone()).or_default().push(SpecError {
                    field: "spec.dependsOn".into(),
                    message: format!("forms a cycle: {path}; a check cannot depend on itself"),
                });
            }
        }
        deps
    }

    /// What is wrong with the `dependsOn` of `key`, if anything.
    pub fn errors(&self, key: &str) -> Option<&[SpecError]> {
        self.errors.get(key).map(Vec::as_slice)
    }

    /// What `key` depends on, resolved.
    pub fn of(&self, key: &str) -> &[String] {
        self.needs.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Each cycle once, as the path that closes it (`a -> b -> a`).
    fn cycles(&self) -> Vec<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done,
        }
        fn visit(
            key: &str,
            deps: &Dependencies,
            marks: &mut HashMap<String, Mark>,
            path: &mut Vec<String>,
            found: &mut Vec<Vec<String>>,
        ) {
            marks.insert(key.to_string(), Mark::Visiting);
            path.push(key.to_string());
            for next in deps.of(key) {
                match marks.get(next) {
                    Some(Mark::Visiting) => {
                        let start = path.iter().position(|k| k == next).unwrap_or(0);
                        let mut cycle = path[start..].to_vec();
                        cycle.push(next.clone());
                        found.push(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => visit(next, deps, marks, path, found),
                }
            }
            path.pop();
            marks.insert(key.to_string(), Mark::Done);
        }
        let mut marks = HashMap::new();
        let mut found = Vec::new();
        let ordered: BTreeMap<&String, ()> = self.needs.keys().map(|k| (k, ())).collect();
        for key in ordered.keys() {
            if !marks.contains_key(*key) {
                visit(key, self, &mut marks, &mut Vec::new(), &mut found);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(namespace: &str, name: &str, depends_on: &[&str]) -> Arc<KuberhealthyCheck> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "comcast.github.io/v1",
                "kind": "KuberhealthyCheck",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"runInterval": "1m", "dependsOn": depends_on,
                         "podSpec": {"containers": [{"name": "main", "image": "x"}]}},
            }))
            .unwrap(),
        )
    }

    fn messages(deps: &Dependencies, key: &str) -> Vec<String> {
        deps.errors(key)
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn names_resolve_in_the_checks_namespace_or_as_written() {
        let deps = Dependencies::resolve(&[
            check("apps", "web", &["storage", "infra/dns", "storage"]),
            check("apps", "storage", &[]),
            check("infra", "dns", &[]),
        ]);
        assert_eq!(deps.of("apps/web"), ["apps/storage", "infra/dns"]);
        assert!(deps.errors("apps/web").is_none());
        assert!(deps.of("apps/storage").is_empty());
    }

    #[test]
    fn an_unknown_name_is_an_error_of_the_check_that_names_it() {
        let deps = Dependencies::resolve(&[check("apps", "web", &["ghost"])]);
        assert_eq!(
            messages(&deps, "apps/web"),
            ["spec.dependsOn[0]: names check apps/ghost, which does not exist"]
        );
    }

    #[test]
    fn cycles_are_errors_of_every_check_in_them() {
        let deps = Dependencies::resolve(&[
            check("ns", "a", &["b"]),
            check("ns", "b", &["c"]),
            check("ns", "c", &["a"]),
            check("ns", "d", &["a"]),
            check("ns", "self", &["self"]),
        ]);
        let cycle = "spec.dependsOn: forms a cycle: ns/a -> ns/b -> ns/c -> ns/a; a check cannot depend on itself";
        assert_eq!(messages(&deps, "ns/a"), [cycle]);
        assert_eq!(messages(&deps, "ns/b"), [cycle]);
        assert_eq!(messages(&deps, "ns/c"), [cycle]);
        assert!(
            deps.errors("ns/d").is_none(),
            "depending on a cycle is not one"
        );
        assert_eq!(
            messages(&deps, "ns/self"),
            ["spec.dependsOn: forms a cycle: ns/self -> ns/self; a check cannot depend on itself"]
        );
    }
}
