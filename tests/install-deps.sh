#!/bin/sh
# Installs everything the test suite needs: Debian packages (via apt-get, only those
# missing) and a virtual environment .venv/ with jobpack and its test extras.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="bash coreutils sed gawk git tar findutils slurmctld slurmd slurm-client munge rclone rsync lftp openssh-server openssh-client podman runc busybox-static docker-registry lz4 tmux"
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
  # Another apt or dpkg (unattended upgrades, a second checkout) may hold the locks: wait
  # for them instead of failing at once. apt-get install waits for dpkg's lock itself
  # (DPkg::Lock::Timeout); apt-get update does not wait for the lists lock, so it is
  # retried every 10 s, for at most 5 minutes.
  LOCK_WAIT="-o DPkg::Lock::Timeout=600"
  tries=1
  # shellcheck disable=SC2086  # LOCK_WAIT is two words
  until $SUDO apt-get $LOCK_WAIT update -qq; do
    [ "$tries" -lt 30 ] || { echo "apt-get update failed $tries times" >&2; exit 1; }
    echo "apt-get update failed (another apt running?); trying again in 10 s" >&2
    tries=$((tries + 1))
    sleep 10
  done
  # shellcheck disable=SC2086  # one word per package
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get $LOCK_WAIT install -y -qq \
    --no-install-recommends $missing
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
