#!/usr/bin/env bash
# What the test suite needs beyond Python packages: headless Chromium and its driver from
# Debian's packages, for the browser tests. Idempotent and quiet when all is in place.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-test-deps: no apt-get here; install Chromium and ChromeDriver yourself" \
       "(the browser tests are skipped without them)" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install-test-deps: not root and no sudo; the browser tests will be skipped" >&2
    exit 0
  fi
fi
echo "install-test-deps: installing chromium and chromium-driver from Debian's packages..."
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
chromium --version
