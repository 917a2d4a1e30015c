#!/usr/bin/env bash
# /readyz fails $STUB_CURL_READYZ_FAILS times (or "always") with exit $STUB_CURL_READYZ_FAIL_CODE
# (default 7, connection refused), then answers. Release.key downloads return a fake key. etcd's
# /health fails $STUB_CURL_ETCD_HEALTH_FAILS times (or "always"), counted across all members.
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
url=${*: -1}
case $url in
  */readyz)
    n=$(stub_count readyz)
    if stub_fails "${STUB_CURL_READYZ_FAILS:-}" "$n"; then
      echo "curl: (${STUB_CURL_READYZ_FAIL_CODE:-7}) Failed to connect to ${url#https://}" >&2
      exit "${STUB_CURL_READYZ_FAIL_CODE:-7}"
    fi
    ;;
  */Release.key) echo "FAKE PGP KEY for $url" ;;
  */health)
    if stub_fails "${STUB_CURL_ETCD_HEALTH_FAILS:-}" "$(stub_count etcd-health)"; then
      echo "curl: (7) Failed to connect to ${url#*://}" >&2
      exit 7
    fi
    ;;
  */latest/api/token) echo "stub-imds-token" ;;
  */latest/meta-data/local-hostname) echo "${STUB_IMDS_HOSTNAME:-ip-10-0-99-7.eu-west-1.compute.internal}" ;;
  */latest/meta-data/local-ipv4) echo "${STUB_IMDS_IPV4:-10.0.99.7}" ;;
  */latest/meta-data/instance-id) echo "${STUB_IMDS_INSTANCE_ID:-i-0123456789abcdef0}" ;;
  *)
    echo "curl stub: unexpected URL $url" >&2
    exit 2
    ;;
esac
