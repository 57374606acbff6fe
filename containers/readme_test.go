package containers

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReadmeFirstScreen replays the README's "Talk to it" example against
// the image (its default CMD serves what "go run ./cmd/repcache" serves) with
// a stamp computed now, as the example computes it, and compares the answer
// with the one the README shows, so that the example cannot rot.
func TestReadmeFirstScreen(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	m := regexp.MustCompile(`(?m)^    \$ s=\$\(\( \$\(date \+%s\) \+ (\d+) \)\)\n    \$ printf '([^']*)' \$s \| nc 127\.0\.0\.1 11211\n((?:    [^$\n].*\n)+)`).FindStringSubmatch(readme)
	if m == nil {
		t.Fatalf("README.md: no \"s=$(( $(date +%%s) + N ))\" and \"printf '...' $s | nc 127.0.0.1 11211\" example with its output")
	}
	ahead, _ := strconv.ParseInt(m[1], 10, 64)
	shown := strings.Split(strings.TrimSuffix(m[3], "\n"), "\n")
	placeholder := regexp.MustCompile(`\d{10}`).FindString(shown[1] + shown[2])
	if placeholder == "" {
		t.Fatalf("README.md: the example's output shows no stamp: %q", shown)
	}

	port := freePort(t)
	name := fmt.Sprintf("repcache-readme-test-%d", os.Getpid())
	podmanErr("rm", "-f", name)
	t.Cleanup(func() { podmanErr("rm", "-f", name) })
	podman(t, "run", "-d", "--name", name, "--pull=never", "--read-only", "-p", fmt.Sprintf("127.0.0.1:%d:11211", port), repcacheImage)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, "memcache on the image's default port", 30*time.Second, func() error {
		_, err := memcache("tcp", addr, "version\r\n")
		return err
	})

	s := strconv.FormatInt(time.Now().Unix()+ahead, 10)
	req := strings.ReplaceAll(strings.ReplaceAll(m[2], `\r\n`, "\r\n"), "%s", s)
	got, err := memcacheAll(addr, req)
	if err != nil {
		t.Fatal(err)
	}
	gotLines := strings.Split(strings.TrimSuffix(got, "\r\n"), "\r\n")
	if len(gotLines) != len(shown) {
		t.Fatalf("the README's example answers %q, the README shows %q", gotLines, shown)
	}
	for i, want := range shown {
		want = strings.ReplaceAll(strings.TrimPrefix(want, "    "), placeholder, s)
		// The remaining lifetime may be a second short of the README's.
		if lw := regexp.MustCompile(` t(\d+)$`).FindStringSubmatch(want); lw != nil {
			n, _ := strconv.Atoi(lw[1])
			re := regexp.MustCompile(regexp.QuoteMeta(strings.TrimSuffix(want, lw[0])) + fmt.Sprintf(` t(%d|%d)$`, n, n-1))
			if !re.MatchString(gotLines[i]) {
				t.Errorf("line %d: got %q, the README shows %q", i+1, gotLines[i], want)
			}
			continue
		}
		if gotLines[i] != want {
			t.Errorf("line %d: got %q, the README shows %q", i+1, gotLines[i], want)
		}
	}
}
