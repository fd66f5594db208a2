// The CoreDNS server of localhost/ecom-coredns, built by scripts/images.sh coredns from the
// Go module github.com/coredns/coredns (version: COREDNS_VERSION in scripts/versions.env).
// Importing core/plugin registers every plugin of the standard build (kubernetes, forward,
// cache, ...); coremain.Run parses the flags and the Corefile and serves.
package main

import (
	_ "github.com/coredns/coredns/core/plugin"
	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
