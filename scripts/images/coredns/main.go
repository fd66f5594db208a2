// The CoreDNS server of localhost/ecom-coredns, built by scripts/images.sh coredns from the
// Go module github.com/coredns/coredns (version: COREDNS_VERSION in scripts/versions.env).
//
// Only the plugins the node's Corefile (scripts/services/node/coredns.yaml) uses are linked
// in, in the order CoreDNS's own directive list gives them: the standard build also compiles
// the cloud providers' SDKs (route53, azure, clouddns...), which cost most of a cold build
// and are never used here. coremain.Run parses the flags and the Corefile and serves.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives: the linked plugins, in the execution order of CoreDNS's standard list.
var directives = []string{
	"reload",
	"ready",
	"health",
	"errors",
	"log",
	"cache",
	"kubernetes",
}

func main() {
	dnsserver.Directives = directives
	coremain.Run()
}
