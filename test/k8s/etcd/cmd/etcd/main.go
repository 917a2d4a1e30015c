// Command etcd is etcd's own server entry point; the etcd/v3 root module that holds it replaces its
// sibling modules with relative paths a module download lacks, so this module calls etcdmain directly.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
