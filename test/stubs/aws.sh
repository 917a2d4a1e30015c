#!/usr/bin/env bash
# Fails $STUB_AWS_FAILS times (no credentials yet), then prints $STUB_STATE/secret.json.
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
if stub_fails "${STUB_AWS_FAILS:-}" "$(stub_count aws)"; then
  echo "Unable to locate credentials. You can configure credentials by running \"aws configure\"." >&2
  exit 253
fi
cat "$STUB_STATE/secret.json"
