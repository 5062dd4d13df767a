"""Checks that transformers reads a teacher folder written by `clasp teacher train` and embeds
like `clasp teacher embed` does.

    clasp teacher embed --teacher T --images I --text "a person in boots" --out ours.safetensors
    python scripts/check_teacher_folder.py T I ours.safetensors "a person in boots"

Loads T with CLIPModel.from_pretrained, its tokenizer.json with PreTrainedTokenizerFast and its
preprocessor_config.json with CLIPImageProcessor; person crops go through the vision tower with
interpolate_pos_encoding=True. Prints the largest differences. Pinned: torch 2.15.0 (CPU),
transformers 4.57.1.
"""
import glob
import os
import sys

import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

teacher, images, ours_path, *texts = sys.argv[1:]
model = CLIPModel.from_pretrained(teacher).eval()
tok = PreTrainedTokenizerFast(
    tokenizer_file=os.path.join(teacher, "tokenizer.json"), pad_token="<|endoftext|>"
)
proc = CLIPImageProcessor.from_pretrained(teacher)
ours = load_file(ours_path)
listed = open(ours_path + ".images.txt").read().split()
with torch.no_grad():
    px = proc(images=[Image.open(p).convert("RGB") for p in listed], return_tensors="pt")
    img = model.get_image_features(px["pixel_values"], interpolate_pos_encoding=True)
    print(f"images: {len(listed)}, max |ours - transformers| = {(img - ours['image_embeds']).abs().max():.2e}")
    if texts:
        ids = tok(texts, padding=True, return_tensors="pt")["input_ids"]
        txt = model.get_text_features(ids)
        print(f"texts: {len(texts)}, max |ours - transformers| = {(txt - ours['text_embeds']).abs().max():.2e}")
