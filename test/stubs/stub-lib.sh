# shellcheck shell=bash
# Shared by the command stubs that test/bootstrap-scripts.test.ts puts first on PATH. Every stub
# appends its argv to $STUB_STATE/calls.log; its behaviour comes from STUB_* environment variables
# and files in $STUB_STATE.
set -euo pipefail
: "${STUB_STATE:?STUB_STATE must name the state directory of the test}"
STUB_NAME=${0##*/}

# One line per call: the command name and its arguments, separated by single spaces.
stub_record() {
  local line=$STUB_NAME arg
  for arg in "$@"; do line+=" $arg"; done
  printf '%s\n' "$line" >>"$STUB_STATE/calls.log"
}

# Increments and prints a per-key call counter.
stub_count() {
  local file=$STUB_STATE/$1.count n=0
  [[ -f $file ]] && n=$(<"$file")
  n=$((n + 1))
  printf '%s\n' "$n" >"$file"
  printf '%s\n' "$n"
}

# stub_fails SETTING CALL_NUMBER: true when this call should fail. SETTING is a number of leading
# failures or "always"; empty means never.
stub_fails() {
  [[ $1 == always ]] || (($2 <= ${1:-0}))
}
