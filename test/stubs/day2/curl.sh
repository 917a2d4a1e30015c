#!/usr/bin/env bash
# curl for day2.sh (test/day2-script.test.ts): IMDSv2 (the token; the instance's user data from
# $STUB_STATE/user-data, written to --output), the health probes and the Kubernetes Release.key.
# A URL listed in $STUB_STATE/curl-fail (one "<url> <exit>" a line) fails with that exit code.
# shellcheck source=../stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
out='' url=${*: -1}
while (($#)); do
  case $1 in
    --output) out=$2 && shift 2 ;;
    *) shift ;;
  esac
done
if [[ -f $STUB_STATE/curl-fail ]]; then
  while read -r failing code; do
    if [[ $url == "$failing" ]]; then
      echo "curl: ($code) Failed to connect to ${url#https://}" >&2
      exit "$code"
    fi
  done <"$STUB_STATE/curl-fail"
fi
case $url in
  */latest/api/token) echo "stub-imds-token" ;;
  */latest/user-data) cp "$STUB_STATE/user-data" "${out:?--output}" ;;
  */readyz | */healthz) [[ -z $out || $out == /dev/null ]] && echo ok >/dev/null ;;
  */Release.key) echo "FAKE PGP KEY for $url" ;;
  *)
    echo "curl stub: unexpected URL $url" >&2
    exit 2
    ;;
esac
