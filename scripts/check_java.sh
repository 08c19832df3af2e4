#!/usr/bin/env bash
# Spark 4 needs Java 17 or 21. Stop early with a message that says what to install.
set -euo pipefail
if ! command -v java >/dev/null 2>&1; then
  echo "ERROR: Java not found. PySpark 4 needs Java 17 or 21." >&2
  echo "Install it, e.g. 'apt-get install openjdk-17-jre-headless', or set JAVA_HOME." >&2
  exit 2
fi
version=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
major=${version%%.*}
if [ -z "$major" ] || [ "$major" -lt 17 ] 2>/dev/null; then
  echo "ERROR: Java $version is too old. PySpark 4 needs Java 17 or 21." >&2
  echo "Install it, e.g. 'apt-get install openjdk-17-jre-headless', and put it first on PATH." >&2
  exit 2
fi
