// Command gen writes the JSON schemas that kubeconform validates the chart's
// rendered manifests against, offline, into helm/schemas:
//
//	v<K8S>-standalone-strict/<kind>-<group>-<version>.json   Kubernetes kinds
//	<group>/<kind>_<version>.json                            prometheus-operator CRDs
//
// the layouts kubeconform's default schema location and the CRDs-catalog
// use, so kubeconform finds them with
//
//	-schema-location helm/schemas \
//	-schema-location 'helm/schemas/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'
//
// The sources are the OpenAPI document of Kubernetes (api/openapi-spec/swagger.json
// in the k8s.io/kubernetes module) and the CRDs shipped in the
// github.com/prometheus-operator/prometheus-operator module, both fetched
// through the Go module proxy (go mod download), at the versions pinned
// below. The conversion is the one yannh/kubernetes-json-schema's
// openapi2jsonschema makes with --expanded --kubernetes --stand-alone
// --strict: $refs inlined, int-or-string and quantities accept a string or a
// number, optional fields may be null, every object that lists its
// properties refuses others (additionalProperties: false), apiVersion and
// kind are pinned.
//
// Run once after changing a pinned version or the list of kinds, from helm/:
//
//	go run ./schemas/gen
//
// and commit the result; the tests never regenerate anything.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The pinned sources. KubernetesVersion is the version the chart is
// validated against (chart_test.go passes it to kubeconform).
const (
	kubernetesModule  = "k8s.io/kubernetes"
	KubernetesVersion = "v1.35.4"
	operatorModule    = "github.com/prometheus-operator/prometheus-operator"
	operatorVersion   = "v0.85.0"
)

// The Kubernetes kinds the chart and its examples render.
var kinds = []struct{ group, version, kind string }{
	{"", "v1", "ConfigMap"},
	{"", "v1", "Secret"},
	{"", "v1", "Service"},
	{"", "v1", "ServiceAccount"},
	{"apps", "v1", "Deployment"},
	{"policy", "v1", "PodDisruptionBudget"},
	{"networking.k8s.io", "v1", "NetworkPolicy"},
}

// The prometheus-operator CRDs, as files of example/prometheus-operator-crd.
var crds = []string{
	"monitoring.coreos.com_servicemonitors.yaml",
	"monitoring.coreos.com_podmonitors.yaml",
	"monitoring.coreos.com_prometheusrules.yaml",
}

func main() {
	out := "schemas"
	if len(os.Args) > 1 {
		out = os.Args[1]
	}
	if err := run(out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	k8s, err := moduleDir(kubernetesModule, KubernetesVersion)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(k8s, "api", "openapi-spec", "swagger.json"))
	if err != nil {
		return err
	}
	var spec struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("swagger.json: %w", err)
	}
	dir := filepath.Join(out, KubernetesVersion+"-standalone-strict")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, k := range kinds {
		name, def := findKind(spec.Definitions, k.group, k.version, k.kind)
		if def == nil {
			return fmt.Errorf("no definition of %s/%s %s in swagger.json", k.group, k.version, k.kind)
		}
		x := &expander{defs: spec.Definitions}
		schema := x.expand(def, []string{name})
		strictObjects(schema)
		nullableOptional(schema)
		apiVersion := k.version
		if k.group != "" {
			apiVersion = k.group + "/" + k.version
		}
		pin(schema, apiVersion, k.kind)
		schema["$schema"] = "http://json-schema.org/schema#"
		suffix := "-" + k.version
		if k.group != "" {
			suffix = "-" + strings.Split(k.group, ".")[0] + "-" + k.version
		}
		if err := write(filepath.Join(dir, strings.ToLower(k.kind)+suffix+".json"), schema); err != nil {
			return err
		}
	}

	op, err := moduleDir(operatorModule, operatorVersion)
	if err != nil {
		return err
	}
	for _, file := range crds {
		raw, err := os.ReadFile(filepath.Join(op, "example", "prometheus-operator-crd", file))
		if err != nil {
			return err
		}
		var crd struct {
			Spec struct {
				Group string `yaml:"group"`
				Names struct {
					Kind string `yaml:"kind"`
				} `yaml:"names"`
				Versions []struct {
					Name   string `yaml:"name"`
					Schema struct {
						OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
					} `yaml:"schema"`
				} `yaml:"versions"`
			} `yaml:"spec"`
		}
		if err := yaml.Unmarshal(raw, &crd); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		for _, v := range crd.Spec.Versions {
			schema := jsonTypes(v.Schema.OpenAPIV3Schema).(map[string]any)
			intOrString(schema)
			strictObjects(schema)
			pin(schema, crd.Spec.Group+"/"+v.Name, crd.Spec.Names.Kind)
			schema["$schema"] = "http://json-schema.org/schema#"
			path := filepath.Join(out, crd.Spec.Group, strings.ToLower(crd.Spec.Names.Kind)+"_"+v.Name+".json")
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			if err := write(path, schema); err != nil {
				return err
			}
		}
	}
	return os.WriteFile(filepath.Join(out, "SOURCES"), []byte(fmt.Sprintf(
		"# Written by go run ./schemas/gen (helm/schemas/gen/main.go); do not edit.\n"+
			"%s %s api/openapi-spec/swagger.json\n%s %s example/prometheus-operator-crd/\n",
		kubernetesModule, KubernetesVersion, operatorModule, operatorVersion)), 0o644)
}

