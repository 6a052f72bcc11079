/* table.c — the CPU backend's op table, and its memory: aligned_alloc/free, nothing to wait for. */
#include <stdlib.h>

#include "kbase.h"  // defines: mallocCheck
#include "cpu.h"    // defines: the op_*_cpu prototypes
#include "ops.h"    // defines: the ops' semantics (OpTable)

void *op_alloc_cpu(size_t bytes) {
    size_t n = bytes ? (bytes + 63) / 64 * 64 : 64; /* aligned_alloc wants a multiple of the alignment */
    return n >= bytes ? aligned_alloc(64, n) : NULL;
}
void op_free_cpu(void *p) { free(p); }
void op_sync_cpu(void) {} /* the CPU ops return when their work is done */

const OpTable op_table_cpu = {
    .name = "cpu",
    .host_memory = 1,
    .alloc = op_alloc_cpu,
    .free = op_free_cpu,
    .sync = op_sync_cpu,
    .linear = op_linear_cpu,
    .conv2d = op_conv2d_cpu,
    .groupnorm = op_groupnorm_cpu,
    .layernorm = op_layernorm_cpu,
    .attention = op_attention_cpu,
    .silu_inplace = op_silu_inplace_cpu,
    .gelu_inplace = op_gelu_inplace_cpu,
    .quick_gelu_inplace = op_quick_gelu_inplace_cpu,
    .geglu = op_geglu_cpu,
    .add_inplace = op_add_inplace_cpu,
    .add_channel_bias = op_add_channel_bias_cpu,
    .upsample_nearest = op_upsample_nearest_cpu,
    .concat_channels = op_concat_channels_cpu,
    .nchw_to_ntc = op_nchw_to_ntc_cpu,
    .ntc_to_nchw = op_ntc_to_nchw_cpu,
    .timestep_embedding = op_timestep_embedding_cpu,
    .gemm = op_gemm_cpu,
    .num_threads = op_num_threads_cpu,
    .linear_backward = op_linear_backward_cpu,
    .conv2d_backward = op_conv2d_backward_cpu,
    .groupnorm_fwd_stats = op_groupnorm_fwd_stats_cpu,
    .groupnorm_backward = op_groupnorm_backward_cpu,
    .layernorm_fwd_stats = op_layernorm_fwd_stats_cpu,
    .layernorm_backward = op_layernorm_backward_cpu,
    .attention_backward = op_attention_backward_cpu,
    .silu_backward = op_silu_backward_cpu,
    .gelu_backward = op_gelu_backward_cpu,
    .quick_gelu_backward = op_quick_gelu_backward_cpu,
    .geglu_backward = op_geglu_backward_cpu,
    .add_channel_bias_backward = op_add_channel_bias_backward_cpu,
    .upsample_nearest_backward = op_upsample_nearest_backward_cpu,
    .concat_channels_backward = op_concat_channels_backward_cpu,
    .nchw_to_ntc_backward = op_nchw_to_ntc_backward_cpu,
    .ntc_to_nchw_backward = op_ntc_to_nchw_backward_cpu,
    .embedding = op_embedding_cpu,
    .cfg_combine = op_cfg_combine_cpu,
    .axpy = op_axpy_cpu,
    .mse_loss = op_mse_loss_ref, /* serial: the same sum at any thread count */
    .sum_squares = op_sum_squares_cpu,
    .adamw = op_adamw_cpu,
    /* sampling: the plain loops (a few thousand latent values per call) */
    .sampler_step = op_sampler_step_ref,
    .scale = op_scale_ref,
    .divide = op_divide_ref,
};
