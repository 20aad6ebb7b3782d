#!/usr/bin/env bash
# Server CPU of `lanner server local` from one worktree under the default bench load, driven by
# THIS worktree's tests.bench (so old and new code get the same load).
#   tests/bench/pair.sh LABEL WORKTREE OUTDIR [bench args...]
# Writes OUTDIR/LABEL.txt (bench tables) and a line "LABEL cpu_s=..." to OUTDIR/cpu.txt.
# PROFILE=1 wraps the server in py-spy record (OUTDIR/LABEL.svg); CPU then includes py-spy's
# sampling cost on the server only a little (py-spy is its own process).
set -euo pipefail
label=$1; tree=$2; out=$3; shift 3
here=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
data=$(mktemp -d /tmp/pair-data-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cd "$tree"
setsid "$tree/.venv/bin/lanner" server local --data-dir "$data/data" --port "$port" \
    >"$data/server.log" 2>&1 &
pid=$!
if [[ "${PROFILE:-}" == 1 ]]; then
    "$here/.venv/bin/py-spy" record -r 50 ${SPYFLAGS:-} -p "$pid" -o "$out/$label.txt" -f raw \
        >"$out/$label.pyspy.log" 2>&1 &
    spy=$!
fi
for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break
    sleep 0.1
done
cpu() { awk '{print ($14+$15)}' "/proc/$pid/stat"; }
tick=$(getconf CLK_TCK)
start=$(cpu)
cd "$here"
.venv/bin/python -m tests.bench --url "http://127.0.0.1:$port" --mode embedded "$@" \
    >"$out/$label.md" 2>"$out/$label.progress"
end=$(cpu)
if [[ "${THREADS:-}" == 1 ]]; then  # CPU per thread, named by py-spy dump
    for t in /proc/$pid/task/*; do echo "$(basename $t) $(awk '{print ($14+$15)}' $t/stat)"; done \
        >"$out/$label.threads"
    "$here/.venv/bin/py-spy" dump -p "$pid" >"$out/$label.dump" 2>&1 || true
fi
used=$(python3 -c "print(round(($end-$start)/$tick, 2))")
echo "$label tree=$tree cpu_s=$used $(date -u +%H:%M:%S)" | tee -a "$out/cpu.txt"
kill -TERM "$pid"; wait "$pid" || true
[[ -n "${spy:-}" ]] && { wait "$spy" || true; }
rm -rf "$data"
