#!/usr/bin/env bash
# A worker's report to its auto scaling group's launch lifecycle hook (components/workerPool.ts):
#   node-ready.sh ready    waits until this node is Ready, then CONTINUE: the group puts the
#                          machine in service, and an instance refresh may retire an old one;
#                          a node never Ready within KUBEADM_HA_WAIT_SECONDS is reported as failed
#   node-ready.sh failed   ABANDON: the group terminates the machine and launches another
# The group holds a new machine in Pending:Wait until this reports or the hook's heartbeat timeout
# passes (readyTimeoutSeconds; its default result is ABANDON, so a machine that never reports is
# terminated too). A machine no hook held (launched before the hook existed) is already
# InService: a failure then marks it Unhealthy, which makes the group replace it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh"
load_env

outcome=${1:-}
[[ $outcome == ready || $outcome == failed ]] || die "$EXIT_CONFIG" "usage: node-ready.sh ready|failed (got '$outcome')"
[[ -n ${LAUNCH_HOOK:-} ]] || die "$EXIT_CONFIG" "LAUNCH_HOOK is not set in $KUBEADM_HA_ETC/node.env"

# Ready is the API's view of this node (kubelet posting status, the CNI up), read with the node's
# own credentials: the Node authorizer lets a node read Node objects.
node_ready() {
  local status
  status=$(kubectl --kubeconfig "$KUBERNETES_DIR/kubelet.conf" --request-timeout=10s get node "$NODE_NAME" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') || return 1
  [[ $status == True ]] || {
    echo "Ready is '${status:-not reported}'"
    return 1
  }
}

result=ABANDON
if [[ $outcome == ready ]]; then
  # poll_until exits on timeout; the subshell turns that into a failure to report.
  if (poll_until "node $NODE_NAME to be Ready" "$EXIT_NOT_READY" node_ready); then result=CONTINUE; fi
fi

instance_id=$(imds instance-id) || die "$EXIT_CONFIG" "could not read instance-id from instance metadata"

# One call gives the group's name (not known when the launch template was rendered) and whether a
# hook holds this machine. A new instance role's policies can take a minute to apply (IAM is
# eventually consistent), hence the retries.
describe_self() {
  local out
  out=$(aws autoscaling describe-auto-scaling-instances --region "$AWS_REGION" --instance-ids "$instance_id" \
    --query 'AutoScalingInstances[0].[AutoScalingGroupName,LifecycleState]' --output text) || return 1
  read -r group state <<<"$out"
  [[ -n ${group:-} && $group != None ]]
}
group='' state=''
retry 12 "$KUBEADM_HA_POLL_SECONDS" describe_self ||
  die "$EXIT_LIFECYCLE" "could not find the auto scaling group of $instance_id (see the AWS CLI's output above)"

case $state in
  Pending:Wait)
    log "reporting $result to lifecycle hook $LAUNCH_HOOK of group $group for $instance_id"
    retry 5 "$KUBEADM_HA_POLL_SECONDS" aws autoscaling complete-lifecycle-action --region "$AWS_REGION" \
      --lifecycle-hook-name "$LAUNCH_HOOK" --auto-scaling-group-name "$group" --instance-id "$instance_id" \
      --lifecycle-action-result "$result" ||
      die "$EXIT_LIFECYCLE" "could not complete lifecycle hook $LAUNCH_HOOK; the group applies its default (ABANDON) at the hook's timeout"
    ;;
  InService)
    if [[ $result == ABANDON ]]; then
      log "no hook holds $instance_id (in service in $group): marking it Unhealthy so the group replaces it"
      retry 5 "$KUBEADM_HA_POLL_SECONDS" aws autoscaling set-instance-health --region "$AWS_REGION" \
        --instance-id "$instance_id" --health-status Unhealthy --no-should-respect-grace-period ||
        die "$EXIT_LIFECYCLE" "could not mark $instance_id Unhealthy"
    else
      log "$instance_id is already in service in $group (no hook held it): nothing to report"
    fi
    ;;
  *) log "$instance_id is $state in $group: nothing to report" ;;
esac

if [[ $outcome == ready && $result == ABANDON ]]; then
  die "$EXIT_NOT_READY" "node $NODE_NAME did not become Ready; reported the failure to group $group"
fi
log "reported $result for $instance_id ($outcome)"
