#!/usr/bin/env bash
# Fails when regeneration changed a file or produced an untracked one, compared
# with what is staged or committed.
set -euo pipefail
cd "$(dirname "$0")/.."
changed=$(git diff --name-only)
untracked=$(git ls-files --others --exclude-standard)
if [ -n "$changed$untracked" ]; then
  echo "make verify: generated files, formatting or go.mod are stale; run 'make manifests generate fmt' and 'go mod tidy', then commit:" >&2
  [ -n "$changed" ] && echo "changed: $changed" >&2
  [ -n "$untracked" ] && echo "untracked: $untracked" >&2
  exit 1
fi
echo "make verify: clean"
