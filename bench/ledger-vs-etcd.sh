#!/usr/bin/env bash
# Ledger append throughput side by side with a three-member etcd, in one run on this machine.
# Starts three health-node processes on loopback, then alternates, ROUNDS times (3 by default):
# ../shared/bench/etcd-baseline.sh (a fresh three-member etcd, durable puts of ~300-byte values
# driven by `hey` at 1/16/256 clients), then the same `hey` settings against POST /ledger/entries
# on the leader (~300-byte entries); the nodes stay up, idle, while etcd runs. Alternating, and
# taking each side's median per level, keeps the machine's swings (which reach half the figure at
# 256 clients) out of the ratio. The nodes
# first take 5 s of unmeasured appends at each measured level: etcd is compiled ahead of time, while
# .NET compiles its hot code as it runs, so a just-started node measures the JIT, not the ledger.
# Prints each side's median per level and their ratio, then the ledger side's CPU per append (the
# three nodes' from /proc, hey's own), the figures that explain the ratio on a machine both share.
# Needs: apt-get install etcd-server etcd-client hey. Bounded counts and time; loopback only.
# Usage: bench/ledger-vs-etcd.sh [N_PER_LEVEL] [ROUNDS]   (20,000 requests per level, 3 rounds by default)
set -euo pipefail
n=${1:-20000}
rounds=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${SHARED_DIR:-$root/../shared}
for tool in etcd etcdctl hey; do command -v $tool >/dev/null || { echo "missing $tool: apt-get install etcd-server etcd-client hey" >&2; exit 1; }; done

dotnet build "$root/FhirGateway" -c Release -v q -nologo >/dev/null
node_dll="$root/FhirGateway/bin/Release/net10.0/health-node.dll"

tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
members=()
for i in 1 2 3; do members+=(--member "node$i=127.0.0.1:2908$i=http://127.0.0.1:2808$i"); done
for i in 1 2 3; do
  dotnet "$node_dll" run --node-id node$i --http http://127.0.0.1:2808$i --data "$tmp/node$i" "${members[@]}" >"$tmp/node$i.log" 2>&1 &
  pids+=($!)
done
leader=""
for _ in $(seq 1 100); do
  leader=$(curl -s http://127.0.0.1:28081/ledger/status 2>/dev/null | sed -n 's/.*"leaderId":"\(node[0-9]\)".*/\1/p') || true
  [ -n "$leader" ] && break; sleep 0.2
done
[ -n "$leader" ] || { echo "no leader elected" >&2; cat "$tmp"/node*.log >&2; exit 1; }
leader_url="http://127.0.0.1:2808${leader#node}"
echo "health ledger, three nodes, leader $leader_url"

payload=$(head -c 225 /dev/urandom | base64 -w0)   # 300 base64 characters, as the etcd values
body="{\"kind\":\"OperatorNote\",\"fields\":{\"topic\":\"bench\",\"note\":\"$payload\"}}"
# Warm-up at each level that is measured: the 256-client level lasts a second or two, and its
# first run otherwise pays for compiling the paths of 256 new connections.
for c in 1 16 256; do
  hey -z 5s -c $c -m POST -T application/json -d "$body" -t 10 "$leader_url/ledger/entries" >/dev/null
done
echo "warm-up: $(curl -s "$leader_url/ledger/status" | sed -n 's/.*"treeSize":\([0-9]*\).*/\1/p') entries appended in 15 s at 1, 16 and 256 clients, not measured"
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
declare -A etcd_rps ledger_rps ledger_cpu hey_cpu
# CPU of the three nodes (user and system, in clock ticks) from /proc, for CPU per append.
ticks=$(getconf CLK_TCK)
node_ticks() { for p in "${pids[@]}"; do awk '{ print $14 + $15 }' "/proc/$p/stat"; done | awk '{ s += $1 } END { print s }'; }
TIMEFORMAT='%U %S'   # bash's `time`: hey's user and system seconds
for round in $(seq 1 "$rounds"); do
  echo "round $round of $rounds"
  etcd_out=$(bash "$shared/bench/etcd-baseline.sh" "$n")
  echo "$etcd_out" | sed 's/^/  /'
  for c in 1 16 256; do
    # The first puts/s after the level's "etcd put c=N " (hey's status lines can split a result line).
    puts=$(echo "$etcd_out" | tr '\n' ' ' | grep -o "etcd put c=$c .*" | grep -o 'puts/s=[0-9.]*' | head -1 | cut -d= -f2) || true
    [ -n "$puts" ] || { echo "no etcd figure for $c clients in round $round" >&2; exit 1; }
    etcd_rps[$c]+=" $puts"
  done
  for c in 1 16 256; do
    before=$(node_ticks)
    { time hey -n "$n" -c "$c" -m POST -T application/json -d "$body" -t 10 "$leader_url/ledger/entries" > "$tmp/hey.out"; } 2> "$tmp/hey.time"
    out=$(cat "$tmp/hey.out")
    sent=$(( n / c * c ))   # hey sends the same number of requests from every client
    nodes_us=$(awk -v b="$before" -v a="$(node_ticks)" -v t="$ticks" -v n="$sent" 'BEGIN { printf "%.0f", (a - b) * 1e6 / t / n }')
    hey_us=$(awk -v n="$sent" '{ printf "%.0f", ($1 + $2) * 1e6 / n }' "$tmp/hey.time")
    ledger_cpu[$c]+=" $nodes_us"; hey_cpu[$c]+=" $hey_us"
    rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
    p50=$(echo "$out" | awk '/ 50%/{print $3}'); p99=$(echo "$out" | awk '/ 99%/{print $3}')
    ok=$(echo "$out" | awk '/^ *\[201\]/{print $2}')
    ledger_rps[$c]+=" $rps"
    echo "  ledger append c=$c n=$n ok=$ok appends/s=$rps p50=${p50}s p99=${p99}s nodes_cpu_us=$nodes_us hey_cpu_us=$hey_us"
    echo "$out" | sed -n "/Error distribution/,\$p" | grep -v "^$" | sed "s/^/      /" | head -8 || true
  done
done
final=$(curl -s "$leader_url/ledger/status" | sed -n 's/.*"treeSize":\([0-9]*\).*/\1/p')
echo "ledger tree size after the run: $final entries"

echo
echo "clients  etcd puts/s (median)  ledger appends/s (median)  ratio  ratio per round"
for c in 1 16 256; do
  e=$(echo "${etcd_rps[$c]}" | median); l=$(echo "${ledger_rps[$c]}" | median)
  per_round=$(paste <(echo "${etcd_rps[$c]}" | tr ' ' '\n' | grep -v '^$') <(echo "${ledger_rps[$c]}" | tr ' ' '\n' | grep -v '^$') | awk '{ printf "%s%.2fx", (NR > 1 ? " " : ""), ($1 > 0 ? $2 / $1 : 0) }')
  awk -v c="$c" -v e="$e" -v l="$l" -v r="$per_round" 'BEGIN { printf "%7s  %20.0f  %25.0f  %5.2fx  %s\n", c, e, l, (e > 0 ? l / e : 0), r }'
done

echo
echo "CPU per append on the ledger's side (medians): the three nodes together, and hey driving them"
echo "clients  nodes µs/append  hey µs/request"
for c in 1 16 256; do
  printf "%7s  %15s  %14s\n" "$c" "$(echo "${ledger_cpu[$c]}" | median)" "$(echo "${hey_cpu[$c]}" | median)"
done
