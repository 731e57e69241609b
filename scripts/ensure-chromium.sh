#!/usr/bin/env bash
# Make sure Debian's chromium is installed for the dashboard's browser tests
# (tests/browser). Playwright drives it by path: no browser is ever downloaded.
# Without root (or passwordless sudo) nothing is installed; the browser tests then
# skip locally, and fail under CI=true.
set -u

for name in chromium chromium-browser; do
  command -v "$name" >/dev/null 2>&1 && exit 0
done
if [ -n "${SLUICEGATE_CHROMIUM:-}" ] && [ -x "$SLUICEGATE_CHROMIUM" ]; then exit 0; fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "note: chromium is not installed and this user cannot install it; the browser tests will skip" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: no apt-get here; install chromium to run the browser tests" >&2
  exit 0
fi

echo "installing chromium for the browser tests (apt)" >&2
export DEBIAN_FRONTEND=noninteractive
# Only the browser and what it needs: recommends would add a desktop's worth of packages.
"${as_root[@]}" apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
  || { "${as_root[@]}" apt-get update -q >/dev/null && \
       "${as_root[@]}" apt-get install -y -q --no-install-recommends chromium >/dev/null; } \
  || echo "warning: could not install chromium" >&2
exit 0
