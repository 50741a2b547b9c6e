#!/usr/bin/env bash
# Consent-gated, audited FHIR reads and searches on a three-node loopback cluster holding every
# Synthea bundle (ingested at node1): each request appends an AccessRequested entry and waits for
# it to be committed and applied before anything is read. Driven by `hey` (bounded counts) with a
# node1 clinician (custodian, treatment) and with a clinician of another organisation under the
# patient's grant; then the time from a revoke being acknowledged to that clinician being denied.
# Usage: bench/fhir-reads.sh [REQUESTS] [CLIENTS] [SAMPLE_FOLDER]
set -euo pipefail
n=${1:-4000}
clients=${2:-64}
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/.." && pwd)
samples=${3:-$root/../shared/fhir/synthea-r4}
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
clinician=$(dotnet "$node_dll" token --key "$tmp/issuer.pem" --role clinician --org node1)
visitor=$(dotnet "$node_dll" token --key "$tmp/issuer.pem" --role clinician --org clinic-bench)
for f in "$samples"/hospitalInformation*.json "$samples"/practitionerInformation*.json $(ls "$samples"/*.json | grep -v -e hospitalInformation -e practitionerInformation); do
  curl -s -o /dev/null -X POST "$base" -H "Authorization: Bearer $operator" -H 'Content-Type: application/fhir+json' --data-binary @"$f"
done
patient=$(curl -s -H "Authorization: Bearer $clinician" "$base/Patient?_count=1" | python3 -c "import json,sys; print(json.load(sys.stdin)['entry'][0]['resource']['id'])")
observation=$(curl -s -H "Authorization: Bearer $clinician" "$base/Observation?patient=$patient&_count=1" | python3 -c "import json,sys; print(json.load(sys.stdin)['entry'][0]['resource']['id'])")
patient_token=$(dotnet "$node_dll" token --key "$tmp/issuer.pem" --role patient --patient "$patient")
consent() { echo '{"resourceType":"Consent",'"${2:-}"'"status":"'"$1"'","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/'"$patient"'"},"provision":{"type":"permit","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}]},"reference":{"reference":"Organization/clinic-bench"}}],"purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"TREAT"}]}}'; }
consent_id=$(curl -s -X POST "$base/Consent" -H "Authorization: Bearer $patient_token" -H 'Content-Type: application/fhir+json' -d "$(consent active)" | python3 -c "import json,sys; print(json.load(sys.stdin)['id'])")
echo "clients: $clients, requests per row: $n"
run() {
  local name=$1 url=$2 who=${3:-$clinician}
  out=$(hey -n "$n" -c "$clients" -H "Authorization: Bearer $who" "$url")
  printf "%-40s %8s req/s  p50 %ss  p99 %ss  %s\n" "$name" "$(echo "$out" | awk '/Requests\/sec/{print $2}')" \
    "$(echo "$out" | awk '/ 50%/{print $3}')" "$(echo "$out" | awk '/ 99%/{print $3}')" "$(echo "$out" | grep -E '^\s+\[[0-9]+\]' | tr -s ' ' | tr '\n' ' ')"
}
run "read Observation/{id}" "$base/Observation/$observation"
run "search Observation?patient=&_count=10" "$base/Observation?patient=$patient&_count=10"
run "search Observation?code=8302-2&_count=10" "$base/Observation?code=http://loinc.org%7C8302-2&_count=10"
run "search Patient?family=<3 letters>" "$base/Patient?gender=female&_count=10"
run "read Patient/{id}, another org, granted" "$base/Patient/$patient" "$visitor"
entries=$(curl -s http://127.0.0.1:38181/ledger/status | python3 -c "import json,sys; print(json.load(sys.stdin)['treeSize'])")
echo "ledger entries after the run: $entries"
start=$(date +%s%N)
curl -s -o /dev/null -X PUT "$base/Consent/$consent_id" -H "Authorization: Bearer $patient_token" -H 'Content-Type: application/fhir+json' -d "$(consent inactive "\"id\":\"$consent_id\",")"
revoked=$(date +%s%N)
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $visitor" "$base/Patient/$patient")
denied=$(date +%s%N)
echo "revoke acknowledged in $(( (revoked - start) / 1000000 )) ms; the next read answered $status after $(( (denied - revoked) / 1000000 )) ms (revoke to denied: $(( (denied - start) / 1000000 )) ms)"
