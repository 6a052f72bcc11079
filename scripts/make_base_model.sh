#!/usr/bin/env bash
# Recreates the built-in base model (models/base) from scratch with lorastyle's own commands:
#   1. lorastyle init --preset base           random weights, the scene grammar's tokenizer
#   2. lorastyle pretrain vae                 the autoencoder on scenes in every style
#   3. lorastyle pretrain diffusion           U-Net + text encoder on plain scenes (EMA weights), one core,
#      in two stages: (a) ε-prediction on SD1.5's noise schedule, then (b) v-prediction on the same schedule
#      rescaled to zero terminal SNR (the preset's scheduler; Lin et al. 2023), which makes the background
#      and colours follow the caption instead of the seed's noise.
#   4. lorastyle merge (no adapters) --dtype f16: the shipped copy
# Work folders (checkpoints, loss.csv, loss.png) go to output/base-model/. Every stage resumes: run the
# script again after an interruption and it continues from the last checkpoint.
#   bash scripts/make_base_model.sh [VAE_STEPS] [EPS_STEPS] [V_STEPS]
# Times on this 2-core machine (2026-12-02, third session): see samples/base_model/ and BENCHMARKS.md.
# (A second thread gains only ~25% at these small shapes and makes a run fragile when anything else uses the
# machine, so the diffusion stages run on one.)
set -euo pipefail
cd "$(dirname "$0")/.."
vae_steps=${1:-3000}
diff_steps=${2:-3200}
v_steps=${3:-4000}
bash scripts/build.sh >/dev/null
exe=build/lorastyle
work=output/base-model
mkdir -p "$work"
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-30000} # short spin, then sleep: robust when something else runs
[ -d "$work/model" ] || $exe init --preset base -o "$work/model" --seed 0
resume() { [ -f "$1/checkpoint.safetensors" ] && echo --resume || true; }
if [ ! -f "$work/vae.done" ]; then
    $exe pretrain vae "$work/model" --work "$work/vae" --steps "$vae_steps" --batch 8 --lr 1e-3 --seed 1 \
        --object-weight 4 --checkpoint-every 250 $(resume "$work/vae")
    touch "$work/vae.done"
fi
# stage (a): the same model with SD1.5's scheduler file (ε-prediction, ᾱ_T = 0.0047)
sched=$work/model/scheduler/scheduler_config.json
[ -f "$work/v-scheduler_config.json" ] || cp "$sched" "$work/v-scheduler_config.json"
if [ ! -f "$work/eps.done" ]; then
    grep -v -e prediction_type -e rescale_betas_zero_snr -e timestep_spacing "$work/v-scheduler_config.json" |
        sed 's/"clip_sample": false,/"clip_sample": false/' > "$sched"
    OMP_NUM_THREADS=1 $exe pretrain diffusion "$work/model" --work "$work/diffusion" --steps "$diff_steps" \
        --batch 16 --lr 4e-4 --seed 2 --checkpoint-every 200 $(resume "$work/diffusion")
    touch "$work/eps.done"
fi
# stage (b): v-prediction with zero terminal SNR and trailing timesteps (the preset's own scheduler file)
cp "$work/v-scheduler_config.json" "$sched"
OMP_NUM_THREADS=1 $exe pretrain diffusion "$work/model" --work "$work/diffusion-v" --steps "$v_steps" --batch 16 \
    --lr 3e-4 --warmup 200 --seed 3 --checkpoint-every 250 $(resume "$work/diffusion-v")
rm -rf models/base.new
$exe merge "$work/model" -o models/base.new --dtype f16
rm -rf models/base && mv models/base.new models/base
echo "models/base written (f16); logs and loss curves in $work/"
