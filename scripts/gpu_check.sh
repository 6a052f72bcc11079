#!/usr/bin/env bash
# gpu_check.sh — the one prepared run on a GPU machine (../shared/docs/gpu-machine.md), from the repository root,
# carrying gpu-deps/ (scripts/gpu_deps.sh):
#   1. the machine: nvidia-smi, nvcc --version, the compilers and cmake found
#   2. the carried Debian packages unpacked (dpkg -x) into /tmp/deps: cJSON and stb always; jpeg and OpenBLAS
#      only where the machine has none
#   3. CMake configure (GUI off, CUDA on, cuDNN from the Python wheel when found) and build of test_ops into
#      build-gpu; if cmake is missing or the configure fails, a plain gcc + nvcc build of test_ops instead
#   4. test_ops: every op of the cpu and cuda backends against the references, the CUDA paths, SD1.5 shapes and
#      their timings (compute-sanitizer's memcheck on a second, short run when there is time)
#   5. the rest of the build and the C tests under ctest (CPU backend; they show the CUDA build links and runs)
#   6. lorastyle --device cuda against --device cpu end to end (scripts/device_e2e.sh: a tiny model and the base
#      model, generation and LoRA training compared), then the base model's 20-step generation timed
# Logs under $OUT (default ./gpu-out): summary.txt (one line per step: rc, seconds) and NN-step.log. Every step has
# a time limit within a total of GPU_CHECK_BUDGET seconds (default 480), and the script goes on past failures.
# For a trial on a CPU machine: GPU_CHECK_JOBS (build jobs, default nproc), GPU_CHECK_LIMIT_SCALE (multiplies every
# step's limit), GPU_CHECK_CARRIED=1 (use the carried jpeg/OpenBLAS even where the machine has its own),
# GPU_CHECK_PLAIN=1 (the gcc + nvcc build of test_ops instead of CMake's), GPU_CHECK_CUDNN_ROOT (cuDNN's folder,
# include/ and lib/, when it is not the Python wheel's).
set -u
cd "$(dirname "$0")/.."
root=$PWD
OUT=${OUT:-$root/gpu-out}
mkdir -p "$OUT"
summary=$OUT/summary.txt
: > "$summary"
t_start=$(date +%s)
budget=${GPU_CHECK_BUDGET:-480}
jobs=${GPU_CHECK_JOBS:-$(nproc 2>/dev/null || echo 4)}
scale=${GPU_CHECK_LIMIT_SCALE:-1}
deps=/tmp/deps
arch_lib=usr/lib/x86_64-linux-gnu
build=$root/build-gpu

left() { echo $((budget - ($(date +%s) - t_start))); }
# step NAME LIMIT CMD...: run CMD (a program or one of the functions below) with a time limit (capped by the
# budget left), its output in $OUT/NAME.log
step() {
    local name=$1 limit=$(($2 * scale)) l
    shift 2
    l=$(left)
    [ "$l" -lt "$limit" ] && limit=$l
    if [ "$limit" -lt 10 ]; then
        echo "$name skipped: budget spent" | tee -a "$summary"
        return 124
    fi
    local s=$(date +%s)
    timeout --kill-after=10 "$limit" bash -c '"$@"' step "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc $(($(date +%s) - s))s (limit ${limit}s)" | tee -a "$summary"
    return $rc
}

# ---- 1. the machine ----
machine() {
    date -u
    nvidia-smi || echo "(no nvidia-smi)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || true
    nvcc --version || echo "(no nvcc on PATH)"
    gcc --version | head -1
    cmake --version | head -1 || echo "(no cmake)"
    pkg-config --version || echo "(no pkg-config)"
    for h in jpeglib.h png.h zlib.h cblas.h; do
        echo "$h: $(find /usr/include /usr/local/include -name "$h" 2>/dev/null | head -3 | tr '\n' ' ')"
    done
    ls /usr/lib/x86_64-linux-gnu/ | grep -E "openblas|libjpeg|libgfortran" || true
    ls -l gpu-deps/ || echo "(gpu-deps/ not carried)"
}
export PATH=$PATH:/usr/local/cuda/bin
export -f machine
step 01-machine 60 machine

