#!/usr/bin/env bash
# Loads a fresh in-memory ring of NODES nodes of BIN with `mydht bench`
# (100-byte values, 50 connections) and prints one line:
#   put_ops/s put_p99_ms get_ops/s get_p99_ms server_cpu_us_per_op
# CLIENT (default: BIN) is the load generator, so two builds can be
# compared under the same client. Run two builds alternately, several
# times, and compare medians: the machine is shared and noisy.
#
#   scripts/node-bench.sh target/release/mydht 1
set -euo pipefail
BIN=$1
NODES=${2:-1}
CLIENT=${CLIENT:-$BIN}
base=$((20000 + RANDOM % 20000))
dir=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for i in $(seq 0 $((NODES - 1))); do
    args=(node -h 127.0.0.1 -p $((base + i)) --memory -r "$NODES" --on-signal stop)
    [ "$i" -gt 0 ] && args+=(-s "127.0.0.1:$base")
    RUST_LOG=warn "$BIN" "${args[@]}" >"$dir/n$i.out" 2>"$dir/n$i.err" &
    pids+=($!)
    for _ in $(seq 200); do grep -q listening "$dir/n$i.out" 2>/dev/null && break; sleep 0.05; done
done
sleep 0.5
ticks() {
    local t=0
    for p in "${pids[@]}"; do
        read -r -a f <"/proc/$p/stat"
        t=$((t + f[13] + f[14]))
    done
    echo "$t"
}
t0=$(ticks)
out=$("$CLIENT" bench -h 127.0.0.1 -p "$base" -t put,get -n 200000 -d 100 -c 50 -r 100000 --csv)
t1=$(ticks)
put=$(echo "$out" | awk -F, '/PUT/{gsub(/"/,""); print $2" "$4}')
get=$(echo "$out" | awk -F, '/GET/{gsub(/"/,""); print $2" "$4}')
cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.1f", (b-a)/hz*1e6/400000}')
echo "$put $get $cpu"
