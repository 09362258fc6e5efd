#!/bin/sh
# Installs the Debian packages sluice needs to build, test and run its demo (a JDK and Maven
# for the real-server tests' Kafka broker and OpenSearch node, tests/servers). Run as root on Debian
# 12; as another user it only reports what is missing.
set -eu
PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev
librdkafka-dev libcurl4-openssl-dev libyaml-dev libpcre2-dev zlib1g-dev libssl-dev libcmocka-dev
openssl valgrind kcat python3 python3-confluent-kafka python3-elasticsearch python3-msgpack python3-fluent-logger
python3-prometheus-client groff-base
openjdk-17-jdk-headless maven clang-format clang-tidy cppcheck
chromium chromium-driver python3-selenium"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages:$missing" >&2
    echo "run as root: apt-get install$missing" >&2
    exit 1
fi
echo "installing:$missing" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