# ---- 2. the carried packages ----
have_jpeg=0 have_blas=0
[ -n "$(find /usr/include -name jpeglib.h 2>/dev/null | head -1)" ] && have_jpeg=1
[ -f /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so ] && have_blas=1
[ "${GPU_CHECK_CARRIED:-0}" = 1 ] && have_jpeg=0 have_blas=0
unpack() {
    mkdir -p "$deps"
    for f in gpu-deps/*.deb; do
        case "$f" in
        *jpeg*) [ "$have_jpeg" = 1 ] && continue ;;
        *openblas* | *gfortran*) [ "$have_blas" = 1 ] && continue ;;
        esac
        echo "dpkg -x $f"
        dpkg -x "$f" "$deps" || echo "FAILED: $f"
    done
    find "$deps" -name "*.so*" -o -name "*.h" | head -50
}
export -f unpack
export deps arch_lib have_jpeg have_blas
step 02-deps 60 unpack
cudnn_root=${GPU_CHECK_CUDNN_ROOT:-}
[ -z "$cudnn_root" ] && for py in python3 /opt/torch/.venv/bin/python3; do
    d=$("$py" -c "import nvidia.cudnn as m; print(list(m.__path__)[0])" 2>/dev/null) || continue
    [ -n "$d" ] && cudnn_root=$d && break
done
[ -z "$cudnn_root" ] &&
    cudnn_root=$(ls -d /opt/torch/.venv/lib/python3*/site-packages/nvidia/cudnn 2>/dev/null | head -1)
echo "cuDNN: ${cudnn_root:-not found}" | tee -a "$summary"
libdirs=$deps/$arch_lib:$deps/$arch_lib/openblas-openmp:/usr/local/cuda/lib64
[ -n "$cudnn_root" ] && libdirs=$libdirs:$cudnn_root/lib
export LD_LIBRARY_PATH=$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# ---- 3. build test_ops ----
cmake_args=(-S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLS_GUI=OFF -DLS_FUZZ=OFF -DLS_CUDA=ON
            -DSTB_INCLUDE_DIR=$deps/usr/include/stb "-DCMAKE_EXE_LINKER_FLAGS=-L$deps/$arch_lib"
            "-DCMAKE_PREFIX_PATH=$deps/usr")
[ -n "$cudnn_root" ] && cmake_args+=(-DCUDNN_ROOT=$cudnn_root)
if [ "$have_blas" = 0 ]; then
    cmake_args+=(-DLS_OPENBLAS_OPENMP=$deps/$arch_lib/openblas-openmp/libopenblas.so
                 -DCBLAS_INCLUDE_DIR=$deps/usr/include/x86_64-linux-gnu/openblas-openmp)
fi
[ "$have_jpeg" = 0 ] && cmake_args+=("-DCMAKE_C_FLAGS=-I$deps/usr/include/x86_64-linux-gnu")
export PKG_CONFIG_PATH=$deps/$arch_lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$deps
test_ops=""
if command -v cmake > /dev/null && step 03-configure 120 cmake "${cmake_args[@]}"; then
    step 04-build-test_ops 300 cmake --build "$build" -j"$jobs" --target test_ops && test_ops=$build/test_ops
