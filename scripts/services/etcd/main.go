// Command etcd is a thin entry point over the etcd server module's own main
// (go.etcd.io/etcd/server/v3/etcdmain). scripts/services.sh builds it from a
// generated go.mod pinned to ETCD_VERSION in scripts/versions.env.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
