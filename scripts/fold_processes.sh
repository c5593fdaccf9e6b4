# Sourced by the scripts that rerun docs/architectures.md's tables: the commands they run, and one
# run's folds shared out between two training processes.

# Run a command, or with DRY set print it instead.
run() { if [ -n "${DRY:-}" ]; then echo "$*"; else "$@"; fi; }

# FIRST_FOLDS SECOND_FOLDS COMMAND...: the training command on each range of folds (--run-folds),
# in two processes at once; fails if either fails (a bare wait would hide the first one's failure).
in_two_processes() {
    local first_folds=$1 second_folds=$2 first
    shift 2
    run "$@" --run-folds "$first_folds" &
    first=$!
    run "$@" --run-folds "$second_folds"
    wait "$first"
}
