"""PyTorch reference for `clasp bench train` / `clasp bench infer`: the same ViT (timm
VisionTransformer, 256×128, patch 16), plain and with PC-MoE + task prompts written from DESIGN §3;
`--mode train`: the same loss (mean(cls²) + mean(patches²)) and one AdamW step; `--mode infer`:
the forward under `torch.inference_mode()`. Prints the same columns as `clasp bench`; on
`--device cuda` the memory column is the GPU's peak allocation (torch.cuda.max_memory_allocated),
and `--bf16` runs the forward under bf16 autocast.

    ../venv/bin/python scripts/bench/torch_vit.py --mode train --preset small --batch 32
    python3 scripts/bench/torch_vit.py --mode train --preset small --device cuda --bf16
Pinned: torch==2.15.0, timm==1.0.31.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

PRESETS = {"nano": (64, 4, 2), "tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12)}


def build(variant, preset):
    import torch
    from torch import nn
    from timm.models.vision_transformer import VisionTransformer

    d, depth, heads = PRESETS[preset]
    if variant == "plain":
        return VisionTransformer(img_size=(256, 128), patch_size=16, embed_dim=d, depth=depth,
                                 num_heads=heads, num_classes=0, global_pool="token"), None

    class PcMoe(nn.Module):  # y = Σ_e g_e · (c_e ⊙ f_e(x)), gates from the task summary s
        def __init__(self, d, experts=4, hidden=None):
            super().__init__()
            hidden = hidden or d
            self.experts = nn.ModuleList(
                nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d)) for _ in range(experts))
            self.gate = nn.Linear(d, experts, bias=False)
            self.channel_gate = nn.Linear(d, experts * d, bias=False)
            self.s = None

        def forward(self, x):
            g = torch.softmax(self.gate(self.s), -1)
            c = torch.sigmoid(self.channel_gate(self.s)).view(len(self.experts), -1)
            scale = g[:, None] * c
            return sum(f(x) * scale[e] for e, f in enumerate(self.experts))

    vit = VisionTransformer(img_size=(256, 128), patch_size=16, embed_dim=d, depth=depth,
                            num_heads=heads, num_classes=0, global_pool="token")
    for b in vit.blocks:
        b.mlp = PcMoe(d)

    class Prompted(nn.Module):
        """Tokens [CLS, P_t (no position embedding), patches]; P_t = Proj(e_t) + Δ_t."""

        def __init__(self):
            super().__init__()
            self.vit = vit
            self.proj = nn.Linear(512, 4 * d)
            self.delta = nn.Parameter(torch.zeros(4, d))
            self.register_buffer("e", torch.randn(512))

        def forward_features(self, x):
            v = self.vit
            p = self.proj(self.e).view(4, d) + self.delta
            for b in v.blocks:
                b.mlp.s = p.mean(0)
            patches = v.patch_embed(x) + v.pos_embed[:, 1:]
            cls = (v.cls_token + v.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
            x = torch.cat([cls, p.expand(x.shape[0], -1, -1), patches], 1)
            return v.norm(v.blocks(x))

    return Prompted(), 4


def run_variant(mode, variant, preset, batch, steps, warmup, device="cpu", bf16=False):
    import contextlib

    import torch

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    cuda = device.startswith("cuda")
    model, prefix = build(variant, preset)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    x = torch.randn(batch, 3, 256, 128, device=device)
    skip = 1 + (prefix or 0)

    def autocast():
        if not bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16)

    def infer():
        with torch.inference_mode(), autocast():
            model.forward_features(x)[:, 0].sum().item()

    def step():
        if mode == "infer":
            return infer()
        with autocast():
            tokens = model.forward_features(x)
            loss = tokens[:, 0].float().pow(2).mean() + tokens[:, skip:].float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    secs = time.perf_counter() - t
    params = sum(p.numel() for p in model.parameters())
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"variant": variant, "params": params, "images_per_s": batch * steps / secs,
                      "step_ms": secs * 1e3 / steps, "peak_rss_mib": peak}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("train", "infer"), default="train")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--bf16", action="store_true", help="forward under bf16 autocast")
    ap.add_argument("--variant")
    a = ap.parse_args()
    if a.variant:
        return run_variant(a.mode, a.variant, a.preset, a.batch, a.steps, a.warmup, a.device, a.bf16)
    import torch
    print(f"torch {torch.__version__}, {a.device}{' bf16' if a.bf16 else ''}, {os.cpu_count()} threads, "
          f"{a.mode}, preset {a.preset}, batch {a.batch}")
    memory = "peak GPU MiB" if a.device.startswith("cuda") else "peak RSS MiB"
    print(f"{'variant':<8} {'params':>12} {'img/s':>10} {'step ms':>10} {memory:>14}")
    for v in ("plain", "pcmoe"):
        out = subprocess.run([sys.executable, __file__, "--mode", a.mode, "--preset", a.preset, "--batch", str(a.batch),
                              "--steps", str(a.steps), "--warmup", str(a.warmup), "--variant", v,
                              "--device", a.device] + (["--bf16"] if a.bf16 else []),
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{r['variant']:<8} {r['params']:>12} {r['images_per_s']:>10.2f} {r['step_ms']:>10.0f} "
              f"{r['peak_rss_mib']:>14.0f}")


if __name__ == "__main__":
    main()
