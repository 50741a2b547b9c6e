#!/usr/bin/env bash
# FHIR read and search rates at 32 concurrent clients on a three-node loopback cluster holding
# every Synthea bundle (ingested at node1). Driven by `hey` with a clinician token; bounded counts.
# Usage: bench/fhir-reads.sh [REQUESTS] [SAMPLE_FOLDER]
set -euo pipefail
n=${1:-4000}
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/.." && pwd)
samples=${2:-$root/../shared/fhir/synthea-r4}
command -v hey >/dev/null || { echo "missing hey: apt-get install hey" >&2; exit 1; }
dotnet build "$root/FhirGateway" -c Release -v q -nologo >/dev/null
node_dll="$root/FhirGateway/bin/Release/net10.0/health-node.dll"
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
members=(); for i in 1 2 3; do members+=(--member "node$i=127.0.0.1:$((39080+i))=http://127.0.0.1:$((38180+i))"); done
for i in 1 2 3; do
  dotnet "$node_dll" run --node-id node$i --http http://127.0.0.1:$((38180+i)) --data "$tmp/node$i" \
    --dev-issuer-key "$tmp/issuer.pem" --pseudonym-key "$tmp/pseudonym.key" "${members[@]}" >"$tmp/node$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 1 100); do curl -s http://127.0.0.1:38181/ledger/status | grep -q '"leaderId":"node' && break; sleep 0.2; done
base=http://127.0.0.1:38181/fhir
operator=$(dotnet "$node_dll" token --key "$tmp/issuer.pem" --role operator)
clinician=$(dotnet "$node_dll" token --key "$tmp/issuer.pem" --role clinician)
for f in "$samples"/hospitalInformation*.json "$samples"/practitionerInformation*.json $(ls "$samples"/*.json | grep -v -e hospitalInformation -e practitionerInformation); do
  curl -s -o /dev/null -X POST "$base" -H "Authorization: Bearer $operator" -H 'Content-Type: application/fhir+json' --data-binary @"$f"
done
patient=$(curl -s -H "Authorization: Bearer $clinician" "$base/Patient?_count=1" | python3 -c "import json,sys; print(json.load(sys.stdin)['entry'][0]['resource']['id'])")
observation=$(curl -s -H "Authorization: Bearer $clinician" "$base/Observation?patient=$patient&_count=1" | python3 -c "import json,sys; print(json.load(sys.stdin)['entry'][0]['resource']['id'])")
run() {
  local name=$1 url=$2
  out=$(hey -n "$n" -c 32 -H "Authorization: Bearer $clinician" "$url")
  printf "%-40s %8s req/s  p50 %ss  p99 %ss  %s\n" "$name" "$(echo "$out" | awk '/Requests\/sec/{print $2}')" \
    "$(echo "$out" | awk '/ 50%/{print $3}')" "$(echo "$out" | awk '/ 99%/{print $3}')" "$(echo "$out" | grep -E '^\s+\[[0-9]+\]' | tr -s ' ' | tr '\n' ' ')"
}
run "read Observation/{id}" "$base/Observation/$observation"
run "search Observation?patient=&_count=10" "$base/Observation?patient=$patient&_count=10"
run "search Observation?code=8302-2&_count=10" "$base/Observation?code=http://loinc.org%7C8302-2&_count=10"
run "search Patient?family=<3 letters>" "$base/Patient?gender=female&_count=10"
