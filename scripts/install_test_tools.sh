#!/usr/bin/env bash
# Tools the tests need beyond the virtualenv: headless Chromium for the report test.
set -euo pipefail
command -v chromium >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
  echo "install Debian's chromium package (the report test needs it)" >&2
fi
