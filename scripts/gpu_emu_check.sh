#!/usr/bin/env bash
# gpu_emu_check.sh — test_ops with the CUDA backend's kernels emulated on the CPU (kernels/cuda/emu): the
# kernels' indexing, barriers, shuffles and cuBLAS arguments checked against the references on a machine without
# a GPU. Every .cu file of kernels/cuda is compiled as C++ against cuda_emu.h (no cuDNN: the im2col path), linked
# with a CPU build's liblscore.a, and test_ops runs both backends ("cuda" emulated); the SD1.5 shapes and the
# timings of the real GPU run are left out (an emulated block runs its threads one after another). Then the
# lorastyle program itself is linked with the emulated backend and run end to end with --device cuda against
# --device cpu on a tiny model (a generation, a short LoRA training), every pointer a kernel, copy or GEMM is
# given checked to be device memory (host memory is an illegal address on a GPU). Not in ctest: it takes
# minutes. The real device check is scripts/gpu_check.sh.
# Usage: bash scripts/gpu_emu_check.sh [CPU_BUILD_DIR (default build-nocuda)] [OUT_DIR (default CPU_BUILD_DIR/emu)]
#   EMU_ASAN=1 adds AddressSanitizer to the emulated kernels and test_ops (out-of-bounds reads and writes).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$(cd "${1:-build-nocuda}" && pwd)
out=${2:-$build/emu}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ ! -f "$build/liblscore.a" ]; then
    echo "gpu_emu_check: no $build/liblscore.a (build the CPU configuration first)"
    exit 2
fi
san=""
[ "${EMU_ASAN:-0}" = 1 ] && san="-fsanitize=address -fno-omit-frame-pointer"
defs="-DLS_HAVE_CUDA=1 -DLS_CUDA_EMU=1 -D_GNU_SOURCE"
inc="-I$root/kernels -I$root/kernels/cuda -I$root/src/runtime"
objs=()
for f in kernels/cuda/*.cu; do
    o="$out/$(basename "$f" .cu).o"
    g++ -x c++ -std=c++17 -O2 -g $san $defs $inc -w -c "$f" -o "$o"
    objs+=("$o")
done
g++ -std=c++17 -O2 -g $san $inc -c kernels/cuda/emu/cuda_emu.cpp -o "$out/cuda_emu.o"
for f in kernels/cuda/table.c kernels/ops.c tests/test_ops.c; do
    gcc -std=c11 -O2 -g $san $defs $inc -Wall -Wextra -Wno-unused-parameter -c "$f" -o "$out/$(basename "$f" .c).o"
done
objs+=("$out/cuda_emu.o" "$out/table.o" "$out/ops.o" "$out/test_ops.o")
# the libraries test_ops links in the CPU build (link.txt, after "-o test_ops"), the archive named by its path
libs=$(sed -n 's/.* -o test_ops //p' "$build/CMakeFiles/test_ops.dir/link.txt" |
    sed "s#\(^\| \)liblscore.a#\1$build/liblscore.a#")
eval g++ $san -o "$out/test_ops_emu" "${objs[@]}" $libs -fopenmp
echo "gpu_emu_check: built $out/test_ops_emu; running it"
"$out/test_ops_emu"

# 2. lorastyle --device cuda (emulated) against --device cpu
link=$build/CMakeFiles/lorastyle.dir/link.txt
app=$(sed 's/ -o lorastyle .*//' "$link" | tr ' ' '\n' | grep '\.o$' | sed "s#^#$build/#")
applibs=$(sed -n 's/.* -o lorastyle //p' "$link" | sed "s#\(^\| \)liblscore.a#\1$build/liblscore.a#")
cuda_objs=("${objs[@]/$out\/ops.o/}")
cuda_objs=("${cuda_objs[@]/$out\/test_ops.o/}")
eval g++ $san -o "$out/lorastyle_emu" $app ${cuda_objs[@]} $applibs -fopenmp
echo "gpu_emu_check: built $out/lorastyle_emu; --device cuda against --device cpu"
bash scripts/device_e2e.sh "$out/lorastyle_emu" "$out/e2e"
