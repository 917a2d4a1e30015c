// Command kubelet-config-validate checks KubeletConfiguration documents the way the kubelet does at
// start: strict decoding (an unknown field is an error), the kubelet's defaulting, then
// ValidateKubeletConfiguration. kubeadm passes a KubeletConfiguration through without validating
// its fields, and building the whole kubelet for this would only add a binary to cache.
//
// Usage: kubelet-config-validate FILE...   each FILE a YAML stream; its KubeletConfiguration
// documents are checked, the others ignored. Exits 1 on the first invalid one, 2 when a file holds none.
package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"

	libcontainercgroups "github.com/opencontainers/cgroups"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	kubeletscheme "k8s.io/kubernetes/pkg/kubelet/apis/config/scheme"
	"k8s.io/kubernetes/pkg/kubelet/apis/config/validation"
)

var separator = regexp.MustCompile(`(?m)^---\s*$`)
var kind = regexp.MustCompile(`(?m)^kind:\s*KubeletConfiguration\s*$`)

func main() {
	_, codecs, err := kubeletscheme.NewSchemeAndCodecs(serializer.EnableStrict)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, file := range os.Args[1:] {
		data, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		found := 0
		for i, doc := range separator.Split(string(data), -1) {
			if !kind.MatchString(doc) {
				continue
			}
			found++
			obj, _, err := codecs.UniversalDecoder().Decode(bytes.TrimSpace([]byte(doc)), nil, nil)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: document %d: %v\n", file, i, err)
				os.Exit(1)
			}
			cfg, ok := obj.(*kubeletconfig.KubeletConfiguration)
			if !ok {
				fmt.Fprintf(os.Stderr, "%s: document %d decodes to %T, not a KubeletConfiguration\n", file, i, obj)
				os.Exit(1)
			}
			// The nodes run Ubuntu 24.04, whose cgroup hierarchy is v2; the kubelet's Linux checks
			// read the host's, so on a cgroup v1 build host the check that only refuses v1 hosts is off.
			if !libcontainercgroups.IsCgroup2UnifiedMode() {
				cfg.FailCgroupV1 = false
			}
			if err := validation.ValidateKubeletConfiguration(cfg, utilfeature.DefaultFeatureGate); err != nil {
				fmt.Fprintf(os.Stderr, "%s: document %d: %v\n", file, i, err)
				os.Exit(1)
			}
		}
		if found == 0 {
			fmt.Fprintf(os.Stderr, "%s: no KubeletConfiguration document\n", file)
			os.Exit(2)
		}
		fmt.Printf("%s: %d KubeletConfiguration document(s) valid\n", file, found)
	}
}
