#!/usr/bin/env bash
# PC-MoE's gate levers on a finished quickstart run: CLASP pre-training again with each lever
# (gate LR multiplier, Mod-Squad's task–expert MI loss, both), then the gate statistics of the
# last logged step (entropy of each task's global gate over ln E, task–expert mutual information
# per block, what the gates read) beside the run's own.
#   bash scripts/diagnostics/gate_levers.sh runs/quickstart
# (run from the folder that holds runs/; clasp from target/release unless CLASP is set)
set -euo pipefail
root=${1:?the quickstart run folder, e.g. runs/quickstart}
clasp=${CLASP:-$(dirname "$0")/../../target/release/clasp}
cfg=$root/pretrain-clasp/config.resolved.toml
lever() {
  local name=$1; shift
  [ -f "$root/$name/metrics.jsonl" ] || "$clasp" pretrain --config "$cfg" \
    --set "run.dir=\"$(dirname "$root")\"" --set "run.name=\"$name\"" "$@" > "$root/$name.log" 2>&1
}
lever gates-none --set optim.gate_lr_scale=1 --set pretrain.gate_mi_weight=0
lever gates-lr100 --set optim.gate_lr_scale=100 --set pretrain.gate_mi_weight=0
lever gates-mi --set optim.gate_lr_scale=1 --set pretrain.gate_mi_weight=0.1
lever gates-mi-lr100 --set optim.gate_lr_scale=100 --set pretrain.gate_mi_weight=0.1
python3 - "$root" pretrain-clasp gates-none gates-lr100 gates-mi gates-mi-lr100 <<'PY'
import json, sys
root = sys.argv[1]
for run in sys.argv[2:]:
    rows = [json.loads(l) for l in open(f"{root}/{run}/metrics.jsonl")]
    r = rows[-1]
    h = {t: round(sum(v) / len(v), 3) for t, v in r["gate_entropy"].items()}
    d = {k: round(v, 4) for k, v in r.get("gate_diagnostics", {}).items()}
    print(f"{run}: step {r['step']}, mean gate entropy / ln E {h}, MI per block "
          f"{[round(x, 3) for x in r['gate_mi']]}, {d}, losses ssl {r['loss_ssl']:.3f} "
          f"part {r['loss_part']:.3f} attr {r['loss_attr']:.3f}")
PY
