#!/usr/bin/env bash
# Installs the cluster add-ons (CNI, AWS cloud controller, EBS CSI driver, cluster-autoscaler,
# node termination handler) on the first master right after `kubeadm init`, for clusters whose API
# load balancer the machine running `pulumi up` cannot reach (addons.installer: nodes). Reads what
# components/addons.ts addonNodeFiles rendered:
#   $ADDONS_DIR/releases      one "name chart repo version namespace" line a release, in order;
#                             a repo oci://<registry>/<path> holds the chart at <repo>/<chart>
#   $ADDONS_DIR/<name>.yaml   the release's Helm values
#   $ADDONS_DIR/storageclass.yaml (optional) applied last
# `helm upgrade --install` is idempotent, so running this again by hand repairs a failed run.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh"
init_paths

ADDONS_DIR=${ADDONS_DIR:-$KUBEADM_HA_ETC/addons}
# Helm's major version is the snap track: `3/stable` never moves to Helm 4 on its own
# (snapcrafters/helm releases Helm 3 to 3/candidate, then 3/stable).
HELM_SNAP_CHANNEL=3/stable
ATTEMPTS=${KUBEADM_HA_ADDON_ATTEMPTS:-5}
[[ $ATTEMPTS =~ ^[1-9][0-9]*$ ]] || die "$EXIT_CONFIG" "KUBEADM_HA_ADDON_ATTEMPTS must be a whole number of at least 1, got '$ATTEMPTS'"
# kubeadm init writes the cluster-admin kubeconfig here; helm and kubectl both read KUBECONFIG.
export KUBECONFIG=$KUBERNETES_DIR/admin.conf

list=$ADDONS_DIR/releases
[[ -r $list ]] || die "$EXIT_CONFIG" "$list is missing: cloud-init write_files should have written it"
[[ -s $KUBECONFIG ]] || die "$EXIT_CONFIG" "$KUBECONFIG is missing: kubeadm init should have written it"

if ! command -v helm >/dev/null; then
  log "installing the helm snap from $HELM_SNAP_CHANNEL"
  snap wait system seed.loaded
  retry "$ATTEMPTS" "$KUBEADM_HA_POLL_SECONDS" snap install helm --classic --channel="$HELM_SNAP_CHANNEL" ||
    die "$EXIT_ADDONS" "could not install the helm snap"
fi

# fd 3, so nothing helm reads from stdin can eat the list.
while read -r -u 3 name chart repo version namespace extra; do
  [[ -n $name ]] || continue
  [[ -n $namespace && -z $extra ]] || die "$EXIT_CONFIG" "$list: malformed line for '$name' (want: name chart repo version namespace)"
  values=$ADDONS_DIR/$name.yaml
  [[ -r $values ]] || die "$EXIT_CONFIG" "$values is missing: cloud-init write_files should have written it"
  # helm takes an OCI chart as a reference and refuses --repo with it.
  if [[ $repo == oci://* ]]; then chart_ref=("$repo/$chart"); else chart_ref=("$chart" --repo "$repo"); fi
  log "installing add-on $name: chart $chart $version from $repo into namespace $namespace"
  retry "$ATTEMPTS" "$KUBEADM_HA_BACKOFF_SECONDS" helm upgrade --install "$name" "${chart_ref[@]}" --version "$version" \
    --namespace "$namespace" --create-namespace --values "$values" ||
    die "$EXIT_ADDONS" "could not install add-on $name ($chart $version) after $ATTEMPTS attempts (see helm's output above); rerun $0 once fixed"
done 3<"$list"

storage_class=$ADDONS_DIR/storageclass.yaml
if [[ -f $storage_class ]]; then
  log "applying the default StorageClass"
  retry "$ATTEMPTS" "$KUBEADM_HA_BACKOFF_SECONDS" kubectl apply -f "$storage_class" ||
    die "$EXIT_ADDONS" "could not apply $storage_class after $ATTEMPTS attempts"
fi
log "add-ons installed"
