// Package kubernetes holds starbook's Kubernetes manifests: a three-node
// StatefulSet whose pods each embed one member of a three-member etcd
// cluster, its headless peer Service, a client Service, a
// PodDisruptionBudget, a ServiceAccount, a ConfigMap of runbooks and a
// kustomization listing them.
//
// The manifests are data; this package holds only their test, which decodes
// every document strictly into its typed Kubernetes object (an unknown kind
// or field fails) and checks what the cluster depends on: three replicas
// started in parallel, the peer URLs in --initial-cluster, probes on
// /healthz and /readyz, a non-root read-only container, and a disruption
// budget that selects the StatefulSet's pods.
//
// It is a module of its own so that k8s.io/api and k8s.io/apimachinery stay
// out of starbook's go.mod.
package kubernetes
