#!/usr/bin/env bash
# Installs Debian's headless-capable `chromium` and its WebDriver, `chromedriver`, when missing:
# the page target drives the status page in a real browser. Idempotent: does nothing when both
# are there.
set -euo pipefail

present() { command -v "$1" >/dev/null 2>&1; }

present chromium && present chromedriver && exit 0
bash "$(dirname "$0")/apt-install.sh" install-chromium chromium chromium-driver
for program in chromium chromedriver; do
  if ! present "$program"; then
    echo "install-chromium: '$program' is still not there after installing its package" >&2
    exit 1
  fi
done
