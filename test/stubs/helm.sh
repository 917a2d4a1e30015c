#!/usr/bin/env bash
# `helm upgrade --install ...`: fails the first $STUB_HELM_FAILS calls (or "always") like an
# unreachable chart repository. Appends to $STUB_STATE/helm-state.log what each call saw: the
# KUBECONFIG it would use and whether that file existed, and the values file's first line.
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
[[ ${1:-} == upgrade && ${2:-} == --install ]] || {
  echo "helm stub: unexpected arguments: $*" >&2
  exit 2
}
values=
while (($#)); do
  case $1 in
    --values) values=$2 && shift ;;
  esac
  shift
done
printf 'kubeconfig=%s exists=%s values=%s\n' "${KUBECONFIG:-unset}" "$([[ -s ${KUBECONFIG:-/nonexistent} ]] && echo yes || echo no)" \
  "$(head -n 1 "${values:?helm stub: no --values}")" >>"$STUB_STATE/helm-state.log"
if stub_fails "${STUB_HELM_FAILS:-}" "$(stub_count helm)"; then
  echo "Error: looks like the repository is not reachable: fake failure" >&2
  exit 1
fi
