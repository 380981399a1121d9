#!/usr/bin/env bash
# Fetches Debian's `prometheus` package (the `prometheus` server and `promtool`)
# without installing it: installing would start a daemon. The .deb is
# downloaded with apt-get and unpacked with dpkg -x into a cache folder.
#
# Usage: supervisor-prometheus/fetch-prometheus.sh [DEST]
#   DEST defaults to $PROMETHEUS_TOOLS_DIR, else <workspace>/target/tools/prometheus.
#
# Idempotent: does nothing when DEST already holds both binaries.
# Prints the absolute path of the bin folder (DEST/usr/bin) on stdout, and
# nothing else there, so callers can do `BIN=$(fetch-prometheus.sh)`.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
workspace_root=$(cd "$script_dir/.." && pwd)
dest=${1:-${PROMETHEUS_TOOLS_DIR:-$workspace_root/target/tools/prometheus}}
bin_dir=$dest/usr/bin

if [[ -x $bin_dir/promtool && -x $bin_dir/prometheus ]]; then
    echo "$bin_dir"
    exit 0
fi

for tool in apt-get dpkg; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "fetch-prometheus.sh: \`$tool\` not found; this script needs a Debian-based system" >&2
        exit 1
    fi
done

download_dir=$(mktemp -d)
# Readable by the unprivileged `_apt` user, so apt does not warn about an unsandboxed download.
chmod 755 "$download_dir"
trap 'rm -rf "$download_dir"' EXIT

download() {
    (cd "$download_dir" && apt-get download prometheus) >&2
}

# The package lists may be missing or stale on a fresh machine: refresh once
# and retry before giving up.
if ! download; then
    echo "fetch-prometheus.sh: apt-get download failed; running apt-get update and retrying" >&2
    apt-get update >&2
    download
fi

deb=$(find "$download_dir" -maxdepth 1 -name 'prometheus_*.deb' -print -quit)
if [[ -z $deb ]]; then
    echo "fetch-prometheus.sh: apt-get download produced no prometheus_*.deb" >&2
    exit 1
fi

# Unpack into a sibling folder first and move it into place, so an interrupted
# run never leaves a half-extracted DEST that the idempotence check accepts.
mkdir -p "$(dirname "$dest")"
staging=$(mktemp -d "$(dirname "$dest")/.prometheus-staging.XXXXXX")
dpkg -x "$deb" "$staging"
for tool in promtool prometheus; do
    if [[ ! -x $staging/usr/bin/$tool ]]; then
        rm -rf "$staging"
        echo "fetch-prometheus.sh: the package has no usr/bin/$tool" >&2
        exit 1
    fi
done
rm -rf "$dest"
mv "$staging" "$dest"

echo "$bin_dir"
