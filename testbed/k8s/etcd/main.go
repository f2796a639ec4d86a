// Command etcd is the etcd server, built from the etcd server module so the
// test bed needs nothing but the Go module proxy (Debian 12 ships etcd 3.4).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
