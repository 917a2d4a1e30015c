#!/usr/bin/env bash
# `containerd config default`: an excerpt of containerd 1.7's default config, or 2.0's with
# STUB_CONTAINERD_MAJOR=2.
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
[[ $* == "config default" ]] || exit 2
if [[ ${STUB_CONTAINERD_MAJOR:-1} == 2 ]]; then
  # containerd 2.0/2.1 omit SystemdCgroup (containerd/containerd#12101).
  cat <<'TOML'
version = 3

[plugins]
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
    BinaryName = ''
    ShimCgroup = ''

  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
TOML
else
  cat <<'TOML'
version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    BinaryName = ""
    SystemdCgroup = false
TOML
fi
