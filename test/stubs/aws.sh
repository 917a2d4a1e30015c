#!/usr/bin/env bash
# `aws secretsmanager ...`: fails $STUB_AWS_FAILS times (no credentials yet), then prints
# $STUB_STATE/secret.json.
# `aws autoscaling ...`, the calls of node-ready.sh:
#   describe-auto-scaling-instances prints "<group> <state>" ($STUB_ASG_NAME, $STUB_ASG_STATE;
#     default dev-general-0001 Pending:Wait), failing the first $STUB_ASG_DESCRIBE_FAILS calls;
#   complete-lifecycle-action and set-instance-health succeed unless $STUB_ASG_REPORT_FAILS
#     (a number of leading failures, or "always").
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
case "${1:-} ${2:-}" in
  "autoscaling describe-auto-scaling-instances")
    if stub_fails "${STUB_ASG_DESCRIBE_FAILS:-}" "$(stub_count aws-asg-describe)"; then
      echo "An error occurred (AccessDenied) when calling the DescribeAutoScalingInstances operation: not authorized" >&2
      exit 254
    fi
    printf '%s\t%s\n' "${STUB_ASG_NAME:-dev-general-0001}" "${STUB_ASG_STATE:-Pending:Wait}"
    ;;
  "autoscaling complete-lifecycle-action" | "autoscaling set-instance-health")
    if stub_fails "${STUB_ASG_REPORT_FAILS:-}" "$(stub_count aws-asg-report)"; then
      echo "An error occurred (ValidationError) when calling the $2 operation: fake failure" >&2
      exit 254
    fi
    ;;
  "autoscaling "*)
    echo "aws stub: unexpected arguments: $*" >&2
    exit 2
    ;;
  *)
    if stub_fails "${STUB_AWS_FAILS:-}" "$(stub_count aws)"; then
      echo "Unable to locate credentials. You can configure credentials by running \"aws configure\"." >&2
      exit 253
    fi
    cat "$STUB_STATE/secret.json"
    ;;
esac
