//! Checks that serde cannot express (ranges, choices); each error names its key.

use anyhow::{bail, Result};

use super::schema::Config;

pub fn validate(c: &Config) -> Result<()> {
    reject_non_finite(c)?;
    let m = &c.model;
    if m.patch_size == 0 {
        bail!("config key `model.patch_size`: must be positive");
    }
    if m.img_size.iter().any(|s| *s == 0 || s % m.patch_size != 0) {
        bail!(
            "config key `model.img_size`: {:?} must be positive multiples of `model.patch_size` = {}",
            m.img_size,
            m.patch_size
        );
    }
    if m.moe.enabled && !m.prompts.enabled {
        bail!("config key `model.moe.enabled`: PC-MoE needs `model.prompts.enabled = true`");
    }
    if let Some(k) = m
        .moe
        .top_k
        .filter(|k| m.moe.enabled && *k > m.moe.num_experts)
    {
        bail!(
            "config key `model.moe.top_k`: {} exceeds `model.moe.num_experts` = {}",
            k,
            m.moe.num_experts
        );
    }
    if m.moe.expert_ratio <= 0.0 {
        bail!("config key `model.moe.expert_ratio`: must be positive");
    }
    if m.moe.temperature <= 0.0 {
        bail!("config key `model.moe.temperature`: must be positive");
    }
    if !(0.0..=1.0).contains(&c.data.max_skipped_fraction) {
        bail!(
            "config key `data.max_skipped_fraction`: {} is not in [0, 1]",
            c.data.max_skipped_fraction
        );
    }
    if c.checkpoint.keep_last == 0 {
        bail!("config key `checkpoint.keep_last`: must be at least 1");
    }
    let name = &c.run.name;
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']) {
        bail!(
            "config key `run.name`: `{name}` must be one folder name (no path separators, not \
             `.` or `..`); put the parent folder in `run.dir`"
        );
    }
    if m.img_size.iter().any(|s| *s > MAX_SIDE) {
        bail!(
            "config key `model.img_size`: {:?} exceeds {MAX_SIDE} pixels a side",
            m.img_size
        );
    }
    let o = &c.optim;
    for (key, b) in [("optim.beta1", o.beta1), ("optim.beta2", o.beta2)] {
        if !(0.0..1.0).contains(&b) {
            bail!("config key `{key}`: {b} is not in [0, 1)");
        }
    }
    if o.eps <= 0.0 {
        bail!("config key `optim.eps`: must be positive (got {})", o.eps);
    }
    for (key, v) in [
        ("optim.weight_decay", o.weight_decay),
        ("optim.weight_decay_end", o.weight_decay_end),
        ("optim.min_lr", o.min_lr),
    ] {
        if v < 0.0 {
            bail!("config key `{key}`: must be zero or positive (got {v})");
        }
    }
    if o.min_lr > o.lr {
        bail!(
            "config key `optim.min_lr`: {} exceeds `optim.lr` = {}",
            o.min_lr,
            o.lr
        );
    }
    for (file, pin) in &c.plugins.sha256 {
        if pin.len() != 64 || !pin.chars().all(|ch| ch.is_ascii_hexdigit()) {
            bail!(
                "config key `plugins.sha256.\"{file}\"`: `{pin}` is not a sha256 (64 hex digits)"
            );
        }
    }
    if o.layer_decay <= 0.0 || o.layer_decay > 1.0 {
        bail!(
            "config key `optim.layer_decay`: {} is not in (0, 1]",
            o.layer_decay
        );
    }
    if o.lr <= 0.0 {
        bail!("config key `optim.lr`: must be positive");
    }
    if o.head_lr_scale <= 0.0 || !o.head_lr_scale.is_finite() {
        bail!(
            "config key `optim.head_lr_scale`: must be positive (got {})",
            o.head_lr_scale
        );
    }
    if o.gate_lr_scale <= 0.0 || !o.gate_lr_scale.is_finite() {
        bail!(
            "config key `optim.gate_lr_scale`: must be positive (got {})",
            o.gate_lr_scale
        );
    }
    if c.pretrain.gate_mi_weight < 0.0 || !c.pretrain.gate_mi_weight.is_finite() {
        bail!(
            "config key `pretrain.gate_mi_weight`: must be 0 or positive (got {})",
            c.pretrain.gate_mi_weight
        );
    }
    let f = &c.finetune;
    for (key, v) in [
        ("finetune.epochs", f.epochs),
        ("finetune.batch_size", f.batch_size),
        ("finetune.eval_every", f.eval_every),
        ("finetune.instances_per_identity", f.instances_per_identity),
    ] {
        if v == 0 {
            bail!("config key `{key}`: must be at least 1");
        }
    }
    let p = &c.probe;
    if p.batch_size == 0 || p.epochs == 0 || p.eval_every == 0 || p.seeds == 0 {
        bail!(
            "config keys `probe.batch_size`, `probe.epochs`, `probe.eval_every` and \
             `probe.seeds`: must be at least 1"
        );
    }
    if !(p.lr > 0.0 && p.lr.is_finite()) {
        bail!("config key `probe.lr`: must be positive (got {})", p.lr);
    }
    validate_teacher(c)?;
    validate_pretrain(c)
}

