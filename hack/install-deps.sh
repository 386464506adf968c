#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo need, once. Needs root for apt-get.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# command or file -> package that provides it
declare -A NEEDED=(
  [/usr/lib/postgresql]=postgresql   # the Colonies server's database
  [ip]=iproute2                      # network namespace for the test Colonies server
  [runuser]=util-linux               # PostgreSQL refuses to run as root
  [go]=golang-go                     # builds Colonies and Kubernetes from the Go module proxy
)
missing=()
for thing in "${!NEEDED[@]}"; do
  if [[ $thing == /* ]]; then [ -e "$thing" ] && continue; else command -v "$thing" >/dev/null && continue; fi
  missing+=("${NEEDED[$thing]}")
done
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
[ ${#missing[@]} -eq 0 ] && exit 0
[ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]}; run as root, or: sudo apt-get install ${missing[*]}"
step "installing Debian packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
