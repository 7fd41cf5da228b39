package kubernetes_test

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// kinds are the objects the manifests may hold, by apiVersion and kind: a
// document of any other kind fails the test.
var kinds = map[string]func() metav1.Object{
	"v1/ServiceAccount":             func() metav1.Object { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                  func() metav1.Object { return &corev1.ConfigMap{} },
	"v1/Service":                    func() metav1.Object { return &corev1.Service{} },
	"apps/v1/StatefulSet":           func() metav1.Object { return &appsv1.StatefulSet{} },
	"policy/v1/PodDisruptionBudget": func() metav1.Object { return &policyv1.PodDisruptionBudget{} },
}

// kustomization is the part of kustomize's Kustomization we use; decoding it
// strictly keeps it that way.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
}

// splitDocuments returns the YAML documents of data that hold more than
// comments and blank lines.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, doc := range bytes.Split(append([]byte("\n"), data...), []byte("\n---")) {
		for _, line := range strings.Split(string(doc), "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				docs = append(docs, doc)
				break
			}
		}
	}
	return docs
}

// decode decodes one document strictly (no unknown or duplicate field) into
// the typed object its apiVersion and kind name.
func decode(doc []byte) (metav1.Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, fmt.Errorf("read kind: %w", err)
	}
	gvk := tm.APIVersion + "/" + tm.Kind
	newObject, ok := kinds[gvk]
	if !ok {
		return nil, fmt.Errorf("unknown kind %q", gvk)
	}
	obj := newObject()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", gvk, err)
	}
	return obj, nil
}

// manifests decodes every document of every manifest in dir, failing t on
// any that does not decode.
func manifests(t *testing.T, dir string) []metav1.Object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []metav1.Object
	for _, file := range files {
		if filepath.Base(file) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		docs := splitDocuments(data)
		if len(docs) == 0 {
			t.Errorf("%s: no document", file)
		}
		for i, doc := range docs {
			obj, err := decode(doc)
			if err != nil {
				t.Errorf("%s, document %d: %v", file, i+1, err)
				continue
			}
			objs = append(objs, obj)
		}
	}
	if len(objs) == 0 {
		t.Fatalf("no manifest in %s", dir)
	}
	return objs
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		file string
		want string // in the error
	}{
		{"unknown-field.yaml", `unknown field "replica"`},
		{"unknown-kind.yaml", `unknown kind "apps/v1/Deployment"`},
		{"duplicate-field.yaml", `"replicas" already set`},
		{"wrong-type.yaml", "cannot unmarshal string"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			docs := splitDocuments(data)
			if len(docs) != 1 {
				t.Fatalf("%d documents, want 1", len(docs))
			}
			_, err = decode(docs[0])
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("decode = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestSplitDocuments(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"# only a comment\n", 0},
		{"a: 1\n", 1},
		{"---\na: 1\n---\n# comment\n---\nb: 2\n", 2},
	}
	for _, tt := range tests {
		if got := len(splitDocuments([]byte(tt.in))); got != tt.want {
			t.Errorf("splitDocuments(%q): %d documents, want %d", tt.in, got, tt.want)
		}
	}
}

// only returns the one object of type T in objs, failing t unless there is
// exactly one that satisfies keep.
func only[T metav1.Object](t *testing.T, objs []metav1.Object, keep func(T) bool) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.(T); ok && keep(v) {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("%d objects of type %T, want 1", len(found), zero)
	}
	return found[0]
}

// every keeps every object.
func every[T any](T) bool { return true }

