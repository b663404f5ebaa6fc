#!/usr/bin/env bash
# Counts the instructions one node of BIN executes (valgrind callgrind)
# while it serves 20,000 puts and 20,000 gets of 100 bytes from 10
# connections, alone (NODES=1, N=1) or as the coordinator of a 3-node ring
# (NODES=3, N=3, 10,000 + 10,000). Instruction counts barely move with the
# machine's load, unlike timings. Needs valgrind.
#
#   scripts/node-instructions.sh target/release/mydht 1
set -euo pipefail
BIN=$1
NODES=${2:-1}
CLIENT=${CLIENT:-$BIN}
base=$((30000 + RANDOM % 20000))
dir=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$BIN" node -h 127.0.0.1 -p "$base" \
    --memory -r "$NODES" --on-signal stop >"$dir/n0.out" 2>"$dir/n0.err" &
coordinator=$!
for _ in $(seq 600); do grep -q listening "$dir/n0.out" 2>/dev/null && break; sleep 0.1; done
for i in $(seq 1 $((NODES - 1))); do
    "$BIN" node -h 127.0.0.1 -p $((base + i)) --memory -r "$NODES" -s "127.0.0.1:$base" \
        --on-signal stop >"$dir/n$i.out" 2>"$dir/n$i.err" &
    pids+=($!)
    for _ in $(seq 600); do grep -q listening "$dir/n$i.out" 2>/dev/null && break; sleep 0.1; done
done
[ "$NODES" -gt 1 ] && sleep 2
n=$((NODES > 1 ? 10000 : 20000))
"$CLIENT" bench -h 127.0.0.1 -p "$base" -t put,get -n "$n" -d 100 -c 10 -r $((n / 2)) --csv >/dev/null
kill -INT "${pids[@]}" 2>/dev/null || true
kill -INT "$coordinator"
wait "$coordinator" || true
awk '/^summary:/{print $2}' "$dir/cg.out"
