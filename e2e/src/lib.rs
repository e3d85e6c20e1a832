//! End-to-end harness: a real etcd and kube-apiserver on 127.0.0.1 and a pod runner.