// moduleDir downloads module@version through the Go module proxy (or finds
// it in the module cache) and returns its directory.
func moduleDir(module, version string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", module+"@"+version)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(b, &info); jerr == nil && info.Error != "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", module, version, info.Error)
	}
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %v: %s", module, version, err, stderr.String())
	}
	if info.Dir == "" {
		return "", errors.New("go mod download " + module + "@" + version + ": no directory")
	}
	return info.Dir, nil
}

func findKind(defs map[string]map[string]any, group, version, kind string) (string, map[string]any) {
	for _, name := range slices.Sorted(maps.Keys(defs)) {
		gvks, _ := defs[name]["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			g := g.(map[string]any)
			if g["group"] == group && g["version"] == version && g["kind"] == kind {
				return name, defs[name]
			}
		}
	}
	return "", nil
}

// expander inlines "#/definitions/NAME" references.
type expander struct{ defs map[string]map[string]any }

func (x *expander) expand(v any, stack []string) map[string]any {
	m := x.value(v, stack).(map[string]any)
	return m
}

func (x *expander) value(v any, stack []string) any {
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok {
			name := strings.TrimPrefix(ref, "#/definitions/")
			var out map[string]any
			switch {
			case name == "io.k8s.apimachinery.pkg.api.resource.Quantity":
				out = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
			case slices.Contains(stack, name):
				out = map[string]any{} // a recursive type: accept anything below
			default:
				def, ok := x.defs[name]
				if !ok {
					panic("unknown $ref " + ref)
				}
				out = x.value(def, append(slices.Clip(stack), name)).(map[string]any)
			}
			if d, ok := v["description"]; ok {
				out["description"] = d
			}
			return out
		}
		if v["format"] == "int-or-string" {
			return intOrStringSchema(v)
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			if k == "x-kubernetes-group-version-kind" || strings.HasPrefix(k, "x-kubernetes-list-") ||
				k == "x-kubernetes-patch-strategy" || k == "x-kubernetes-patch-merge-key" ||
				k == "x-kubernetes-map-type" || k == "x-kubernetes-unions" {
				continue
			}
			out[k] = x.value(e, stack)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = x.value(e, stack)
		}
		return out
	}
	return v
}

func intOrStringSchema(v map[string]any) map[string]any {
	out := map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
	if d, ok := v["description"]; ok {
		out["description"] = d
	}
	return out
}

// intOrString rewrites CRD fields marked x-kubernetes-int-or-string.
func intOrString(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if m, ok := e.(map[string]any); ok && m["x-kubernetes-int-or-string"] == true {
				v[k] = intOrStringSchema(m)
				continue
			}
			intOrString(e)
		}
	case []any:
		for i, e := range v {
			if m, ok := e.(map[string]any); ok && m["x-kubernetes-int-or-string"] == true {
				v[i] = intOrStringSchema(m)
				continue
			}
			intOrString(e)
		}
	}
}

// strictObjects closes every object schema that lists its properties,
// except those that explicitly keep unknown fields.
func strictObjects(v any) {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["properties"].(map[string]any); ok {
			if _, set := v["additionalProperties"]; !set && v["x-kubernetes-preserve-unknown-fields"] != true {
				v["additionalProperties"] = false
			}
		}
		for _, e := range v {
			strictObjects(e)
		}
	case []any:
		for _, e := range v {
			strictObjects(e)
		}
	}
}

// nullableOptional lets optional properties be null, as the API server
// does (and Helm writes, e.g. creationTimestamp: null).
func nullableOptional(v any) {
	m, ok := v.(map[string]any)
	if !ok {
		if l, ok := v.([]any); ok {
			for _, e := range l {
				nullableOptional(e)
			}
		}
		return
	}
	if props, ok := m["properties"].(map[string]any); ok {
		required := map[string]bool{}
		if r, ok := m["required"].([]any); ok {
			for _, n := range r {
				required[n.(string)] = true
			}
		}
		for name, p := range props {
			if pm, ok := p.(map[string]any); ok && !required[name] {
				if t, ok := pm["type"].(string); ok {
					pm["type"] = []any{t, "null"}
				}
			}
		}
	}
	for _, e := range m {
		nullableOptional(e)
	}
}

// pin restricts apiVersion and kind to the schema's own.
func pin(schema map[string]any, apiVersion, kind string) {
	props, _ := schema["properties"].(map[string]any)
	if props == nil {
		return
	}
	for field, value := range map[string]string{"apiVersion": apiVersion, "kind": kind} {
		p, _ := props[field].(map[string]any)
		if p == nil {
			p = map[string]any{"type": "string"}
			props[field] = p
		}
		p["enum"] = []any{value}
	}
}

// jsonTypes turns YAML-decoded values into JSON-compatible ones.
func jsonTypes(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonTypes(e)
		}
		return v
	case map[any]any:
		out := map[string]any{}
		for k, e := range v {
			out[fmt.Sprint(k)] = jsonTypes(e)
		}
		return out
	case []any:
		for i, e := range v {
			v[i] = jsonTypes(e)
		}
		return v
	}
	return v
}

func write(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	fmt.Println(path)
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
