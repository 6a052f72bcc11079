# cli_lib.sh — helpers shared by the command-line tests (tests/test_cli*.sh, test_kohya_metadata.sh), sourced
#   after they set LS (the lorastyle binary, their first argument); cli_begin then makes their scratch folder T.
# Bad input must give exactly one "lorastyle: error:" line naming the file/option (warnings and
# "lorastyle: adapter ..." progress lines aside), a non-zero status below 128, and no output files.
# LS_TEST_VERBOSE=1 prints every error line; LS_TEST_LIMIT=N changes the per-command time limit (60 s).

pass=0 fail=0 skip=0

# cli_begin NAME: LS made an absolute path; T a new scratch folder ${TMPDIR:-/tmp}/NAME.XXXXXX, removed at
# exit (read-only files in it too), and the working directory
cli_begin() {
    LS=$(cd "$(dirname "$LS")" && pwd)/$(basename "$LS")
    T=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
    cd "$T" || exit 1
}

# cli_tiny_model: the tiny preset model (seed 1) in $T/m; the test stops when init fails
cli_tiny_model() {
    run "$LS" init --preset tiny --seed 1 -o "$T/m"
    [ "$rc" -eq 0 ] || { echo "init failed"; cat "$T/stderr"; exit 1; }
}
ok() {
    pass=$((pass + 1))
    echo "ok   $1"
    [ -n "${LS_TEST_VERBOSE:-}" ] && [ -s "$T/stderr" ] && sed 's/^/       /' "$T/stderr"
    return 0
}
bad() {
    fail=$((fail + 1))
    echo "FAIL $1: $2"
    [ -s "$T/stderr" ] && sed 's/^/       stderr: /' "$T/stderr" | head -5
}
skipped() { skip=$((skip + 1)); echo "skip $1 ($2)"; }

LIMIT=${LS_TEST_LIMIT:-60} # seconds per command; more means a hang

# run CMD...: runs with a time limit; sets rc, stdout in $T/stdout, stderr in $T/stderr
run() {
    timeout "$LIMIT" "$@" >"$T/stdout" 2>"$T/stderr"
    rc=$?
}

# [KEEP="names"] expect_fail NAME OUTDIR "needle1|needle2|..." CMD...
#   OUTDIR: folder that must hold no files afterwards ("" = none to check), or exactly KEEP (what the
#           case put there itself, e.g. a folder named out.png)
#   needles: substrings that must all appear in the error line
expect_fail() {
    local name=$1 outdir=$2 needles=$3
    shift 3
    run "$@"
    if [ "$rc" -eq 0 ]; then bad "$name" "exit status 0, expected an error"; return; fi
    if [ "$rc" -eq 124 ]; then bad "$name" "no answer within ${LIMIT}s (hang)"; return; fi
    if [ "$rc" -ge 128 ]; then bad "$name" "killed by signal $((rc - 128))"; return; fi
    local lines
    lines=$(grep -v '^lorastyle: warning:' "$T/stderr" | grep -v '^lorastyle: adapter ')
    if [ "$(printf '%s\n' "$lines" | grep -c .)" -ne 1 ]; then
        bad "$name" "expected exactly one error line on stderr"
        return
    fi
    case $lines in
    "lorastyle: error: "*) ;;
    *) bad "$name" "error line does not start with 'lorastyle: error: '"; return ;;
    esac
    local IFS='|' n
    for n in $needles; do
        case $lines in
        *"$n"*) ;;
        *) bad "$name" "error line does not mention '$n'"; return ;;
        esac
    done
    if [ -n "$outdir" ] && [ "$(ls -A "$outdir" 2>/dev/null | tr '\n' ' ')" != "${KEEP:+$KEEP }" ]; then
        bad "$name" "left files behind: $(ls -A "$outdir" | tr '\n' ' ')"
        return
    fi
    ok "$name"
}

# outdir: sets o to a fresh, empty output folder (one per case)
n_out=0
outdir() {
    n_out=$((n_out + 1))
    o=$T/out/$n_out
    mkdir -p "$o"
}

# summary: the last line and the exit status of a test script
summary() {
    echo
    echo "$pass passed, $fail failed, $skip skipped"
    [ "$fail" -eq 0 ]
}
