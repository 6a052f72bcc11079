#!/usr/bin/env bash
# test_layers.sh — the layers' order (README "Layout"): every #include "..." of a project header points to
# the same layer or one below it. From the top down:
#   6 gui/            the viewer
#   5 src/app/, src/lorastyle.h   the command line and the public header
#   4 src/train/
#   3 src/pipeline/
#   2 unet/ textenc/ datasets/    the networks and the data
#   1 src/runtime/
#   0 kernels/ (kernels/cpu/, kernels/cuda/)
# Fails naming each include that runs back up. Usage: bash tests/test_layers.sh [LORASTYLE_EXE] [FIXTURES]
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
rank_of() { # rank of a path (a file of the tree), or empty for tests/ bench/ and the rest
    case "$1" in
    gui/*) echo 6 ;; src/app/* | src/lorastyle.h) echo 5 ;; src/train/*) echo 4 ;; src/pipeline/*) echo 3 ;;
    unet/* | textenc/* | datasets/*) echo 2 ;; src/runtime/*) echo 1 ;; kernels/*) echo 0 ;;
    esac
}
declare -A where # header basename -> its path
for h in $(git ls-files 'src/*.h' 'gui/*.h' 'unet/*.h' 'textenc/*.h' 'datasets/*.h' 'kernels/*.h'); do
    b=$(basename "$h")
    [ -n "${where[$b]:-}" ] && { echo "FAIL two headers named $b: ${where[$b]} and $h"; exit 1; }
    where[$b]=$h
done
bad=0 checked=0
for f in $(git ls-files 'src/*.[ch]' 'gui/*.[ch]' 'unet/*.[ch]' 'textenc/*.[ch]' 'datasets/*.[ch]' 'kernels/*.[ch]' \
    'kernels/*.cu' 'kernels/*.cuh'); do
    rf=$(rank_of "$f")
    while read -r inc; do
        h=${where[$inc]:-}
        [ -z "$h" ] && continue # a system header or a file outside the tree's layers
        rh=$(rank_of "$h")
        checked=$((checked + 1))
        if [ "$rh" -gt "$rf" ]; then
            echo "FAIL $f (layer $rf) includes $h (layer $rh): the dependency runs back up"
            bad=$((bad + 1))
        fi
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" | xargs -r -n1 basename)
done
echo "test_layers: $checked includes checked, $bad run back up"
[ "$bad" -eq 0 ]
