#!/usr/bin/env bash
# Installs the Debian packages that the browser tests and bench-serve drive from outside the
# server (headless Chromium, wrk) when missing, the way `make deps` installs the build's.
# Best effort: without them those tests and the load figure skip with a message.
set -u
packages=(chromium wrk)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
  || echo "test tools: install failed; browser tests and the load figure will skip"
