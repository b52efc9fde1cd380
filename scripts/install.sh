#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine, idempotently:
# the lab's Debian packages (no service is started: policy-rc.d refuses) and a virtualenv at
# .venv with the package, its AWS extra and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (the packages and the network-namespace lab need it)" >&2
  exit 2
fi

# Debian's maintainer scripts would start every daemon we install; the lab runs its own.
if [ ! -x /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
fi

mapfile -t packages < <(grep -v '^#' scripts/debian-packages.txt | sed '/^$/d')
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # libnss-winbind's postinst adds winbind to this machine's own NSS: the lab's domain member
  # gets it in its private /etc, the machine keeps what it had.
  cp -p /etc/nsswitch.conf /tmp/drcheck-nsswitch.conf
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/drcheck-apt.log 2>&1 \
    || { tail -20 /tmp/drcheck-apt.log >&2; exit 1; }
  cp -p /tmp/drcheck-nsswitch.conf /etc/nsswitch.conf
fi

python=${PYTHON:-python3}
stamp=.venv/.drcheck-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "install.sh: creating .venv and installing pytest-drcheck[aws,test,windows]"
  "$python" -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/pip install -q -e '.[aws,test,windows]'
  echo "$want" > "$stamp"
fi
