#!/usr/bin/env bash
# Installs the moto STS emulator that the STS tests run against, the AWS CLI and boto3 that the
# container-credentials tests drive, and jsonschema, pinned, into a Python virtual
# environment inside the git-ignored target directory (about 30 s and 140 MB the first time; a no-op
# when it is already there). Prints the path of `moto_server` on its last line.
#
#   bash scripts/install-moto.sh            # into target/moto-venv
#   MOTO_VENV=/some/dir bash scripts/install-moto.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The pinned set; BUILD-NOTES.md: flask and flask-cors are all moto's server needs for STS. The AWS
# CLI v1 and boto3 are the real SDK clients the container-credentials tests drive (same botocore).
# jsonschema validates `check --format sarif` against the official schema (tests/ci_outputs.rs).
requirements=(moto==5.2.5 flask flask-cors awscli==1.46.3 boto3==1.44.8 jsonschema==4.23.0)
venv=${MOTO_VENV:-target/moto-venv}
python=${PYTHON:-python3}
stamp="$venv/.installed"

if [[ -x "$venv/bin/moto_server" && -f "$stamp" && "$(cat "$stamp")" == "${requirements[*]}" ]]; then
    echo "moto is already installed" >&2
else
    command -v "$python" >/dev/null || { echo "error: \`$python\` not found; install Python 3 (3.9 or later)" >&2; exit 1; }
    echo "installing ${requirements[*]} into $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" || {
        echo "error: \`$python -m venv\` failed; on Debian or Ubuntu install python3-venv" >&2
        exit 1
    }
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
    "$venv/bin/moto_server" --help >/dev/null
    "$venv/bin/aws" --version >/dev/null
    echo "${requirements[*]}" >"$stamp"
fi
echo "$(cd "$venv/bin" && pwd)/moto_server"
