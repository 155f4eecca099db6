#!/usr/bin/env bash
# Install the pinned anvil binary (a standalone executable published on npm) into .tools/.
# Idempotent: does nothing when the binary is already there. Needs npm only at install time.
set -euo pipefail

ANVIL_PKG="@foundry-rs/anvil-linux-amd64"
ANVIL_VERSION="1.7.1"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/node_modules/$ANVIL_PKG/bin/anvil"

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "$ANVIL_VERSION"; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "install-anvil: npm is required to install $ANVIL_PKG@$ANVIL_VERSION" >&2
    exit 1
fi
mkdir -p "$TOOLS"
npm install --silent --no-audit --no-fund --prefix "$TOOLS" "$ANVIL_PKG@$ANVIL_VERSION"
chmod +x "$BIN"
"$BIN" --version