fi
# without cmake (or when its configure or build failed): gcc + nvcc straight to test_ops
plain_build() {
    local o=$build/plain
    mkdir -p "$o"
    local inc="-Ikernels -Ikernels/cuda -Isrc/runtime -I$deps/usr/include -I$deps/usr/include/x86_64-linux-gnu
               -I/usr/include/x86_64-linux-gnu/openblas-openmp -I$deps/usr/include/x86_64-linux-gnu/openblas-openmp"
    local cu="-std=c++17 -O2 -arch=sm_90 -DLS_HAVE_CUDA=1"
    [ -n "$cudnn_root" ] && cu="$cu -DLS_HAVE_CUDNN=1 -I$cudnn_root/include"
    local objs=() f
    for f in kernels/cuda/*.cu; do
        nvcc $cu $inc -c "$f" -o "$o/$(basename "$f").o" && objs+=("$o/$(basename "$f").o")
    done
    nvcc $cu $inc --fmad=false -c kernels/cuda/optim.cu -o "$o/optim.cu.o"
    for f in kernels/*.c kernels/cpu/*.c kernels/cuda/table.c src/runtime/common.c tests/test_ops.c; do
        local ob=$o/${f//\//_}.o # kernels/cpu/table.c and kernels/cuda/table.c: two objects
        gcc -std=c11 -O2 -fopenmp -D_GNU_SOURCE -DLS_HAVE_CUDA=1 $inc -c "$f" -o "$ob" && objs+=("$ob")
    done
    local blas="-L/usr/lib/x86_64-linux-gnu/openblas-openmp -L$deps/$arch_lib/openblas-openmp"
    local dnn=""
    [ -n "$cudnn_root" ] && dnn="-L$cudnn_root/lib -l:libcudnn.so.9"
    g++ -o "$o/test_ops" "${objs[@]}" $blas -lopenblas -fopenmp -L/usr/local/cuda/lib64 -lcudart -lcublas $dnn -lm
}
export -f machine unpack plain_build
export deps arch_lib have_jpeg have_blas build cudnn_root
if [ -z "$test_ops" ] || [ "${GPU_CHECK_PLAIN:-0}" = 1 ]; then
    test_ops=""
    step 04-plain-build 300 plain_build && test_ops=$build/plain/test_ops
fi

# ---- 4. test_ops ----
if [ -n "$test_ops" ]; then
    step 05-test_ops 240 "$test_ops"
    rc=$?
    grep -E "^FAIL|^skip|passed|test_ops:|time:|CUDA error|cuda_emu" "$OUT/05-test_ops.log" | tail -60 >> "$summary"
    if [ "$rc" != 0 ] && [ "$rc" != 1 ]; then # it died (an abort, a fault): again without cuDNN and the fused kernel
        LS_CUDA_NO_CUDNN=1 LS_CUDA_NO_FUSED=1 step 05b-test_ops-fallback-paths 240 "$test_ops"
        grep -E "^FAIL|^skip|passed|test_ops:|CUDA error" "$OUT/05b-test_ops-fallback-paths.log" | tail -30 \
            >> "$summary"
    fi
    if command -v compute-sanitizer > /dev/null || [ -x /usr/local/cuda/bin/compute-sanitizer ]; then
        # memcheck is ~10-100x slower: a second run whose time limit ends it early (what ran is still checked)
        step 06-memcheck 90 compute-sanitizer --tool memcheck --print-limit 20 "$test_ops"
        grep -E "ERROR SUMMARY|Invalid" "$OUT/06-memcheck.log" | head -5 >> "$summary"
    fi
else
    echo "05-test_ops skipped: no test_ops was built" | tee -a "$summary"
fi

# ---- 5. the rest, when the CMake build worked ----
if [ -n "$test_ops" ] && [ "$test_ops" = "$build/test_ops" ]; then
    step 07-build-all 150 cmake --build "$build" -j"$jobs" &&
        (cd "$build" && step 08-ctest 150 ctest -j"$jobs" --timeout 120 --output-on-failure -E "^test_ops$")
    grep -E "tests passed|Failed|\(Failed\)|\(Timeout\)" "$OUT/08-ctest.log" 2>/dev/null | head -30 >> "$summary"
    # 6. the lorastyle program on the GPU (liblscuda.so beside it): --device cuda against --device cpu end to end,
    #    on a tiny model and on the shipped base model; then 20-step generations of the base model timed
    if [ -x "$build/lorastyle" ] && [ -f "$build/liblscuda.so" ]; then
        step 09-e2e-tiny 120 bash scripts/device_e2e.sh "$build/lorastyle" "$OUT/e2e-tiny"
        step 10-e2e-base 120 bash scripts/device_e2e.sh "$build/lorastyle" "$OUT/e2e-base" models/base
        grep -E "device_e2e|generate:|train:" "$OUT/09-e2e-tiny.log" "$OUT/10-e2e-base.log" >> "$summary"
        timed_generate() {
            for dev in cuda cpu cuda; do
                "$build/lorastyle" --device $dev generate "a small red circle on the left on a white background" \
                    --steps 20 --seed 1 -o "$OUT/base-$dev.png" 2>&1 | tail -1
            done
        }
        export -f timed_generate
        step 11-generate-base-timed 90 timed_generate
        grep -E "generate" "$OUT/11-generate-base-timed.log" >> "$summary"
    fi
fi
echo "total $(($(date +%s) - t_start))s" | tee -a "$summary"
