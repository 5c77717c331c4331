#!/usr/bin/env bash
# Runs the whole test suite (the README's test command). Sets JAVA_HOME to a JDK 25 when it is not one already.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "${JAVA_HOME:-}" ]] || ! "${JAVA_HOME}/bin/java" -version 2>&1 | grep -q 'version "2[5-9]'; then
  for j in /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/temurin-25-jdk /usr/lib/jvm/java-25-openjdk-amd64; do
    [[ -x "$j/bin/java" ]] && { export JAVA_HOME="$j"; break; }
  done
fi
"${JAVA_HOME:?set JAVA_HOME to a JDK 25}/bin/java" -version 2>&1 | grep -q 'version "2[5-9]' \
  || { echo "test.sh: Java 25 is required (JAVA_HOME=$JAVA_HOME)" >&2; exit 2; }
cd "$ROOT"
# package = test + the CLI jar, so the first ./qvlm afterwards starts at once instead of rebuilding
exec mvn -B package "$@"
