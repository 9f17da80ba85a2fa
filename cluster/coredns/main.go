// CoreDNS for the local cluster's real node, with only the plugins its Corefile uses:
// the default build links every plugin (cloud SDKs included). No forward plugin: the
// server answers cluster.local from the API and nothing else, so no query leaves the machine.
package main

import (
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
