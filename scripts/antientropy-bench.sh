#!/usr/bin/env bash
# Anti-entropy at scale: three disk nodes of BIN (N = 3) loaded with KEYS
# keys of 100 bytes (default 1,000,000). Prints, one per line:
#   in-sync round: bytes per replica pair, seconds per round
#   1 % missed (node 2 stopped while 1 % of the keys were written, then
#     restarted): keys taken in its first round, round seconds, bytes on
#     the wire and their ratio to the missing value bytes
#   one divergent key: the same for one key
#   at rest: CPU of the three nodes, rounds off and a round every 15 s
#   foreground get p99: idle, and while node 2 repairs another 1 %
# Bytes are the loopback counters of a network namespace the script makes
# for itself (root), less the idle gossip measured over the same time.
#
#   sudo scripts/antientropy-bench.sh target/release/mydht [KEYS]
set -euo pipefail
BIN=$(realpath "$1")
KEYS=${2:-1000000}
if [ -z "${AE_BENCH_INSIDE:-}" ]; then
    ns="mydht-ae-$$"
    ip netns add "$ns"
    trap 'ip netns del "$ns"' EXIT
    ip netns exec "$ns" ip link set lo up
    AE_BENCH_INSIDE=1 ip netns exec "$ns" "$0" "$@"
    exit