func TestManifests(t *testing.T) {
	objs := manifests(t, ".")
	for _, o := range objs {
		if o.GetNamespace() != "" {
			t.Errorf("%s has namespace %q: the manifests are applied with -n", o.GetName(), o.GetNamespace())
		}
	}
	sts := only(t, objs, every[*appsv1.StatefulSet])
	pdb := only(t, objs, every[*policyv1.PodDisruptionBudget])
	headless := only(t, objs, func(s *corev1.Service) bool { return s.Spec.ClusterIP == corev1.ClusterIPNone })
	client := only(t, objs, func(s *corev1.Service) bool { return s.Spec.ClusterIP != corev1.ClusterIPNone })
	sa := only(t, objs, every[*corev1.ServiceAccount])
	runbooks := only(t, objs, every[*corev1.ConfigMap])

	pod := sts.Spec.Template
	podLabels := labels.Set(pod.Labels)
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := &pod.Spec.Containers[0]

	t.Run("statefulset", func(t *testing.T) {
		if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
			t.Errorf("replicas %v, want 3", sts.Spec.Replicas)
		}
		if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			t.Errorf("podManagementPolicy %q, want Parallel: members start together to elect a leader", sts.Spec.PodManagementPolicy)
		}
		if sts.Spec.ServiceName != headless.Name {
			t.Errorf("serviceName %q, want the headless service %q", sts.Spec.ServiceName, headless.Name)
		}
		if !selects(t, sts.Spec.Selector, podLabels) {
			t.Errorf("selector %v does not select the pod template's labels %v", sts.Spec.Selector, podLabels)
		}
		if pod.Spec.ServiceAccountName != sa.Name {
			t.Errorf("serviceAccountName %q, want %q", pod.Spec.ServiceAccountName, sa.Name)
		}
		if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < flagDuration(t, c, "stop-grace")+10*time.Second {
			t.Errorf("terminationGracePeriodSeconds %v: want --stop-grace plus 10s to close the server and the etcd member", g)
		}
		anti := pod.Spec.Affinity
		if anti == nil || anti.PodAntiAffinity == nil || len(anti.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
			t.Fatalf("want one required pod anti-affinity term")
		}
		term := anti.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0]
		if term.TopologyKey != corev1.LabelHostname || !selects(t, term.LabelSelector, podLabels) {
			t.Errorf("anti-affinity %+v: want the pods kept apart on %s", term, corev1.LabelHostname)
		}
	})

	t.Run("initial cluster", func(t *testing.T) {
		peerPort := port(t, c, "peer")
		members := strings.Split(flag(t, c, "initial-cluster"), ",")
		if len(members) != 3 {
			t.Fatalf("--initial-cluster has %d members, want 3", len(members))
		}
		for i, m := range members {
			name, peerURL, _ := strings.Cut(m, "=")
			if want := fmt.Sprintf("%s-%d", sts.Name, i); name != want {
				t.Errorf("member %d is %q, want the pod name %q", i, name, want)
			}
			u, err := url.Parse(peerURL)
			if err != nil {
				t.Errorf("member %s: %v", name, err)
				continue
			}
			wantHost := fmt.Sprintf("%s.%s.$(POD_NAMESPACE).svc.cluster.local", name, headless.Name)
			if u.Scheme != "http" || u.Hostname() != wantHost || u.Port() != fmt.Sprint(peerPort) {
				t.Errorf("member %s peer URL %q, want http://%s:%d", name, peerURL, wantHost, peerPort)
			}
		}
		if got := flag(t, c, "node-id"); got != "$(POD_NAME)" {
			t.Errorf("--node-id=%s, want $(POD_NAME): the member names are the pod names", got)
		}
		for name, field := range map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"} {
			i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
			if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil || c.Env[i].ValueFrom.FieldRef.FieldPath != field {
				t.Errorf("env %s: want it from the downward API's %s", name, field)
			}
		}
		if got, want := flag(t, c, "peer-listen"), fmt.Sprintf("0.0.0.0:%d", peerPort); got != want {
			t.Errorf("--peer-listen=%s, want %s", got, want)
		}
		if got, want := flag(t, c, "listen"), fmt.Sprintf("0.0.0.0:%d", port(t, c, "http")); got != want {
			t.Errorf("--listen=%s, want %s", got, want)
		}
	})

	t.Run("volumes", func(t *testing.T) {
		if len(sts.Spec.VolumeClaimTemplates) != 1 {
			t.Fatalf("%d volumeClaimTemplates, want 1", len(sts.Spec.VolumeClaimTemplates))
		}
		data := sts.Spec.VolumeClaimTemplates[0].Name
		if got, want := flag(t, c, "data-dir"), mountPath(t, c, data); got != want {
			t.Errorf("--data-dir=%s, want the claim %s's mount %s", got, data, want)
		}
		if got, want := flag(t, c, "runbooks"), mountPath(t, c, volumeOf(t, pod.Spec, func(v corev1.Volume) bool {
			return v.ConfigMap != nil && v.ConfigMap.Name == runbooks.Name
		})); got != want {
			t.Errorf("--runbooks=%s, want the ConfigMap's mount %s", got, want)
		}
		auth := volumeOf(t, pod.Spec, func(v corev1.Volume) bool { return v.Secret != nil })
		if got, want := filepath.Dir(flag(t, c, "auth-file")), mountPath(t, c, auth); got != want {
			t.Errorf("--auth-file in %s, want in the Secret's mount %s", got, want)
		}
		for _, v := range pod.Spec.Volumes {
			if v.Secret != nil && (v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o440) {
				t.Errorf("secret volume %s mode %v, want 0440 (group-readable through fsGroup)", v.Name, v.Secret.DefaultMode)
			}
		}
		for _, m := range c.VolumeMounts {
			known := m.Name == data || slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
			if !known {
				t.Errorf("volumeMount %s has no volume", m.Name)
			}
		}
	})

	t.Run("probes", func(t *testing.T) {
		for _, p := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{
			{"startupProbe", c.StartupProbe, "/healthz"},
			{"livenessProbe", c.LivenessProbe, "/healthz"},
			{"readinessProbe", c.ReadinessProbe, "/readyz"},
		} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s: want an httpGet", p.name)
				continue
			}
			if p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.StrVal != "http" {
				t.Errorf("%s: GET %s on port %s, want %s on http", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
			}
		}
	})

	t.Run("security", func(t *testing.T) {
		psc := pod.Spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("pod securityContext %+v: want runAsNonRoot and a non-zero runAsUser", psc)
		}
		if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("pod securityContext: want seccompProfile RuntimeDefault")
		}
		sc := c.SecurityContext
		if sc == nil {
			t.Fatal("container has no securityContext")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Error("want readOnlyRootFilesystem")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("want allowPrivilegeEscalation: false")
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
			t.Errorf("capabilities %+v: want drop ALL, add none", sc.Capabilities)
		}
		if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
			t.Error("want automountServiceAccountToken: false (starbook calls no Kubernetes API)")
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
		}
	})

	t.Run("services", func(t *testing.T) {
		if !headless.Spec.PublishNotReadyAddresses {
			t.Error("headless service: want publishNotReadyAddresses (peers find each other before quorum)")
		}
		for _, s := range []*corev1.Service{headless, client} {
			if !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) || len(s.Spec.Selector) == 0 {
				t.Errorf("service %s selector %v does not select the pods %v", s.Name, s.Spec.Selector, podLabels)
			}
			for _, p := range s.Spec.Ports {
				if port(t, c, p.TargetPort.StrVal) != p.Port {
					t.Errorf("service %s port %s: target %s is not container port %d", s.Name, p.Name, p.TargetPort.String(), p.Port)
				}
			}
		}
		if !slices.ContainsFunc(headless.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "peer" }) {
			t.Error("headless service has no peer port")
		}
	})

	t.Run("disruption budget", func(t *testing.T) {
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
			t.Errorf("maxUnavailable %v, minAvailable %v: want maxUnavailable 1 alone", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
		}
		if !selects(t, pdb.Spec.Selector, podLabels) {
			t.Errorf("selector %v does not select the StatefulSet's pods %v", pdb.Spec.Selector, podLabels)
		}
	})

	t.Run("runbooks", func(t *testing.T) {
		want, err := os.ReadFile(filepath.Join("..", "..", "runbooks", "hello.star"))
		if err != nil {
			t.Fatal(err)
		}
		if got := runbooks.Data["hello.star"]; got != string(want) {
			t.Errorf("ConfigMap %s hello.star differs from runbooks/hello.star: copy it again", runbooks.Name)
		}
	})
}

