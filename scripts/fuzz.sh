#!/usr/bin/env bash
# Run the libFuzzer harnesses (tests/fuzz/README.md): bash scripts/fuzz.sh HARNESS|all SECONDS
#   HARNESS: safetensors, lora, image, config, caption, tokenizer, infotext (or fuzz_<name>); all: each in
#   turn, SECONDS each. Builds them first (clang, ASan + UBSan + libFuzzer) into $LS_FUZZ_BUILD (default
#   build-fuzz), seeds from scripts/make_fuzz_corpus.sh plus tests/fuzz/regressions/<harness>/.
# Inputs that found new coverage collect in BUILD/corpus/<harness>/ (kept between runs); a crash, leak,
# sanitizer report, timeout (> 10 s for one input) or out-of-memory (> 2 GiB) stops that harness and leaves
# its reproducer in BUILD/findings/<harness>/ — replay it with BUILD/fuzz_<harness> FILE, then commit it to
# tests/fuzz/regressions/fuzz_<harness>/ with the fix. Exit status: 0 if no harness found anything.
# Logs (with libFuzzer's final stats) in BUILD/logs/<harness>.log; one summary line per harness here.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then
  echo "usage: bash scripts/fuzz.sh HARNESS|all SECONDS" >&2
  exit 2
fi
B=${LS_FUZZ_BUILD:-build-fuzz}
CC_FUZZ=${LS_FUZZ_CC:-clang}
if ! command -v "$CC_FUZZ" > /dev/null; then
  echo "fuzz: $CC_FUZZ not found (Debian: apt-get install clang libclang-rt-dev libomp-dev)" >&2
  exit 2
fi
if [ ! -f "$B/CMakeCache.txt" ]; then
  CC=$CC_FUZZ cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DLS_FUZZ=ON -DLS_BUILD_TESTS=OFF -DLS_GUI=OFF \
    > "$B.configure.log" 2>&1 || { cat "$B.configure.log" >&2; exit 1; }
fi
cmake --build "$B" --target fuzz -j"${LS_JOBS:-$(nproc)}" > /dev/null

if [ "$1" = all ]; then
  harnesses=$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
else
  harnesses=fuzz_${1#fuzz_}
  [ -f "tests/fuzz/$harnesses.c" ] || { echo "fuzz: no harness tests/fuzz/$harnesses.c" >&2; exit 2; }
fi
bash scripts/make_fuzz_corpus.sh "$B/seeds" > /dev/null
export OMP_NUM_THREADS=1 # one input at a time; OpenMP threads would only add noise
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
mkdir -p "$B/logs"
failed=0
for h in $harnesses; do
  name=${h#fuzz_}
  mkdir -p "$B/corpus/$name" "$B/findings/$name"
  log=$B/logs/$name.log
  rc=0
  "$B/$h" -max_total_time="$2" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$B/findings/$name/" "$B/corpus/$name" "$B/seeds/$name" \
    $( [ -d "tests/fuzz/regressions/$h" ] && echo "tests/fuzz/regressions/$h" ) > "$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    echo "fuzz $name: ${runs:-?} runs in ${secs:-?} s (${cov:-cov: ?}), no findings"
  else
    failed=1
    echo "fuzz $name: FAILED (exit $rc) — $(grep -m1 -E 'ERROR|SUMMARY' "$log" || true)"
    echo "  reproducer: $(ls -t "$B/findings/$name" | head -1 | sed "s|^|$B/findings/$name/|"); log: $log"
  fi
done
exit $failed