fi
base=$((20000 + RANDOM % 20000))
dir=$(mktemp -d /var/tmp/mydht-ae.XXXXXX)
pids=("" "" "")
cleanup() {
    for p in "${pids[@]}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
name() { echo "127.0.0.1:$((base + $1))"; }
start() {
    local i=$1
    shift
    local args=(node -h 127.0.0.1 -p $((base + i)) --data-dir "$dir/n$i" --sync periodic
        --on-signal stop --hint-max-bytes 0 "$@")
    [ "$i" -gt 0 ] && args+=(-s "$(name 0)")
    RUST_LOG=warn "$BIN" "${args[@]}" >"$dir/n$i.out" 2>>"$dir/n$i.err" &
    pids[$i]=$!
    for _ in $(seq 400); do grep -q listening "$dir/n$i.out" 2>/dev/null && return; sleep 0.05; done
    echo "node $i did not start" >&2
    exit 1
}
stop() {
    kill -TERM "${pids[$1]}"
    wait "${pids[$1]}" 2>/dev/null || true
    pids[$1]=""
}
status() { curl -sf "http://$(name "$1")/status.json"; }
# The last finished pass named $2 on node $1, as JSON (or nothing).
last_pass() { status "$1" | jq -c --arg p "$2" '.movement.last[] | select(.pass == $p)'; }
lo() { cat /sys/class/net/lo/statistics/tx_bytes; }
now() { date +%s.%N; }
# Loopback bytes per second with nothing but gossip going on.
idle_rate() {
    local b0 t0 b1 t1
    b0=$(lo); t0=$(now); sleep 5; b1=$(lo); t1=$(now)
    awk -v a="$b0" -v b="$b1" -v s="$t0" -v e="$t1" 'BEGIN{printf "%.0f", (b-a)/(e-s)}'
}
# Bytes from $1 at time $2 to now, less idle traffic at rate $3.
net_bytes() {
    awk -v a="$1" -v b="$(lo)" -v s="$2" -v e="$(now)" -v r="$3" 'BEGIN{printf "%.0f", (b-a)-r*(e-s)}'
}
ticks() {
    local t=0 f
    for p in "${pids[@]}"; do
        [ -z "$p" ] && continue
        read -r -a f <"/proc/$p/stat"
        t=$((t + f[13] + f[14]))
    done
    echo "$t"
}
wait_up() {
    for _ in $(seq 600); do
        if status 0 | jq -e --arg n "$(name "$1")" \
            '.members[] | select(.node == $n and .state == "up" and (.down | not))' >/dev/null 2>&1; then
            return
        fi
        sleep 0.1
    done
    echo "node $1 not seen up" >&2
    exit 1
}
wait_pass() { # node, pass name
    for _ in $(seq 3000); do
        last_pass "$1" "$2" 2>/dev/null | grep -q . && return
        sleep 0.1
    done
    echo "no $2 pass on node $1" >&2
    exit 1
}
off=(--anti-entropy-interval off)
start 0 "${off[@]}"
start 1 "${off[@]}"
start 2 "${off[@]}"
wait_up 1
wait_up 2
missing=$((KEYS / 100))
loaded=$((KEYS - missing))
"$BIN" bench -h 127.0.0.1 -p "$base" -t put -n "$loaded" -d 100 -c 50 --sequential-from 0 --csv >/dev/null
echo "loaded $loaded keys" >&2
getp99() {
    "$BIN" bench -h 127.0.0.1 -p "$base" -t get -n "${1:-100000}" -d 100 -c 20 -r "$loaded" --csv |
        awk -F, '/GET/{gsub(/"/,""); print $4}'
}
p99_idle=$(getp99)
hz=$(getconf CLK_TCK)
cpu() { awk -v a="$1" -v b="$2" -v s="$3" -v e="$4" -v hz="$hz" 'BEGIN{printf "%.2f", (b-a)/hz/(e-s)*100}'; }
c0=$(ticks); t0=$(now); sleep 30
rest_off=$(cpu "$c0" "$(ticks)" "$t0" "$(now)")

rate=$(idle_rate)
b0=$(lo); t0=$(now)
"$BIN" client -h 127.0.0.1 -p "$base" -c balance >/dev/null
insync=$(net_bytes "$b0" "$t0" "$rate")
secs=$(last_pass 0 balance | jq .seconds)
echo "in-sync round: $((insync / 6)) bytes per replica pair ($insync for 3 nodes x 2 peers, idle gossip $rate B/s subtracted), ${secs} s per round"

# A replica that missed writes: node 2 stops, writes go on, it restarts
# running a round 3 s after start (the others run none), alone on the wire.
repair() { # first key, count, label
    stop 2
    if [ "$2" -eq 1 ]; then
        "$BIN" client -h 127.0.0.1 -p "$base" -c put -k "key:$(printf %012d "$1")" -val one >/dev/null
    else
        "$BIN" bench -h 127.0.0.1 -p "$base" -t put -n "$2" -d 100 -c 50 --sequential-from "$1" --csv >/dev/null
    fi
    local started
    started=$(now)
    start 2 --anti-entropy-interval 15s
    wait_up 2
    # Past the restart's membership traffic, gossip alone; the window then
    # opens a second before the first round (15 s after the start), which
    # runs in it alone.
    sleep 3
    rate=$(idle_rate)
    sleep "$(awk -v s="$started" -v n="$(now)" 'BEGIN{d=s+14-n; print (d>0?d:0)}')"
    b0=$(lo); t0=$(now)
    if last_pass 2 anti-entropy | grep -q .; then
        echo "$3: the round ran before the window opened; run again" >&2
        exit 1
    fi
    wait_pass 2 anti-entropy
    moved=$(net_bytes "$b0" "$t0" "$rate")
    p=$(last_pass 2 anti-entropy)
    echo "$3: $(jq .sent <<<"$p") of $2 keys taken in one round of $(jq .seconds <<<"$p") s" \
        "($(jq .digests <<<"$p") digest calls), $moved bytes on the wire," \
        "$(awk -v m="$moved" -v v="$(($2 * 100))" 'BEGIN{printf "%.2f", m/v}') x the missing value bytes"
}
repair "$loaded" "$missing" "1 % missed"
repair "$KEYS" 1 "one divergent key"

# At rest: node 2 runs a round every 15 s on an in-sync ring, against the
# same ring with rounds off (measured at the start).
c0=$(ticks); t0=$(now); sleep 45
c1=$(ticks); t1=$(now)
echo "at rest: $(cpu "$c0" "$c1" "$t0" "$t1") % of one core for the three nodes with a round every 15 s on one," \
    "$rest_off % with rounds off; last round $(last_pass 2 anti-entropy | jq .seconds) s"

# Foreground reads while node 2 repairs another 1 %.
stop 2
"$BIN" bench -h 127.0.0.1 -p "$base" -t put -n "$missing" -d 100 -c 50 --sequential-from $((KEYS + 1)) --csv >/dev/null
start 2 --anti-entropy-interval 3s
p99_busy=$(getp99 200000)
echo "foreground get p99: idle ${p99_idle} ms, ${p99_busy} ms while node 2 repaired another 1 %" \
    "(rounds every 3 s during the load)"
