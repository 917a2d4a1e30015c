#!/usr/bin/env bash
# `getent ahostsv4 NAME` finds no address the first $STUB_GETENT_FAILS times (or "always"): DNS
# does not serve the load balancer's name yet. Then it answers with a private address.
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
stub_fails "${STUB_GETENT_FAILS:-}" "$(stub_count getent)" && exit 2
printf '10.0.0.5        STREAM %s\n10.0.0.5        DGRAM\n' "${*: -1}"
