"""What the PyTorch peer benchmarks (peer.py, peer_train.py) share: the command line's model folder and shape
options, and the image size a run then uses (the one lorastyle's benchmarks use for the same options)."""
import argparse, json, os


def arg_parser():
    """A parser of MODEL_DIR [--size PIXELS (0: the model's own)] [--batch B] [--reps N]; scripts add their own."""
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    return ap


def image_size(a, unet_sample_size):
    """(pixels, latent side) for parsed options a: --size, or else the U-Net's sample size times the VAE's
    downscale factor (2 ** (levels - 1), from MODEL_DIR/vae/config.json)."""
    with open(os.path.join(a.model, "vae", "config.json")) as f:
        fac = 2 ** (len(json.load(f)["block_out_channels"]) - 1)
    size = a.size or unet_sample_size * fac
    return size, size // fac