func TestKustomization(t *testing.T) {
	data, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml is %s/%s", k.APIVersion, k.Kind)
	}
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	got := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(got, files) {
		t.Errorf("kustomization resources %v, want every manifest %v", got, files)
	}
}

// selects reports whether sel selects set.
func selects(t *testing.T, sel *metav1.LabelSelector, set labels.Set) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return false
	}
	return !s.Empty() && s.Matches(set)
}

// flag returns the value of the container's --name=value argument.
func flag(t *testing.T, c *corev1.Container, name string) string {
	t.Helper()
	var found []string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		t.Fatalf("args have --%s=... %d times, want once", name, len(found))
	}
	return found[0]
}

func flagDuration(t *testing.T, c *corev1.Container, name string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(flag(t, c, name))
	if err != nil {
		t.Fatalf("--%s: %v", name, err)
	}
	return d
}

// port returns the container port called name.
func port(t *testing.T, c *corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container has no port %q", name)
	return 0
}

// mountPath returns where the container mounts volume name.
func mountPath(t *testing.T, c *corev1.Container, name string) string {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.Name == name {
			return m.MountPath
		}
	}
	t.Fatalf("container does not mount %q", name)
	return ""
}

// volumeOf returns the name of the one pod volume that keep accepts.
func volumeOf(t *testing.T, spec corev1.PodSpec, keep func(corev1.Volume) bool) string {
	t.Helper()
	var names []string
	for _, v := range spec.Volumes {
		if keep(v) {
			names = append(names, v.Name)
		}
	}
	if len(names) != 1 {
		t.Fatalf("volumes %v match, want one", names)
	}
	return names[0]
}
