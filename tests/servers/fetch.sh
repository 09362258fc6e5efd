#!/bin/sh
# Resolves the real servers' jars from Maven Central into DEST (the build tree's servers/ folder)
# and compiles the OpenSearch launcher there:
#   DEST/kafka/lib/*.jar   DEST/kafka39/lib/*.jar   DEST/opensearch/lib/*.jar
#   DEST/opensearch/classes/
# Downloaded once: a server whose pom and launcher are unchanged since its last fetch is skipped,
# so later runs need no network. Maven's own cache is DEST/m2.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:?usage: fetch.sh DEST}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

for tool in java javac mvn; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "fetch.sh: $tool not found: the real-server tests need a JDK 17 and Maven" >&2
        echo "fetch.sh: install them with: apt-get install openjdk-17-jdk-headless maven" >&2
        echo "fetch.sh: (make check does it when run as root)" >&2
        exit 1
    fi
done

# One fetch at a time into the same tree.
exec 9>"$dest/.lock"
flock 9

fetch() { # name, files whose content decides whether to fetch again
    name=$1
    shift
    stamp=$(cat "$@" | sha256sum | cut -c1-16)
    if [ -f "$dest/$name/stamp" ] && [ "$(cat "$dest/$name/stamp")" = "$stamp" ]; then
        return 0
    fi
    echo "fetch.sh: resolving $name's jars from Maven Central into $dest/$name/lib" >&2
    rm -rf "$dest/$name"
    mkdir -p "$dest/$name"
    mvn -B -q -f "$here/$name/pom.xml" -Dmaven.repo.local="$dest/m2" \
        org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$dest/$name/lib" >"$dest/$name/mvn.log" 2>&1 || {
        tail -40 "$dest/$name/mvn.log" >&2
        echo "fetch.sh: mvn could not resolve $name's jars (log: $dest/$name/mvn.log)" >&2
        exit 1
    }
    cp "$here/$name/log4j2.properties" "$dest/$name/"
    if [ "$name" = opensearch ]; then
        javac -nowarn -cp "$dest/$name/lib/*" -d "$dest/$name/classes" "$here/$name/SluiceOpenSearch.java"
    fi
    echo "$stamp" >"$dest/$name/stamp"
}

fetch kafka "$here/kafka/pom.xml" "$here/kafka/log4j2.properties"
fetch kafka39 "$here/kafka39/pom.xml" "$here/kafka39/log4j2.properties"
fetch opensearch "$here/opensearch/pom.xml" "$here/opensearch/log4j2.properties" "$here/opensearch/SluiceOpenSearch.java"
echo "fetch.sh: servers ready in $dest" >&2
