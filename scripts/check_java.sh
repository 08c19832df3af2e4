#!/usr/bin/env bash
# Spark 4 needs Java 17 or 21. Stop early with a message that says what to install.
set -euo pipefail
if ! command -v java >/dev/null 2>&1; then
  echo "ERROR: Java not found. PySpark 4 needs Java 17 or 21." >&2
  echo "Install it, e.g. 'apt-get install openjdk-17-jdk-headless', or set JAVA_HOME." >&2
  exit 2
fi
version=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
major=${version%%.*}
if [ -z "$major" ] || [ "$major" -lt 17 ] 2>/dev/null; then
  echo "ERROR: Java $version is too old. PySpark 4 needs Java 17 or 21." >&2
  echo "Install it, e.g. 'apt-get install openjdk-17-jdk-headless', and put it first on PATH." >&2
  exit 2
fi
if ! command -v javac >/dev/null 2>&1 && ! [ -x "${JAVA_HOME:-/nonexistent}/bin/javac" ]; then
  echo "WARNING: no javac (a JDK): protect runs on Spark's built-in functions, slower." >&2
  echo "Install e.g. 'apt-get install openjdk-17-jdk-headless' for the project's JVM functions." >&2
fi
