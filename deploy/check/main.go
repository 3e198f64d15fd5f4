// Command check decodes Kubernetes and KServe manifests strictly into the
// official Go API types (k8s.io/api, github.com/kserve/kserve's serving
// APIs, prometheus-operator's ServiceMonitor): a field that the type does
// not have, a value of the wrong type or an unknown kind fails the check,
// naming the file, the document and the field. It then checks the rules
// this project's manifests promise (a restricted security context, V2
// health probes, the runtime's model formats).
//
//	check FILE|DIR ...     every *.yaml / *.yml (multi-document files too)
//	check -                documents on stdin (e.g. `helm template` output)
//
// Exit status: 0 when every document passes, 1 otherwise (each problem on
// its own line on stderr), 2 for a bad command line.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	kservev1alpha1 "github.com/kserve/kserve/pkg/apis/serving/v1alpha1"
	kservev1beta1 "github.com/kserve/kserve/pkg/apis/serving/v1beta1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// A document: where it came from, and its text.
type doc struct {
	where string
	text  []byte
}

// The object of each apiVersion/kind this project ships.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + "/" + kind {
	case "serving.kserve.io/v1alpha1/ClusterServingRuntime":
		return &kservev1alpha1.ClusterServingRuntime{}, true
	case "serving.kserve.io/v1alpha1/ServingRuntime":
		return &kservev1alpha1.ServingRuntime{}, true
	case "serving.kserve.io/v1beta1/InferenceService":
		return &kservev1beta1.InferenceService{}, true
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "v1/Service":
		return &corev1.Service{}, true
	case "v1/PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, true
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1/Secret":
		return &corev1.Secret{}, true
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, true
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "batch/v1/Job":
		return &batchv1.Job{}, true
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, true
	}
	return nil, false
}

// splitDocuments cuts a YAML stream at its `---` lines; empty documents are dropped.
func splitDocuments(where string, text []byte) []doc {
	var docs []doc
	var cur bytes.Buffer
	n := 0
	flush := func() {
		n++
		body := bytes.TrimSpace(cur.Bytes())
		cur.Reset()
		// A document of comments only (helm's `# Source:` lines before an empty template) is no object.
		meaningful := false
		for _, line := range strings.Split(string(body), "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				meaningful = true
				break
			}
		}
		if meaningful {
			docs = append(docs, doc{where: fmt.Sprintf("%s (document %d)", where, n), text: append([]byte(nil), body...)})
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "---") && strings.TrimSpace(strings.TrimLeft(line, "-")) == "" {
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return docs
}

type checker struct {
	problems []string
	objects  int
}

func (c *checker) fail(where, format string, args ...any) {
	c.problems = append(c.problems, where+": "+fmt.Sprintf(format, args...))
}

func (c *checker) check(d doc) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(d.text, &head); err != nil {
		c.fail(d.where, "not YAML: %v", err)
		return
	}
	where := fmt.Sprintf("%s %s/%s", d.where, head.Kind, head.Metadata.Name)
	obj, ok := newObject(head.APIVersion, head.Kind)
	if !ok {
		c.fail(where, "unknown apiVersion/kind %q/%q", head.APIVersion, head.Kind)
		return
	}
	// Strict: unknown or duplicate fields fail, as `kubectl apply --validate=strict` would.
	if err := yaml.UnmarshalStrict(d.text, obj); err != nil {
		c.fail(where, "does not decode strictly into %T: %v", obj, err)
		return
	}
	if head.Metadata.Name == "" {
		c.fail(where, "metadata.name is empty")
	} else if errs := validation.IsDNS1123Subdomain(head.Metadata.Name); len(errs) > 0 {
		c.fail(where, "metadata.name %q: %s", head.Metadata.Name, strings.Join(errs, "; "))
	}
	c.objects++
	switch o := obj.(type) {
	case *kservev1alpha1.ClusterServingRuntime:
		c.checkRuntime(where, &o.Spec)
	case *kservev1alpha1.ServingRuntime:
		c.checkRuntime(where, &o.Spec)
	case *kservev1beta1.InferenceService:
		c.checkInferenceService(where, o)
	case *appsv1.Deployment:
		c.checkPod(where, &o.Spec.Template.Spec, true)
	case *batchv1.Job:
		c.checkPod(where, &o.Spec.Template.Spec, false)
		if o.Spec.CompletionMode != nil && *o.Spec.CompletionMode == batchv1.IndexedCompletion {
			if o.Spec.Completions == nil || *o.Spec.Completions < 1 {
				c.fail(where, "an Indexed Job needs spec.completions >= 1")
			}
		}
	case *corev1.Service:
		for _, p := range o.Spec.Ports {
			if p.Name == "" {
				c.fail(where, "port %d has no name (a gRPC port must be named so h2c is used)", p.Port)
			}
		}
	}
}

// The model formats the runtime must declare.
var wantedFormats = []string{"sklearn", "xgboost", "lightgbm", "onnx", "tensorflow"}

