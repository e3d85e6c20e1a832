//! RBAC is on: a ServiceAccount can do only what it is granted.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kuberhealthy_e2e::wait_until;

use crate::{TIMEOUT, cluster};

#[tokio::test]
async fn service_account_is_forbidden_until_granted() {
    let ctx = cluster().await.context("rbac").await.unwrap();
    let client = ctx.service_account_client("reader").await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ctx.namespace());

    match pods.list(&Default::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            let expected = format!(
                "User \"system:serviceaccount:{}:reader\" cannot list resource \"pods\"",
                ctx.namespace()
            );
            assert!(
                status.message.contains(&expected),
                "message: {}",
                status.message
            );
        }
        other => panic!("listing pods without a Role should be forbidden, got {other:?}"),
    }

    ctx.apply_yaml(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: pod-reader
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: reader-reads-pods
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: pod-reader
subjects:
- kind: ServiceAccount
  name: reader
"#,
    )
    .await
    .unwrap();
    // The authorizer reads RBAC objects from its own watch cache: a short lag is normal.
    wait_until("the reader to be allowed to list pods", TIMEOUT, || async {
        Ok(pods.list(&Default::default()).await.ok().map(|_| ()))
    })
    .await
    .unwrap();

    // The grant is namespaced: other namespaces stay forbidden.
    let elsewhere: Api<Pod> = Api::namespaced(client, "default");
    let err = elsewhere.list(&Default::default()).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "{err:?}"
    );
}
