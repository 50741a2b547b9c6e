#!/usr/bin/env bash
# Synthea ingest rate: three health-node processes on loopback; every bundle in the sample folder
# is posted to node1 as a transaction (organisations and practitioners first): once cold (just
# started, code not yet compiled by the JIT's optimising tier), three more times one at a time, then
# three times with 4 bundles in flight. Prints resources/s for each pass and the median of each
# warm triple. Bounded: seven passes over the set (later passes store the patients again under new
# ids; organisations match by identifier).
# With --profile, node1 is traced (dotnet-trace, sampled thread time) during the warm sequential pass and
# the share of the ingest handler's time spent in cryptography (the encryption on/off question),
# SQLite and Firely's JSON is printed.
# With --steady N, N more passes with 4 bundles in flight follow, and their median is printed too:
# the rate once the JIT has compiled the ingest path, which the first passes are still doing.
# Usage: bench/ingest.sh [--profile] [--steady N] [SAMPLE_FOLDER]
set -euo pipefail
profile=false; steady=0
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=true; shift ;;
    --steady) steady=$2; shift 2 ;;
    *) break ;;
  esac
done
trace_tool=$(command -v dotnet-trace || echo "$HOME/.dotnet/tools/dotnet-trace")
if $profile && [ ! -x "$trace_tool" ]; then echo "--profile needs dotnet-trace: dotnet tool install --global dotnet-trace" >&2; exit 1; fi
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/.." && pwd)
samples=${1:-$root/../shared/fhir/synthea-r4}
dotnet build "$root/FhirGateway" -c Release -v q -nologo >/dev/null
node_dll="$root/FhirGateway/bin/Release/net10.0/health-node.dll"
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
run_cluster() {
  local base=$1; members=()
  for i in 1 2 3; do members+=(--member "node$i=127.0.0.1:$((base+1000+i))=http://127.0.0.1:$((base+i))"); done
  for i in 1 2 3; do
    dotnet "$node_dll" run --node-id node$i --http http://127.0.0.1:$((base+i)) --data "$tmp/$base/node$i" \
      --dev-issuer-key "$tmp/issuer.pem" --pseudonym-key "$tmp/pseudonym.key" "${members[@]}" >"$tmp/$base-node$i.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$((base+1))/ledger/status" | grep -q '"leaderId":"node' && return 0; sleep 0.2; done
  echo "no leader" >&2; exit 1
}
files=$(ls "$samples"/hospitalInformation*.json "$samples"/practitionerInformation*.json; ls "$samples"/*.json | grep -v -e hospitalInformation -e practitionerInformation)
resources=$(python3 -c "import json,sys; print(sum(len(json.load(open(f))['entry']) for f in sys.argv[1:]))" $files)
run_cluster 38080
token=$(dotnet "$node_dll" token --key "$tmp/issuer.pem" --role operator)
post() { curl -s -o /dev/null -w "%{http_code}\n" -X POST "$1/fhir" -H "Authorization: Bearer $token" -H 'Content-Type: application/fhir+json' --data-binary @"$2"; }
export -f post; export token
pass() {
  local name=$1 in_flight=$2 start end
  start=$(date +%s.%N)
  echo "$files" | xargs -P "$in_flight" -I{} bash -c 'post http://127.0.0.1:38081 {}' | grep -v '^200$' | sed 's/^/refused with /' || true
  end=$(date +%s.%N)
  awk -v r="$resources" -v s="$start" -v e="$end" -v name="$name" 'BEGIN { printf "%s: %d resources in %.1f s = %.0f resources/s\n", name, r, e - s, r / (e - s) }' | tee -a "$tmp/rates"
}
median() { grep "^$1" "$tmp/rates" | awk '{ print $(NF-1) }' | sort -n | sed -n 2p; }
pass "cold (just started), one at a time" 1
if $profile; then
  # A fixed window over the warm pass (about 4 s here): dotnet-trace stops on its own.
  "$trace_tool" collect -p "${pids[0]}" --profile dotnet-sampled-thread-time --format Speedscope -o "$tmp/ingest.nettrace" --duration 00:00:00:06 >"$tmp/trace.log" 2>&1 &
  tracer=$!; sleep 2
fi
for run in 1 2 3; do pass "warm, one at a time ($run)" 1; done
if $profile; then
  wait "$tracer" || true
  python3 "$here/profile-share.py" "$tmp/ingest.speedscope.json" TransactionAsync \
    "sealing records (AES-GCM, data keys)=RecordCipher.Seal|RecordStore.DataKey" "HMAC index tokens=SearchIndexer.Token" \
    "all cryptography=RecordCipher.Seal|RecordStore.DataKey|SearchIndexer.Token|PatientPseudonyms" \
    "SQLite=Microsoft.Data.Sqlite" "Firely JSON parse and serialise=FhirJson" \
    "parse the request=FhirJson.ReadAsync" "resolve references=ResolveReferences|PlanEntries" "serialise=FhirJson.ToUtf8" \
    "index=SearchIndexer.Index" "write rows=RecordWriter.Write" "commit=RecordWriter.Commit" "ledger locators=LocateAsync"
fi
for run in 1 2 3; do pass "warm, 4 in flight ($run)" 4; done
echo "median: one at a time $(median "warm, one") resources/s, 4 in flight $(median "warm, 4") resources/s"
if [ "$steady" -gt 0 ]; then
  for run in $(seq 1 "$steady"); do pass "steady, 4 in flight ($run)" 4; done
  echo "median of the $steady steady passes: $(grep '^steady' "$tmp/rates" | awk '{ print $(NF-1) }' | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }') resources/s"
fi
