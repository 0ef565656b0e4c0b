package hotpath

import (
	"os/exec"
	"strings"
	"testing"
)

// hotPath lists the packages that run per packet and what their transitive
// imports must not include. Packages added to the data path (dataplane,
// snat, icmp) join this list when they are written.
var hotPath = map[string][]string{
	"github.com/edgegw/edge/header":        leafForbidden,
	"github.com/edgegw/edge/drop":          leafForbidden,
	"github.com/edgegw/edge/frag":          leafForbidden,
	"github.com/edgegw/edge/conntrack":     leafForbidden,
	"github.com/edgegw/edge/internal/spsc": leafForbidden,
	"github.com/edgegw/edge/firewall":      leafForbidden,
	"github.com/edgegw/edge/snat":          leafForbidden,
	"github.com/edgegw/edge/icmp":          leafForbidden,
	"github.com/edgegw/edge/dataplane":     pathForbidden,
}

var pathForbidden = []string{
	"google.golang.org/grpc",
	"google.golang.org/protobuf",
	"github.com/golang/protobuf",
	"github.com/google/gopacket",
}

var leafForbidden = append([]string{"fmt", "log", "log/slog"}, pathForbidden...)

func TestHotPathImports(t *testing.T) {
	for pkg, forbidden := range hotPath {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) == 0 || deps[len(deps)-1] != pkg {
			t.Fatalf("go list -deps %s returned %q: the guard would pass vacuously", pkg, deps)
		}
		for _, dep := range deps {
			for _, bad := range forbidden {
				if dep == bad || strings.HasPrefix(dep, bad+"/") {
					t.Errorf("%s imports %s (via its dependencies); the per-packet path must not", pkg, dep)
				}
			}
		}
	}
}
