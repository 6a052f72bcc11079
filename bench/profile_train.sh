#!/usr/bin/env bash
# Per-op timing of one LoRA training step: builds build/bench_train_prof (bench_train.c with
# -DLS_PROFILE_OPS, every kernel op of build/liblscore.a wrapped with -Wl,--wrap, bench/bench_train_prof.h)
# and runs it with the given arguments (those of bench_train). Run `cmake --build build` first.
#   bash bench/profile_train.sh /tmp/tinyb_bt --batch 4 --reps 5 --no-infer
set -euo pipefail
cd "$(dirname "$0")/.."
names="op_add_channel_bias op_add_channel_bias_backward op_add_inplace op_attention op_attention_backward
op_concat_channels op_concat_channels_backward op_conv2d op_conv2d_backward op_geglu op_geglu_backward op_gemm
op_groupnorm op_groupnorm_backward op_groupnorm_fwd_stats op_layernorm op_layernorm_backward
op_layernorm_fwd_stats op_linear op_linear_backward op_nchw_to_ntc op_nchw_to_ntc_backward op_ntc_to_nchw
op_ntc_to_nchw_backward op_silu_backward op_silu_inplace op_timestep_embedding op_upsample_nearest
op_upsample_nearest_backward"
wrap=""
for n in $names; do wrap="$wrap -Wl,--wrap=$n"; done
inc=$(sed -n 's/^C_INCLUDES = //p' build/CMakeFiles/bench_train.dir/flags.make)
libs=$(sed 's/.* liblscore.a //' build/CMakeFiles/bench_train.dir/link.txt)
# shellcheck disable=SC2086
cc -O2 -std=gnu11 -fopenmp -D_GNU_SOURCE -DLS_PROFILE_OPS -Ibench $inc bench/bench_train.c -o build/bench_train_prof \
   $wrap -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp build/liblscore.a $libs
exec build/bench_train_prof "$@"
