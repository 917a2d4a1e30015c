#!/usr/bin/env bash
# Records the call; `snap install NAME ...` puts $STUB_SNAP_STORE/NAME (a stub command) into
# $STUB_SNAP_BIN, as snapd puts a snap's command under /snap/bin.
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
if [[ ${1:-} == install && -n ${STUB_SNAP_STORE:-} && -f $STUB_SNAP_STORE/${2:-} ]]; then
  install -m 0755 "$STUB_SNAP_STORE/$2" "${STUB_SNAP_BIN:?snap stub: STUB_SNAP_BIN is not set}/$2"
fi
