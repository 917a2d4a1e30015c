#!/usr/bin/env bash
# apt-get as it behaves without a network: `update` that cannot fetch an index ($STUB_APT_UPDATE_FAILS
# times, or "always") only warns and exits 0, unless `-o APT::Update::Error-Mode=any` makes it an
# error (exit 100); either way the lists stay stale. `install` fails (exit 100) while the lists are
# stale, and also its first $STUB_APT_INSTALL_FAILS times.
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
if [[ ${DEBIAN_FRONTEND:-} != noninteractive ]]; then
  echo "apt-get stub: DEBIAN_FRONTEND is '${DEBIAN_FRONTEND:-}', want noninteractive" >&2
  exit 100
fi
fresh=$STUB_STATE/apt-lists-fresh
case " $* " in
  *" update "*)
    if stub_fails "${STUB_APT_UPDATE_FAILS:-}" "$(stub_count apt-update)"; then
      rm -f "$fresh"
      echo "W: Failed to fetch http://eu-west-1.ec2.archive.ubuntu.com/ubuntu/dists/noble/InRelease  Could not connect to eu-west-1.ec2.archive.ubuntu.com:80" >&2
      if [[ " $* " == *" APT::Update::Error-Mode=any "* ]]; then
        echo "E: Some index files failed to download. They have been ignored, or old ones used instead." >&2
        exit 100
      fi
      echo "W: Some index files failed to download. They have been ignored, or old ones used instead." >&2
      exit 0
    fi
    touch "$fresh"
    ;;
  *" install "*)
    if [[ ! -f $fresh ]]; then
      echo "E: Unable to locate package ${*: -1}" >&2
      exit 100
    fi
    if stub_fails "${STUB_APT_INSTALL_FAILS:-}" "$(stub_count apt-install)"; then
      echo "E: Failed to fetch http://eu-west-1.ec2.archive.ubuntu.com/ubuntu/pool/main/c/containerd/containerd.deb  Connection timed out" >&2
      exit 100
    fi
    ;;
esac
