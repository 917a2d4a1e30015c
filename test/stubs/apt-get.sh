#!/usr/bin/env bash
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
if [[ ${DEBIAN_FRONTEND:-} != noninteractive ]]; then
  echo "apt-get stub: DEBIAN_FRONTEND is '${DEBIAN_FRONTEND:-}', want noninteractive" >&2
  exit 100
fi
