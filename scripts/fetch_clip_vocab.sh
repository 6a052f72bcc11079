#!/usr/bin/env bash
# Fetch OpenAI CLIP's BPE merges file (bpe_simple_vocab_16e6.txt.gz, shipped inside the open_clip wheel)
# into a cache folder, for test_tokenizer's real-vocabulary part and `tokenizer_write_from_bpe`.
#
# Usage: scripts/fetch_clip_vocab.sh [DIR]     DIR defaults to <source root>/build/clip
# Needs python3 with pip and access to PyPI; nothing is installed (pip download --no-deps only).
# Idempotent: does nothing when the file is already there with the expected checksum.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-$ROOT/build/clip}
OUT="$DIR/bpe_simple_vocab_16e6.txt.gz"
PY=${PYTHON:-python3}
# sha256 of the file in open-clip-torch 3.3.0 (identical to OpenAI's original bpe_simple_vocab_16e6.txt.gz)
SHA256=924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a

check() { echo "$SHA256  $1" | sha256sum --check --status; }

if [ -s "$OUT" ] && check "$OUT"; then
    echo "fetch_clip_vocab: $OUT already present"
    exit 0
fi

mkdir -p "$DIR"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PY" -m pip download --no-deps --only-binary=:all: --quiet -d "$TMP" open-clip-torch==3.3.0
WHEEL=$(ls "$TMP"/open_clip_torch-3.3.0-*.whl | head -n 1)
# A wheel is a zip file; take the one member we need.
"$PY" - "$WHEEL" "$TMP/bpe.gz" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as f:
    f.write(z.read("open_clip/bpe_simple_vocab_16e6.txt.gz"))
EOF
if ! check "$TMP/bpe.gz"; then
    echo "fetch_clip_vocab: checksum mismatch for the file extracted from $WHEEL" >&2
    exit 1
fi
cp "$TMP/bpe.gz" "$OUT.tmp.$$" # copy next to the target, then rename: readers never see a partial file
mv "$OUT.tmp.$$" "$OUT"
echo "fetch_clip_vocab: wrote $OUT"