fn validate_pretrain(c: &Config) -> Result<()> {
    let p = &c.pretrain;
    let d = &p.dino;
    let positive = [
        ("pretrain.epochs", p.epochs as f64),
        ("pretrain.batch_size", p.batch_size as f64),
        ("pretrain.dino.out_dim", d.out_dim as f64),
        ("pretrain.dino.hidden_dim", d.hidden_dim as f64),
        ("pretrain.dino.bottleneck_dim", d.bottleneck_dim as f64),
        ("pretrain.dino.student_temp", d.student_temp),
        ("pretrain.dino.teacher_temp", d.teacher_temp),
        ("pretrain.dino.warmup_teacher_temp", d.warmup_teacher_temp),
    ];
    for (key, v) in positive {
        if v <= 0.0 || !v.is_finite() {
            bail!("config key `{key}`: must be positive (got {v})");
        }
    }
    for (key, v) in [
        ("pretrain.dino.center_momentum", d.center_momentum),
        ("pretrain.dino.momentum", d.momentum),
        ("pretrain.dino.momentum_end", d.momentum_end),
    ] {
        if !(0.0..=1.0).contains(&v) {
            bail!("config key `{key}`: {v} is not in [0, 1]");
        }
    }
    for (key, v) in [
        ("pretrain.ssl_weight", p.ssl_weight),
        ("pretrain.part_weight", p.part_weight),
        ("pretrain.attr_weight", p.attr_weight),
    ] {
        if v < 0.0 || !v.is_finite() {
            bail!("config key `{key}`: must be zero or positive (got {v})");
        }
    }
    let patch = c.model.patch_size;
    for (key, size) in [
        ("pretrain.crops.global_size", p.crops.global_size),
        ("pretrain.crops.local_size", p.crops.local_size),
    ] {
        if size.iter().any(|s| *s == 0 || s % patch != 0) {
            bail!(
                "config key `{key}`: {size:?} must be positive multiples of `model.patch_size` = {patch}"
            );
        }
    }
    for (key, r) in [
        ("pretrain.crops.global_scale", p.crops.global_scale),
        ("pretrain.crops.local_scale", p.crops.local_scale),
    ] {
        if !(r[0] > 0.0 && r[0] <= r[1] && r[1] <= 1.0) {
            bail!("config key `{key}`: {r:?} must satisfy 0 < lo ≤ hi ≤ 1");
        }
    }
    let r = p.crops.ratio;
    if !(r[0] > 0.0 && r[0] <= r[1]) {
        bail!("config key `pretrain.crops.ratio`: {r:?} must satisfy 0 < lo ≤ hi");
    }
    for (key, v) in [
        ("pretrain.crops.flip_p", p.crops.flip_p),
        ("pretrain.crops.jitter_p", p.crops.jitter_p),
        ("pretrain.crops.grayscale_p", p.crops.grayscale_p),
    ] {
        if !(0.0..=1.0).contains(&v) {
            bail!("config key `{key}`: {v} is not a probability in [0, 1]");
        }
    }
    if p.dino.out_dim > MAX_WIDTH || p.dino.hidden_dim > MAX_WIDTH {
        bail!(
            "config keys `pretrain.dino.out_dim` and `pretrain.dino.hidden_dim`: at most {MAX_WIDTH}"
        );
    }
    Ok(())
}

