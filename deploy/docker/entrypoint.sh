#!/bin/sh
# The image's entry point: `owui-bridge` with the container's arguments (default
# `run`), plus `--config "$BRIDGE_CONFIG_FILE"` when a file is mounted there
# (default /config/bridge.toml). exec: the bridge is PID 1 and gets SIGTERM itself.
set -eu
if [ -f "${BRIDGE_CONFIG_FILE:-}" ]; then
    exec owui-bridge --config "$BRIDGE_CONFIG_FILE" "$@"
fi
exec owui-bridge "$@"
