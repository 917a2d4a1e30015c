#!/usr/bin/env bash
# `aws s3 cp` against a directory standing in for S3: $STUB_S3_DIR/<bucket>/<key>. An upload also
# writes <key>.sse with the encryption arguments it got. Fails $STUB_AWS_S3_FAILS times (or
# "always") as S3 refusing the request; a download of a missing key fails as S3's 404 does.
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
[[ ${1:-} == s3 && ${2:-} == cp ]] || { echo "aws stub: unexpected arguments: $*" >&2; exit 2; }
shift 2
sse=() paths=()
while (($#)); do
  case $1 in
    --only-show-errors) shift ;;
    --sse | --sse-kms-key-id) sse+=("$1" "$2"); shift 2 ;;
    -*) echo "aws stub: unexpected option $1" >&2; exit 2 ;;
    *) paths+=("$1"); shift ;;
  esac
done
((${#paths[@]} == 2)) || { echo "aws stub: s3 cp takes a source and a destination" >&2; exit 2; }
if stub_fails "${STUB_AWS_S3_FAILS:-}" "$(stub_count aws-s3)"; then
  echo "upload failed: An error occurred (AccessDenied) when calling the PutObject operation: Access Denied" >&2
  exit 1
fi
src=${paths[0]} dst=${paths[1]}
if [[ $dst == s3://* ]]; then
  obj=${STUB_S3_DIR:?}/${dst#s3://}
  mkdir -p "${obj%/*}"
  cp "$src" "$obj"
  printf '%s\n' "${sse[*]}" >"$obj.sse"
elif [[ $src == s3://* ]]; then
  obj=${STUB_S3_DIR:?}/${src#s3://}
  [[ -f $obj ]] || { echo "fatal error: An error occurred (404) when calling the HeadObject operation: Key \"${src#s3://*/}\" does not exist" >&2; exit 1; }
  cp "$obj" "$dst"
else
  echo "aws stub: neither path is in S3" >&2
  exit 2
fi
