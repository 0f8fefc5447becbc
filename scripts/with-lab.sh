#!/usr/bin/env bash
# Run one command against the local AWS lab.
#
#   scripts/with-lab.sh SCENARIO -- COMMAND [ARG...]
#
# Starts the lab (lab/scenarios/SCENARIO.yml) in the background on a free
# loopback port (--port 0: the lab picks one and prints it), waits for its "lab ready: <url>" line, runs COMMAND with the
# lab's AWS settings in the environment, stops the lab (also when COMMAND fails
# or the script is interrupted) and exits with COMMAND's exit status.
#
# COMMAND sees:
#   AWS_ENDPOINT_URL=http://127.0.0.1:<port>   (also as LAB_ENDPOINT_URL)
#   AWS_CONFIG_FILE=<collection root>/inventories/lab/aws_config
#   AWS_SHARED_CREDENTIALS_FILE=/dev/null
#   AWS_PROFILE=lab-operator  AWS_DEFAULT_REGION=us-east-1
#   AWS_EC2_METADATA_DISABLED=true
# and none of the caller's AWS credential variables.
#
# Settings (environment):
#   PYTHON             interpreter with the lab's requirements (default: .venv/bin/python
#                      under the collection root, else python3)
#   LAB_START_TIMEOUT  seconds to wait for the lab to be ready (default: 60)
#   LAB_LOG_DIR        keep the lab's stdout/stderr there (default: a temporary folder,
#                      removed at the end)
set -euo pipefail

usage() {
    echo "usage: $0 SCENARIO -- COMMAND [ARG...]" >&2
    exit 2
}

[ "$#" -ge 3 ] && [ "$2" = "--" ] || usage
scenario=$1
shift 2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scenario_file="$root/lab/scenarios/$scenario.yml"
if [ ! -f "$scenario_file" ]; then
    echo "with-lab: no such scenario: $scenario_file" >&2
    exit 2
fi

if [ -z "${PYTHON:-}" ]; then
    if [ -x "$root/.venv/bin/python" ]; then
        PYTHON="$root/.venv/bin/python"
    else
        PYTHON=python3
    fi
fi
timeout_s=${LAB_START_TIMEOUT:-60}

if [ -n "${LAB_LOG_DIR:-}" ]; then
    log_dir=$LAB_LOG_DIR
    mkdir -p "$log_dir"
    remove_log_dir=false
else
    log_dir=$(mktemp -d "${TMPDIR:-/tmp}/with-lab.XXXXXX")
    remove_log_dir=true
fi

lab_pid=

# shellcheck disable=SC2329  # called from cleanup, the EXIT trap
stop_lab() {
    if [ -n "$lab_pid" ] && kill -0 "$lab_pid" 2>/dev/null; then
        kill -TERM "$lab_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$lab_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$lab_pid" 2>/dev/null; then
            echo "with-lab: lab did not stop on SIGTERM, killing it" >&2
            kill -KILL "$lab_pid" 2>/dev/null || true
        fi
        wait "$lab_pid" 2>/dev/null || true
    fi
    lab_pid=
}

# shellcheck disable=SC2329  # called by the EXIT trap
cleanup() {
    stop_lab
    if [ "$remove_log_dir" = true ]; then
        rm -rf "$log_dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

(cd "$root" && exec env PYTHONUNBUFFERED=1 "$PYTHON" -m lab serve --scenario "$scenario_file" --port 0) \
    >"$log_dir/lab.stdout" 2>"$log_dir/lab.stderr" </dev/null &
lab_pid=$!

show_lab_log() {
    echo "with-lab: lab stderr ($log_dir/lab.stderr):" >&2
    tail -n 40 "$log_dir/lab.stderr" >&2 || true
}

url=
deadline=$((SECONDS + timeout_s))
while :; do
    line=$(grep -m 1 '^lab ready: ' "$log_dir/lab.stdout" 2>/dev/null || true)
    if [ -n "$line" ]; then
        url=${line#lab ready: }
        break
    fi
    if ! kill -0 "$lab_pid" 2>/dev/null; then
        wait "$lab_pid" && rc=0 || rc=$?
        lab_pid=
        echo "with-lab: lab exited (status $rc) before it was ready" >&2
        show_lab_log
        exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "with-lab: lab not ready after ${timeout_s}s" >&2
        show_lab_log
        exit 1
    fi
    sleep 0.1
done

echo "with-lab: lab ready at $url (scenario $scenario)" >&2

# Nothing of the caller's AWS identity or endpoint settings may reach the lab run.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_SECURITY_TOKEN \
    AWS_ACCESS_KEY AWS_SECRET_KEY AWS_DEFAULT_PROFILE AWS_REGION AWS_URL EC2_URL \
    AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_SESSION_NAME
export AWS_ENDPOINT_URL="$url"
export LAB_ENDPOINT_URL="$url"
export AWS_CONFIG_FILE="$root/inventories/lab/aws_config"
export AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_PROFILE=lab-operator
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true

"$@" && status=0 || status=$?
exit "$status"
