"""Labelling throughput of transformers' CLIP, the reference for `clasp label`.

Makes (once) a randomly initialised CLIP ViT-B/16 folder in Hugging Face layout (OpenAI's
architecture: 12 × 768 vision, 12 × 512 text, projection 512, quick_gelu) with the CLIP tokenizer
from tests/fixtures, then labels the same person crops the way `clasp label` does: decode, resize
to 256×128 (PIL bicubic), CLIP mean/std, one vision pass giving MaskCLIP dense patch embeddings
(last block's value path) and the pooled embedding, both projected, cosine to 6 part and 26×2
attribute text embeddings. Prints images/s.

    python scripts/bench/label_transformers.py TEACHER_DIR IMAGES_DIR [BATCH]
Pinned: torch 2.15.0 (CPU), transformers 4.57.1; threads = torch's default (all cores).
"""
import glob
import os
import shutil
import sys
import time

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPModel

teacher, images = sys.argv[1], sys.argv[2]
batch = int(sys.argv[3]) if len(sys.argv) > 3 else 32
repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if not os.path.exists(os.path.join(teacher, "model.safetensors")):
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(hidden_act="quick_gelu"),
        vision_config=dict(patch_size=16, image_size=224, hidden_act="quick_gelu"),
        projection_dim=512,
    )
    CLIPModel(cfg).save_pretrained(teacher, safe_serialization=True)
    shutil.copy(os.path.join(repo, "tests/fixtures/clip_tokenizer/tokenizer.json"), teacher)
    print(f"wrote a random CLIP ViT-B/16 to {teacher}")

model = CLIPModel.from_pretrained(teacher).eval()
mean = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
std = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
files = sorted(glob.glob(os.path.join(images, "**", "*.jpg"), recursive=True))
text = torch.nn.functional.normalize(torch.randn(6 + 52, 512), dim=-1)


@torch.no_grad()
def label(paths):
    px = []
    for p in paths:
        img = Image.open(p).convert("RGB").resize((128, 256), Image.BICUBIC)
        a = (np.asarray(img, dtype=np.float32) / 255.0 - mean) / std
        px.append(a.transpose(2, 0, 1))
    x = torch.from_numpy(np.stack(px))
    vm = model.vision_model
    h = vm.pre_layrnorm(vm.embeddings(x, interpolate_pos_encoding=True))
    layers = vm.encoder.layers
    for layer in layers[:-1]:
        h = layer(h, None, None)[0]
    last = layers[-1]
    a = last.self_attn
    dense = a.out_proj(a.v_proj(last.layer_norm1(h)))[:, 1:]
    dense = model.visual_projection(vm.post_layernorm(dense))
    pooled = model.visual_projection(vm.post_layernorm(last(h, None, None)[0][:, 0]))
    parts = torch.nn.functional.normalize(dense, dim=-1) @ text[:6].T
    attrs = torch.nn.functional.normalize(pooled, dim=-1) @ text[6:].T
    return parts.argmax(-1), attrs


label(files[:batch])  # warm-up
start = time.perf_counter()
for i in range(0, len(files), batch):
    label(files[i : i + batch])
secs = time.perf_counter() - start
print(
    f"transformers {torch.__version__} CLIP ViT-B/16 labelling: {len(files)} images in "
    f"{secs:.1f} s, {len(files) / secs:.2f} images/s (batch {batch}, {torch.get_num_threads()} threads)"
)