/// The widest head or prototype layer a setting may ask for: past it a typo exhausts memory
/// before any message.
const MAX_WIDTH: usize = 1 << 20;
/// The largest image side a setting may ask for.
const MAX_SIDE: usize = 16_384;

fn validate_teacher(c: &Config) -> Result<()> {
    let t = &c.teacher;
    if t.patch_size == 0 || t.img_size.iter().any(|s| *s == 0 || s % t.patch_size != 0) {
        bail!(
            "config key `teacher.img_size`: {:?} must be positive multiples of `teacher.patch_size` = {}",
            t.img_size,
            t.patch_size
        );
    }
    for (key, dim, heads) in [
        ("teacher.width", t.width, t.heads),
        ("teacher.text_width", t.text_width, t.text_heads),
    ] {
        if heads == 0 || dim % heads != 0 {
            bail!("config key `{key}`: {dim} is not divisible by its head count {heads}");
        }
    }
    if !(0.0..=1.0).contains(&t.aspect_weight) {
        bail!(
            "config key `teacher.aspect_weight`: {} must lie in [0, 1]",
            t.aspect_weight
        );
    }
    let l = &c.label;
    if l.parts.is_empty() || l.parts.len() > 255 {
        bail!("config key `label.parts`: between 1 and 255 part classes");
    }
    for (i, p) in l.parts.iter().enumerate() {
        if p.prompts.is_empty() {
            bail!(
                "config key `label.parts[{i}].prompts` ({}): needs at least one phrase",
                p.name
            );
        }
    }
    if l.part_templates.is_empty() || l.part_templates.iter().any(|t| !t.contains("{}")) {
        bail!("config key `label.part_templates`: each template needs a `{{}}` for the phrase");
    }
    for (i, a) in l.attributes.iter().enumerate() {
        if a.positive.is_empty() || a.negative.is_empty() {
            bail!(
                "config key `label.attributes[{i}]` ({}): needs positive and negative sentences",
                a.name
            );
        }
    }
    if l.part_temperature <= 0.0 || l.attribute_temperature <= 0.0 {
        bail!("config keys `label.part_temperature` and `label.attribute_temperature` must be positive");
    }
    if l.shard_size == 0 || l.batch_size == 0 {
        bail!("config keys `label.shard_size` and `label.batch_size` must be positive");
    }
    Ok(())
}

/// No setting may be NaN or infinite (TOML spells both): a range check such as `lr <= 0` lets
/// NaN through, and a run on it trains to NaN without a word.
fn reject_non_finite(c: &Config) -> Result<()> {
    fn walk(prefix: &str, v: &toml::Value) -> Result<()> {
        match v {
            toml::Value::Float(f) if !f.is_finite() => {
                bail!("config key `{prefix}`: {f} is not a finite number")
            }
            toml::Value::Table(t) => t.iter().try_for_each(|(k, v)| {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(&key, v)
            }),
            toml::Value::Array(a) => a
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| walk(&format!("{prefix}[{i}]"), v)),
            _ => Ok(()),
        }
    }
    walk("", &toml::Value::try_from(c)?)
}
