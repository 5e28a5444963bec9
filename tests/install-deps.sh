#!/bin/sh
# Installs everything the test suite needs: Debian packages (via apt-get, only those
# missing) and a virtual environment .venv/ with jobpack and its test extras.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="bash coreutils sed gawk git tar findutils slurmctld slurmd slurm-client munge rclone rsync lftp openssh-server openssh-client podman docker-registry"
missing=""
for p in $PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing="$missing python3-venv"
fi
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086  # one word per package
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
