#!/usr/bin/env bash
# Catch-up: node3 of a three-node loopback cluster is stopped, N entries are appended through
# node1 (driven by `hey`, bounded count), node3 is started again, and the time until its applied
# tree equals node1's is printed. With BEFORE, that many entries are appended first with every
# node up, so node3 comes back with a large ledger and misses only the N (by log unless the leader
# marked a snapshot meanwhile, which it does every 2,048 Raft entries; then by a copy of the
# leader's projection, made when node3 asks). Bounded: BEFORE + N appends, a 120 s wait.
# Usage: bench/catch-up.sh [ENTRIES] [BEFORE]
set -euo pipefail
n=${1:-100000}
before=${2:-0}
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/.." && pwd)
command -v hey >/dev/null || { echo "missing hey: apt-get install hey" >&2; exit 1; }
dotnet build "$root/FhirGateway" -c Release -v q -nologo >/dev/null
node_dll="$root/FhirGateway/bin/Release/net10.0/health-node.dll"
tmp=$(mktemp -d); pids=(0 0 0)
cleanup() { for p in "${pids[@]}"; do [ "$p" != 0 ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
members=(); for i in 1 2 3; do members+=(--member "node$i=127.0.0.1:$((39580+i))=http://127.0.0.1:$((38580+i))"); done
start_node() {
  local i=$1
  dotnet "$node_dll" run --node-id node$i --http http://127.0.0.1:$((38580+i)) --data "$tmp/node$i" "${members[@]}" >>"$tmp/node$i.log" 2>&1 &
  pids[$((i-1))]=$!
}
size() { curl -s "http://127.0.0.1:$((38580+$1))/ledger/status" | python3 -c "import json,sys; print(json.load(sys.stdin)['treeSize'])" 2>/dev/null || echo -1; }
for i in 1 2 3; do start_node $i; done
for _ in $(seq 1 100); do curl -s http://127.0.0.1:38581/ledger/status | grep -q '"leaderId":"node' && break; sleep 0.2; done
if [ "$before" -gt 0 ]; then
  hey -n "$before" -c 256 -m POST -T application/json -d '{"kind":"OperatorNote","fields":{"note":"before node3 stops"}}' http://127.0.0.1:38581/ledger/entries | grep -E "Requests/sec"
  for _ in $(seq 1 600); do [ "$(size 3)" -ge "$(size 1)" ] && break; sleep 0.2; done
  echo "every node holds $(size 3) entries; node3 stops"
fi
kill "${pids[2]}"; wait "${pids[2]}" 2>/dev/null || true; pids[2]=0
payload=$(printf 'x%.0s' $(seq 1 64))
hey -n "$n" -c 256 -m POST -T application/json -d "{\"kind\":\"OperatorNote\",\"fields\":{\"note\":\"$payload\"}}" http://127.0.0.1:38581/ledger/entries | grep -E "Requests/sec|\[201\]"
target=$(size 1)
echo "node3 was stopped; node1 holds $target entries"
echo "node1's newest snapshot: $(ls "$tmp/node1/ledger/snapshots" | sort -n | tail -1)"
started=$(date +%s.%N)
start_node 3
for _ in $(seq 1 1200); do [ "$(size 3)" -ge "$target" ] && break; sleep 0.1; done
for i in 1 2; do grep -E "copied for a member" "$tmp/node$i.log" | sed "s/^/node$i: /" || true; done
grep -E "fetched from|Snapshot installed" "$tmp/node3.log" | sed "s/^/node3: /" || true
finished=$(date +%s.%N)
awk -v s="$started" -v f="$finished" -v t="$target" -v now="$(size 3)" 'BEGIN { printf "node3 caught up to %d entries (now %d) in %.1f s after its start, process start included\n", t, now, f - s }'
