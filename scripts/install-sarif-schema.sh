#!/usr/bin/env bash
# Fetches the official SARIF 2.1.0 JSON schema that tests/ci_outputs.rs validates `check --format
# sarif` against: the npm package @microsoft/jest-sarif ships it as lib/schemas/sarif-2.1.0-rtm.5.json
# (JSON Schema draft-04). Pinned by version and checksum, into the git-ignored target directory (a
# no-op when it is already there); prints the schema's path on its last line. Needs npm (Node).
#
#   bash scripts/install-sarif-schema.sh
set -euo pipefail
cd "$(dirname "$0")/.."

version=1.0.0-beta.0
file=sarif-2.1.0-rtm.5.json
sha256=2d99159ae54a3eea97f81781cff48780548657c35949f4b7f25e99a2ba4de4f8
dir=target/sarif-schema

if [[ -f "$dir/$file" ]] && echo "$sha256  $dir/$file" | sha256sum --check --status; then
    echo "the SARIF schema is already installed" >&2
else
    command -v npm >/dev/null || { echo "error: \`npm\` not found; install Node.js and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
    echo "fetching $file from @microsoft/jest-sarif@$version into $dir" >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "@microsoft/jest-sarif@$version" >/dev/null)
    tar -xzf "$dir/microsoft-jest-sarif-$version.tgz" -C "$dir" "package/lib/schemas/$file"
    mv "$dir/package/lib/schemas/$file" "$dir/$file"
    rm -rf "$dir/package" "$dir/microsoft-jest-sarif-$version.tgz"
    echo "$sha256  $dir/$file" | sha256sum --check --status || {
        echo "error: $dir/$file does not have the expected SHA-256 $sha256" >&2
        exit 1
    }
fi
echo "$(cd "$dir" && pwd)/$file"
