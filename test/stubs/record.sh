#!/usr/bin/env bash
# Records the call and succeeds: apt-mark, systemctl, modprobe, sysctl, swapoff, snap.
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
