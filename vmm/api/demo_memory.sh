#!/bin/sh
# SPDX-License-Identifier: MIT
# Memory part of `make demo`: once the guest's DM driver is connected, shrink the guest and grow
# it again through the REST API, printing the progress events as they arrive.
# Usage: demo_memory.sh MICROVMM_BINARY API_SOCKET SHRINK_MIB GROW_MIB [CONNECT_TIMEOUT_S]
# scripts/demo.sh starts `microvmm --config configs/<demo>.toml` in the background and calls this.
set -eu
bin=$1 sock=$2 shrink=$3 grow=$4 timeout=${5:-120}

ctl() { "$bin" ctl --socket "$sock" "$@"; }

echo "== waiting up to ${timeout}s for the guest's Dynamic Memory driver on $sock"
waited=0
until ctl memory get 2>/dev/null | grep -q '"connected": true'; do
    waited=$((waited + 1))
    if [ "$waited" -ge "$timeout" ]; then
        echo "demo: the DM driver did not connect within ${timeout}s" >&2
        ctl memory get >&2 || true
        exit 1
    fi
    sleep 1
done
ctl memory get

echo "== shrinking the guest to ${shrink} MiB (balloon)"
ctl memory set "$shrink" --wait
ctl memory get

echo "== growing the guest to ${grow} MiB (unballoon, then hot-add past boot size)"
ctl memory set "$grow" --wait
ctl memory get

echo "== metrics"
ctl metrics | grep -E '^microvmm_(memory|dm|guest)_' || true
