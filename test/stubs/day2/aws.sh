#!/usr/bin/env bash
# aws for day2.sh (test/day2-script.test.ts): `s3api` from the bucket directory (../aws-s3api.sh),
# anything else, such as fetch-secrets.sh's secretsmanager call, from the secret stub (../aws.sh).
# Each records itself under its own name; test/day2-script.test.ts reads both as aws.
here=${BASH_SOURCE[0]%/*}
if [[ ${1:-} == s3api ]]; then exec "$here/aws-s3api" "$@"; fi
exec "$here/aws-secrets" "$@"
