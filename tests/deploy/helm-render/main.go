// helm-render renders a Helm chart the way `helm template` does, for the deploy tests (no helm
// binary can be installed here). The templates run in Go's text/template with sprig v3's function
// map — the same libraries Helm renders with — and this file re-creates the small part of Helm's
// engine around them: values (chart defaults coalesced with -f files, numbers as float64 as Helm
// reads YAML through JSON), the built-in objects (.Values .Release .Chart .Capabilities .Template),
// Helm's extra functions (include tpl required toYaml fromYaml toJson fromJson lookup), partials
// (`_*.tpl`) parsed but not rendered, `missingkey=zero` with "<no value>" removed, whitespace-only
// output dropped, NOTES.txt only on request.
//
// Usage: helm-render -chart DIR [-f values.yaml]... [-name shipper] [-namespace monitoring] [-notes]
// [-service Helm]
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	yaml "gopkg.in/yaml.v2"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

func main() {
	chartDir := flag.String("chart", "", "chart directory")
	name := flag.String("name", "shipper", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	notes := flag.Bool("notes", false, "render NOTES.txt instead of the manifests")
	service := flag.String("service", "Helm", ".Release.Service (app.kubernetes.io/managed-by)")
	var files valueFiles
	flag.Var(&files, "f", "values file (repeatable, later ones win)")
	flag.Parse()
	out, err := render(*chartDir, files, *name, *namespace, *service, *notes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helm-render:", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

func render(chartDir string, files []string, name, namespace, service string, notes bool) (string, error) {
	meta, err := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	chart := map[string]interface{}{}
	for k, v := range meta {
		// Helm's .Chart is a struct: apiVersion → .Chart.APIVersion, name → .Chart.Name, ...
		key := strings.ToUpper(k[:1]) + k[1:]
		if k == "apiVersion" {
			key = "APIVersion"
		}
		chart[key] = v
	}
	values, err := readYAML(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return "", err
	}
	for _, f := range files {
		user, err := readYAML(f)
		if err != nil {
			return "", err
		}
		values = coalesce(user, values)
	}
	chartName, _ := chart["Name"].(string)
	top := map[string]interface{}{
		"Values": values,
		"Chart":  chart,
		"Release": map[string]interface{}{
			"Name": name, "Namespace": namespace, "Service": service,
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": "v1.33.0", "Major": "1", "Minor": "33", "GitVersion": "v1.33.0"},
		},
		"Files": map[string]interface{}{},
	}

	t := template.New("gotpl").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	includes := 0
	funcs["include"] = func(name string, data interface{}) (string, error) {
		includes++
		if includes > 1000 {
			return "", errors.New("include: too deep (recursive template?)")
		}
		defer func() { includes-- }()
		var buf bytes.Buffer
		err := t.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		c, err := t.Clone()
		if err != nil {
			return "", err
		}
		c, err = c.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = c.Execute(&buf, data)
		return strings.ReplaceAll(buf.String(), "<no value>", ""), err
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if s, ok := v.(string); v == nil || (ok && s == "") {
			return v, errors.New(msg)
		}
		return v, nil
	}
	funcs["toYaml"] = func(v interface{}) string {
		out, err := toYaml(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(out, "\n")
	}
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		var raw interface{}
		if err := yaml.Unmarshal([]byte(s), &raw); err != nil {
			return map[string]interface{}{"Error": err.Error()}
		}
		m, _ := normalize(raw).(map[string]interface{})
		return m
	}
	funcs["toJson"] = func(v interface{}) string {
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(b)
	}
	funcs["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	t.Funcs(funcs)

	// Every file under templates/ is parsed (partials define named templates for the others).
	var paths []string
	tplDir := filepath.Join(chartDir, "templates")
	err = filepath.Walk(tplDir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(paths)
	names := map[string]string{}
	for _, p := range paths {
		rel, _ := filepath.Rel(chartDir, p)
		tname := filepath.ToSlash(filepath.Join(chartName, rel))
		text, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		if _, err := t.New(tname).Parse(string(text)); err != nil {
			return "", err
		}
		names[tname] = filepath.Base(p)
	}
	var out strings.Builder
	for _, p := range paths {
		rel, _ := filepath.Rel(chartDir, p)
		tname := filepath.ToSlash(filepath.Join(chartName, rel))
		base := names[tname]
		isNotes := base == "NOTES.txt"
		if strings.HasPrefix(base, "_") || isNotes != notes {
			continue
		}
		top["Template"] = map[string]interface{}{"Name": tname, "BasePath": chartName + "/templates"}
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, tname, top); err != nil {
			return "", err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.TrimSpace(text) == "" {
			continue
		}
		if notes {
			out.WriteString(text)
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", tname, strings.TrimRight(text, "\n"))
	}
	return out.String(), nil
}

// readYAML reads a YAML mapping as Helm does (through JSON: string keys, numbers as float64).
func readYAML(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	m, ok := normalize(raw).(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("%s: not a mapping", path)
	}
	return m, nil
}

// normalize turns yaml.v2's decoding into what JSON decoding gives (Helm reads YAML via JSON).
func normalize(v interface{}) interface{} {
	switch x := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(x))
		for k, val := range x {
			m[fmt.Sprint(k)] = normalize(val)
		}
		return m
	case []interface{}:
		for i := range x {
			x[i] = normalize(x[i])
		}
		return x
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	default:
		return v
	}
}

// coalesce overlays user values on the chart's: maps merge key by key, a user null removes a default.
func coalesce(user, defaults map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range user {
		if v == nil {
			delete(out, k)
			continue
		}
		um, uok := v.(map[string]interface{})
		dm, dok := out[k].(map[string]interface{})
		if uok && dok {
			out[k] = coalesce(um, dm)
		} else {
			out[k] = v
		}
	}
	return out
}

// toYaml is sigs.k8s.io/yaml's Marshal, which Helm uses: JSON first, then that JSON as YAML.
func toYaml(v interface{}) (string, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var obj interface{}
	if err := yaml.Unmarshal(j, &obj); err != nil {
		return "", err
	}
	y, err := yaml.Marshal(obj)
	return string(y), err
}
