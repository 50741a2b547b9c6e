#!/usr/bin/env bash
# Audit export and offline verification over at least 100,000 ledger entries: a three-node
# loopback cluster speaking mutual TLS, one Synthea patient, N consent-gated reads driven by `hey`
# (each appends an AccessRequested entry), then `health-node audit export` against node1 and
# `health-node audit verify` on the result. Prints entries/s for both and peak memory (RSS) of
# node1 during the export and of the verifier. Bounded: N reads, one export, one verify.
# Usage: bench/audit.sh [READS] [SAMPLE_FOLDER]
set -euo pipefail
n=${1:-100000}
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/.." && pwd)
samples=${2:-$root/../shared/fhir/synthea-r4}
command -v hey >/dev/null || { echo "missing hey: apt-get install hey" >&2; exit 1; }
dotnet build "$root/FhirGateway" -c Release -v q -nologo >/dev/null
node_dll="$root/FhirGateway/bin/Release/net10.0/health-node.dll"
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
dotnet "$node_dll" certs ca --out "$tmp/ca" >/dev/null
members=(); for i in 1 2 3; do members+=(--member "node$i=127.0.0.1:$((39380+i))=https://127.0.0.1:$((38380+i))"); done
for i in 1 2 3; do
  dotnet "$node_dll" certs node --ca "$tmp/ca" --node-id node$i --out "$tmp/certs" >/dev/null
  dotnet "$node_dll" run --node-id node$i --http https://127.0.0.1:$((38380+i)) --data "$tmp/node$i" \
    --dev-issuer-key "$tmp/issuer.pem" --pseudonym-key "$tmp/pseudonym.key" "${members[@]}" \
    --tls-cert "$tmp/certs/node$i.pem" --tls-key "$tmp/certs/node$i.key" --tls-ca "$tmp/ca/consortium-ca.pem" >"$tmp/node$i.log" 2>&1 &
  pids+=($!)
done
ca="$tmp/ca/consortium-ca.pem"; base=https://127.0.0.1:38381
for _ in $(seq 1 100); do curl -s --cacert "$ca" "$base/ledger/status" | grep -q '"leaderId":"node' && break; sleep 0.2; done
operator=$(dotnet "$node_dll" token --key "$tmp/issuer.pem" --role operator)
clinician=$(dotnet "$node_dll" token --key "$tmp/issuer.pem" --role clinician --org node1)
auditor=$(dotnet "$node_dll" token --key "$tmp/issuer.pem" --role auditor)
bundle=$(ls "$samples"/*.json | grep -v -e hospitalInformation -e practitionerInformation | head -1)
patient=$(curl -s --cacert "$ca" -X POST "$base/fhir" -H "Authorization: Bearer $operator" -H 'Content-Type: application/fhir+json' --data-binary @"$bundle" \
  | python3 -c "import json,sys; print([e['response']['location'] for e in json.load(sys.stdin)['entry'] if e['response']['location'].startswith('Patient/')][0].split('/')[1])")
echo "driving $n audited reads..."
# hey cannot be given the consortium CA; the reads go to a node whose certificate the script made.
hey -n "$n" -c 64 -H "Authorization: Bearer $clinician" "$base/fhir/Patient/$patient" | grep -E "Requests/sec|\[200\]"
sleep 2
entries=$(curl -s --cacert "$ca" "$base/ledger/status" | python3 -c "import json,sys; print(json.load(sys.stdin)['treeSize'])")
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
before=$(rss "${pids[0]}"); peak=$before
( while kill -0 "${pids[0]}" 2>/dev/null; do r=$(rss "${pids[0]}"); [ "$r" -gt "$(cat "$tmp/peak" 2>/dev/null || echo 0)" ] && echo "$r" >"$tmp/peak"; sleep 0.1; done ) &
watcher=$!
start=$(date +%s.%N)
dotnet "$node_dll" audit export --url "$base" --token "$auditor" --out "$tmp/export" --cacert "$ca"
end=$(date +%s.%N)
kill "$watcher" 2>/dev/null || true
peak=$(cat "$tmp/peak" 2>/dev/null || echo "$before")
exported=$(python3 -c "import json; print(json.load(open('$tmp/export/manifest.json'))['treeSize'])")
awk -v e="$exported" -v s="$start" -v t="$end" -v b="$before" -v p="$peak" -v l="$entries" 'BEGIN {
  printf "ledger: %d entries; export: %d entries in %.1f s = %.0f entries/s; node1 RSS %d MB before, peak %d MB during the export\n", l, e, t - s, e / (t - s), b / 1024, p / 1024 }'
du -sh "$tmp/export" | awk '{print "export size: " $1}'
if [ -n "${KEEP_EXPORT:-}" ]; then cp -r "$tmp/export" "$KEEP_EXPORT"; cp "$ca" "$KEEP_EXPORT/../consortium-ca.pem"; fi
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait "${pids[@]}" 2>/dev/null || true
/usr/bin/time -f "verifier peak RSS: %M KB" dotnet "$node_dll" audit verify "$tmp/export" --ca "$ca"
