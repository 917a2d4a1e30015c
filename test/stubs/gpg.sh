#!/usr/bin/env bash
# `gpg --dearmor --yes --output FILE`: writes stdin, marked, to FILE.
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
out=
while (($#)); do
  case $1 in
    --output | -o) out=$2 && shift ;;
  esac
  shift
done
{ printf 'DEARMORED '; cat; } >"${out:?gpg stub: no --output}"
