#!/usr/bin/env bash
# `aws s3api get-object --region R --bucket B --key K OUTFILE`: copies $STUB_BUCKET_DIR/K to
# OUTFILE. Fails $STUB_AWS_FAILS times first (no credentials yet, or S3 unreachable).
# `aws autoscaling set-instance-health` and `aws cloudwatch put-metric-data` are recorded and succeed.
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
if stub_fails "${STUB_AWS_FAILS:-}" "$(stub_count aws)"; then
  echo "Could not connect to the endpoint URL" >&2
  exit 255
fi
# The bootstrap's report (lib.sh report_bootstrap) succeeds once recorded.
[[ $1 == autoscaling && $2 == set-instance-health || $1 == cloudwatch && $2 == put-metric-data ]] && exit 0
[[ $1 == s3api && $2 == get-object ]] || {
  echo "aws-s3api stub: unexpected command $*" >&2
  exit 2
}
shift 2
key='' out=''
while (($#)); do
  case $1 in
    --key) key=$2 && shift 2 ;;
    --region | --bucket) shift 2 ;;
    *) out=$1 && shift ;;
  esac
done
if [[ ! -f $STUB_BUCKET_DIR/$key ]]; then
  echo "An error occurred (NoSuchKey) when calling the GetObject operation" >&2
  exit 254
fi
cp "$STUB_BUCKET_DIR/$key" "$out"
echo '{"ContentType": "text/x-shellscript"}'
