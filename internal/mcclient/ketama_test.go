package mcclient

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/testenv"
)

// Keys land on the server twemproxy (Debian's nutcracker, a ketama pool of
// four real memcacheds) puts them on, for both key hashes.
func TestKetamaMatchesTwemproxy(t *testing.T) {
	bin := testenv.LookPath(t, "nutcracker", "nutcracker")
	var servers []*memcached
	var addrs []string
	for range 4 {
		m := startMemcached(t)
		servers, addrs = append(servers, m), append(addrs, m.addr)
	}
	for _, hash := range []Hash{HashMD5, HashFNV1a64} {
		t.Run(string(hash), func(t *testing.T) {
			listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
			cfg := fmt.Sprintf("pool:\n  listen: %s\n  hash: %s\n  distribution: ketama\n  auto_eject_hosts: false\n  servers:\n", listen, hash)
			for _, a := range addrs {
				cfg += "    - " + a + ":1\n"
			}
			file := filepath.Join(t.TempDir(), "nutcracker.yml")
			if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			stats := strconv.Itoa(testenv.FreePort(t))
			testenv.Start(t, bin, []string{"-c", file, "-s", stats, "-a", "127.0.0.1", "-o", filepath.Join(t.TempDir(), "log")}, listen)

			c := newClient(t, Options{Servers: addrs, Hash: hash, Timeout: slow})
			nc, err := net.DialTimeout("tcp", listen, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(30 * time.Second))
			r := bufio.NewReader(nc)
			const n = 2000
			key := func(i int) string { return fmt.Sprintf("%s-key:%d", hash, i*7919) }
			for i := range n {
				fmt.Fprintf(nc, "set %s 0 0 1\r\nx\r\n", key(i))
				if line, err := r.ReadString('\n'); err != nil || line != "STORED\r\n" {
					t.Fatalf("set through nutcracker: %q, %v", line, err)
				}
			}
			per := map[string]int{}
			for i := range n {
				k := key(i)
				want := c.Server(k)
				per[want]++
				for _, m := range servers {
					held := raw(t, m.addr, "mg "+k+"\r\n") == "HD"
					if held != (m.addr == want) {
						t.Fatalf("%s: on %s held=%v; the client puts it on %s", k, m.addr, held, want)
					}
				}
			}
			if len(per) != len(addrs) {
				t.Fatalf("keys per server: %v", per)
			}
			t.Logf("keys per server: %v", per)
		})
	}
}

// Adding a fifth server moves about a fifth of the keys, all of them to
// the new server.
func TestKetamaAddServerMovesOneNth(t *testing.T) {
	names := []string{"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211", "10.0.0.4:11211"}
	ones := func(n int) []int {
		w := make([]int, n)
		for i := range w {
			w[i] = 1
		}
		return w
	}
	before := newContinuum(names, ones(4))
	after := newContinuum(append(names, "10.0.0.5:11211"), ones(5))
	const n = 100000
	moved := 0
	for i := range n {
		h := HashMD5.sum("verify:user" + strconv.Itoa(i) + "@example.com")
		a, b := before.server(h), after.server(h)
		if a != b {
			moved++
			if b != 4 {
				t.Fatalf("a key moved between old servers (%d -> %d)", a, b)
			}
		}
	}
	frac := float64(moved) / n
	t.Logf("%.1f%% of keys moved", 100*frac)
	if frac < 0.14 || frac > 0.26 {
		t.Fatalf("%.1f%% of keys moved, want about 20%%", 100*frac)
	}
	// Every server has 160 points; a weight of 2 doubles them.
	counts := map[int]int{}
	for _, p := range newContinuum(names[:2], []int{1, 2}) {
		counts[p.server]++
	}
	if counts[0] != 104 || counts[1] != 212 || len(after) != 5*160 {
		t.Fatalf("points: weights 1,2 -> %v; 5 servers -> %d", counts, len(after))
	}
}

func TestHashes(t *testing.T) {
	// FNV-1a 64's published test vector for "a" is 0xaf63dc4c8601ec8c;
	// twemproxy keeps its low 32 bits.
	if got := HashFNV1a64.sum("a"); got != 0x8601ec8c {
		t.Fatalf("fnv1a_64(a) = %#x", got)
	}
	// MD5("a") = 0cc175b9...; little-endian first word.
	if got := HashMD5.sum("a"); got != 0xb975c10c {
		t.Fatalf("md5(a) = %#x", got)
	}
	if !strings.Contains(fmt.Sprint(func() error { _, err := New(Options{Servers: []string{"a:1"}, Hash: "crc32"}); return err }()), "crc32") {
		t.Fatal("an unknown hash was accepted")
	}
}
