package helm

// The Dockerfile cannot be built here (no Docker engine, no registry), so
// these tests parse it with BuildKit's own Dockerfile parser and check what
// the image promises, and check .dockerignore against what the build needs.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

func parseDockerfile(t *testing.T) ([]instructions.Stage, map[string]string) {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ast, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range ast.Warnings {
		t.Errorf("Dockerfile: %s", w.Short)
	}
	// BuildKit's Dockerfile linter (the checks docker build --check runs
	// while parsing): any warning fails the test.
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		t.Errorf("Dockerfile:%d: %s: %s", line, rule, msg)
	}})
	stages, metaArgs, err := instructions.Parse(ast.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	args := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	return stages, args
}

// expand substitutes ${NAME} and $NAME from args.
func expand(s string, args map[string]string) string {
	return regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`).ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m, "${}")
		if v, ok := args[name]; ok {
			return v
		}
		return m
	})
}

func TestDockerfile(t *testing.T) {
	stages, meta := parseDockerfile(t)
	if len(stages) != 2 {
		t.Fatalf("%d stages, want 2 (build, runtime)", len(stages))
	}
	build, final := stages[0], stages[1]
	if base := expand(build.BaseName, meta); base != "golang:1.26" {
		t.Errorf("build stage FROM %s (%s), want golang:1.26", build.BaseName, base)
	}
	if build.Name == "" {
		t.Error("the build stage has no name (FROM ... AS build)")
	}
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") {
		t.Errorf("runtime stage FROM %s, want gcr.io/distroless/static-*", final.BaseName)
	}

	// The build: static (CGO off), reproducible paths, stripped, versioned.
	var goBuild string
	for _, c := range build.Commands {
		if r, ok := c.(*instructions.RunCommand); ok {
			if cmd := strings.Join(r.CmdLine, " "); strings.Contains(cmd, "go build") {
				goBuild = cmd
			}
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w -X main.version=${VERSION}"`, "./cmd/repcache"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("the go build command %q lacks %s", goBuild, want)
		}
	}
	if !hasArg(build.Commands, "VERSION") {
		t.Error("the build stage has no ARG VERSION")
	}

	// The runtime stage.
	var (
		user       string
		entrypoint *instructions.EntrypointCommand
		cmd        *instructions.CmdCommand
		ports      []string
		labels     = map[string]string{}
		copied     bool
	)
	for _, s := range stages {
		for _, c := range s.Commands {
			if _, ok := c.(*instructions.HealthCheckCommand); ok {
				t.Errorf("stage %s has a HEALTHCHECK: Kubernetes uses its own probes", s.Name)
			}
		}
	}
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			entrypoint = c
		case *instructions.CmdCommand:
			cmd = c
		case *instructions.ExposeCommand:
			ports = append(ports, c.Ports...)
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				labels[kv.Key] = kv.Value
			}
		case *instructions.CopyCommand:
			copied = c.From == build.Name && slices.Equal(c.SourcePaths, []string{"/out/repcache"}) && c.DestPath == "/repcache"
		case *instructions.RunCommand:
			t.Errorf("the runtime stage RUNs %v: distroless has no shell", c.CmdLine)
		}
	}
	if !regexp.MustCompile(`^65532(:65532)?$`).MatchString(user) {
		t.Errorf("USER %q, want the numeric 65532:65532 (runAsNonRoot needs a number)", user)
	}
	if entrypoint == nil || entrypoint.PrependShell || !slices.Equal(entrypoint.CmdLine, []string{"/repcache"}) {
		t.Errorf("ENTRYPOINT %+v, want the exec form [\"/repcache\"]", entrypoint)
	}
	if !copied {
		t.Error("the runtime stage does not COPY --from=build /out/repcache /repcache")
	}
	slices.Sort(ports)
	if !slices.Equal(ports, []string{"11211", "9150"}) {
		t.Errorf("EXPOSE %v, want 11211 9150", ports)
	}
	for _, l := range []string{"title", "description", "source", "url", "documentation", "version", "revision", "created"} {
		if labels["org.opencontainers.image."+l] == "" {
			t.Errorf("no LABEL org.opencontainers.image.%s", l)
		}
	}

	// The default arguments make a valid configuration with both listeners
	// reachable from outside the container.
	if cmd == nil || cmd.PrependShell {
		t.Fatalf("CMD %+v, want the exec form", cmd)
	}
	args := append([]string{"check-config"}, cmd.CmdLine...)
	if out, err := run(t, "", nil, repcache, args...); err != nil || !strings.Contains(out, "configuration OK") {
		t.Errorf("repcache %v: %v %s", args, err, out)
	}
	for _, want := range []string{"--listen=0.0.0.0:11211", "--admin.listen=0.0.0.0:9150"} {
		if !slices.Contains(cmd.CmdLine, want) {
			t.Errorf("CMD %v lacks %s", cmd.CmdLine, want)
		}
	}
}

func hasArg(cmds []instructions.Command, name string) bool {
	for _, c := range cmds {
		if a, ok := c.(*instructions.ArgCommand); ok {
			for _, kv := range a.Args {
				if kv.Key == name {
					return true
				}
			}
		}
	}
	return false
}

// TestDockerignore: the build context holds every source file the binary is
// built from, and nothing that is not needed (VCS data, tool caches, the
// chart, tests).
func TestDockerignore(t *testing.T) {
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(path string) bool {
		m, err := pm.MatchesOrParentMatches(filepath.ToSlash(path))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// Every file of the main module that the binary's build reads.
	cmd := exec.Command("go", "list", "-deps", "-f", `{{if .Module}}{{if .Module.Main}}{{.Dir}}{{"\n"}}{{end}}{{end}}`, "./cmd/repcache")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	needed := []string{"go.mod", "go.sum"}
	for _, dir := range strings.Fields(string(out)) {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if !strings.HasSuffix(f, "_test.go") {
				rel, _ := filepath.Rel(root, f)
				needed = append(needed, rel)
			}
		}
	}
	if len(needed) < 10 {
		t.Fatalf("go list found only %v", needed)
	}
	for _, p := range needed {
		if excluded(p) {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
	for _, p := range []string{".git/config", ".cache/tools/bin/helm", "bin/repcache", "helm/repcache/Chart.yaml",
		"docs/deploy.md", "containers/podman_test.go", "internal/config/config_test.go",
		"internal/config/testdata/valid/x.yaml", "Dockerfile", ".env"} {
		if !excluded(p) {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
}
