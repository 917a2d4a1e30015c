#!/usr/bin/env bash
# `etcdctl ... endpoint status -w fields` as etcd answers it, with this member's ID
# ($STUB_ETCD_MEMBER_ID) and the leader's ($STUB_ETCD_LEADER_ID), both decimal as etcdctl prints them.
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
case "${*: -4}" in
  "endpoint status -w fields")
    printf '"ClusterID" : 17237436991929493444\n"MemberID" : %s\n"Revision" : 1\n"RaftTerm" : 2\n"Version" : "3.4.23"\n"DBSize" : 20480\n"Leader" : %s\n"RaftIndex" : 9\n"RaftTerm" : 2\n"RaftAppliedIndex" : 9\n"Errors" : []\n"Endpoint" : "%s"\n' \
      "${STUB_ETCD_MEMBER_ID:?}" "${STUB_ETCD_LEADER_ID:?}" "${2:-}"
    ;;
  *)
    echo "etcdctl stub: unexpected arguments: $*" >&2
    exit 2
    ;;
esac