func (c *checker) checkRuntime(where string, spec *kservev1alpha1.ServingRuntimeSpec) {
	have := map[string]bool{}
	for _, f := range spec.SupportedModelFormats {
		have[f.Name] = true
		if f.Version == nil || *f.Version == "" {
			c.fail(where, "model format %q has no version", f.Name)
		}
		if f.AutoSelect == nil {
			c.fail(where, "model format %q does not say autoSelect", f.Name)
		}
	}
	for _, name := range wantedFormats {
		if !have[name] {
			c.fail(where, "supportedModelFormats lacks %q", name)
		}
	}
	protocols := map[string]bool{}
	for _, p := range spec.ProtocolVersions {
		protocols[string(p)] = true
	}
	for _, p := range []string{"v1", "v2", "grpc-v2"} {
		if !protocols[p] {
			c.fail(where, "protocolVersions lacks %q", p)
		}
	}
	if len(spec.Containers) != 1 || spec.Containers[0].Name != "kserve-container" {
		c.fail(where, "expected one container named kserve-container")
		return
	}
	c.checkContainer(where, &spec.Containers[0], true)
}

func (c *checker) checkInferenceService(where string, isvc *kservev1beta1.InferenceService) {
	m := isvc.Spec.Predictor.Model
	if m == nil {
		c.fail(where, "spec.predictor.model is missing")
		return
	}
	if m.Runtime == nil || *m.Runtime != "kserve-redesmyn" {
		c.fail(where, "spec.predictor.model.runtime should be kserve-redesmyn")
	}
	if m.StorageURI == nil || *m.StorageURI == "" {
		c.fail(where, "spec.predictor.model.storageUri is missing")
	}
	known := false
	for _, f := range append(wantedFormats, "mlflow") {
		known = known || m.ModelFormat.Name == f
	}
	if !known {
		c.fail(where, "model format %q is not one kserve-redesmyn supports", m.ModelFormat.Name)
	}
}

func (c *checker) checkPod(where string, pod *corev1.PodSpec, serving bool) {
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		c.fail(where, "pod securityContext.runAsNonRoot must be true")
	}
	for i := range pod.InitContainers {
		c.checkContainer(where, &pod.InitContainers[i], false)
	}
	for i := range pod.Containers {
		c.checkContainer(where, &pod.Containers[i], serving)
	}
}

// checkContainer: the restricted profile, and V2 health probes on a serving container.
func (c *checker) checkContainer(where string, ctr *corev1.Container, serving bool) {
	at := fmt.Sprintf("%s container %q", where, ctr.Name)
	sc := ctr.SecurityContext
	switch {
	case sc == nil:
		c.fail(at, "has no securityContext")
	default:
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			c.fail(at, "securityContext.allowPrivilegeEscalation must be false")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			c.fail(at, "securityContext.readOnlyRootFilesystem must be true")
		}
		if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			c.fail(at, "securityContext.capabilities.drop must be [ALL]")
		}
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			c.fail(at, "securityContext.runAsNonRoot must be true")
		}
	}
	if !serving {
		return
	}
	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil {
			c.fail(at, "needs an HTTP %s on %s", name, path)
			return
		}
		if p.HTTPGet.Path != path {
			c.fail(at, "%s path is %q, expected %q", name, p.HTTPGet.Path, path)
		}
	}
	probe("startupProbe", ctr.StartupProbe, "/v2/health/ready")
	probe("readinessProbe", ctr.ReadinessProbe, "/v2/health/ready")
	probe("livenessProbe", ctr.LivenessProbe, "/v2/health/live")
}

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: check FILE|DIR|- ...")
		os.Exit(2)
	}
	var docs []doc
	for _, arg := range args {
		if arg == "-" {
			text, err := io.ReadAll(os.Stdin)
			if err != nil {
				fmt.Fprintln(os.Stderr, "check: reading stdin:", err)
				os.Exit(2)
			}
			docs = append(docs, splitDocuments("<stdin>", text)...)
			continue
		}
		var files []string
		err := filepath.WalkDir(arg, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			ext := filepath.Ext(path)
			if !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "check:", err)
			os.Exit(2)
		}
		if len(files) == 0 {
			fmt.Fprintf(os.Stderr, "check: %s holds no .yaml file\n", arg)
			os.Exit(2)
		}
		sort.Strings(files)
		for _, f := range files {
			text, err := os.ReadFile(f)
			if err != nil {
				fmt.Fprintln(os.Stderr, "check:", err)
				os.Exit(2)
			}
			docs = append(docs, splitDocuments(f, text)...)
		}
	}
	c := &checker{}
	for _, d := range docs {
		c.check(d)
	}
	for _, p := range c.problems {
		fmt.Fprintln(os.Stderr, p)
	}
	fmt.Printf("%d objects checked, %d problems\n", c.objects, len(c.problems))
	if len(c.problems) > 0 {
		os.Exit(1)
	}
}
