#!/usr/bin/env bash
# Runs every test: one shared build of the solution, then each test project against it.
set -euo pipefail
cd "$(dirname "$0")"
dotnet build Health.sln -c Release
dotnet test Health.sln -c Release --no-build --logger "console;verbosity=normal" "$@"
