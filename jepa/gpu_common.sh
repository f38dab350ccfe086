# Sourced by jepa/gpu_study.sh and jepa/gpu_long.sh: argument parsing, environment and `run`.
#   positional: OUTDIR [DEADLINE_S] [DATA_DIR] [EXTRA_OVERRIDES...]
#   environment: ONLY=name,name,... runs only those; RESUME_DIR: a run named NAME starts from a copy
#   of RESUME_DIR/NAME when that exists and OUTDIR/NAME does not.
set -u
out=$1; deadline=${2:-480}; data=${3:-}; shift $(( $# < 3 ? $# : 3 ))
extra=("$@")
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -n "$data" ] && data=$(cd "$data" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."  # the repository root: python -m jepa.main and configs/ resolve here
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false JAX_DEFAULT_MATMUL_PRECISION=highest
dataflag=()
[ -n "$data" ] && dataflag=(--config.data.path="$data")

run() {  # name, config args...: one background jepa.main, killed (SIGTERM: checkpoint) at the deadline
  local name=$1; shift
  if [ -n "${ONLY:-}" ] && [[ ",$ONLY," != *",$name,"* ]]; then return; fi
  if [ -n "${RESUME_DIR:-}" ] && [ -d "$RESUME_DIR/$name" ] && [ ! -d "$out/$name" ]; then
    cp -r "$RESUME_DIR/$name" "$out/$name"
  fi
  timeout "$deadline" python3 -m jepa.main "$@" "${dataflag[@]}" "${extra[@]}" --workdir "$out/$name" \
    > "$out/$name.log" 2>&1 &
}

report() {  # after `wait`: one line per run log
  for f in "$out"/*.log; do echo "== $f: $(grep -c 'jepa final' "$f") final line(s); $(tail -c 300 "$f" | tr '\n' ' ')"; done
}
