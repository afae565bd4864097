#!/usr/bin/env bash
# Fails when regeneration changed a tracked file or produced an untracked one.
set -euo pipefail
cd "$(dirname "$0")/.."
status=$(git status --porcelain -- . ':!bin')
if [ -n "$status" ]; then
  echo "make verify: generated files or formatting are stale; run 'make manifests generate fmt' and commit:" >&2
  echo "$status" >&2
  git --no-pager diff --stat >&2 || true
  exit 1
fi
echo "make verify: clean"
