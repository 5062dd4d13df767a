//! `clasp plugins list | inspect NAME`.

use anyhow::Result;

use super::GlobalArgs;
use crate::plugin_host::loader::{load_all, Discovered};

fn discover(g: &GlobalArgs) -> Result<Discovered> {
    let config = g.load()?;
    load_all(&config.plugins)
}

pub fn list(g: &GlobalArgs) -> Result<()> {
    let d = discover(g)?;
    if d.plugins.is_empty() && d.failed.is_empty() {
        println!("no plugins found (set plugins.dirs in the config or CLASP_PLUGIN_PATH)");
    }
    for (name, p) in &d.plugins {
        println!(
            "{name:<12} {:<8} {}  [{}]",
            p.spec.version,
            p.path.display(),
            p.spec
                .head_variants
                .iter()
                .map(|h| h.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (path, e) in &d.failed {
        println!("FAILED       {}: {e:#}", path.display());
    }
    Ok(())
}

pub fn inspect(g: &GlobalArgs, name: &str) -> Result<()> {
    let d = discover(g)?;
    let Some(p) = d.plugins.get(name) else {
        return Err(d.missing(name));
    };
    let s = &p.spec;
    println!("task         {}", s.name);
    println!("version      {}", s.version);
    println!("file         {}", p.path.display());
    println!("sha256       {}", p.sha256);
    println!("description  {}", s.description);
    println!("input size   {}x{}", s.input_size[0], s.input_size[1]);
    println!(
        "labels ({})  {}",
        s.labels.len(),
        s.labels
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "metrics      {} (primary: {})",
        s.metrics
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        s.primary_metric
    );
    println!(
        "heads        {}",
        s.head_variants
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("config [task] (defaults):");
    for c in s.config.iter() {
        println!("  {:<14} = {:<12} # {}", c.key, as_toml(&c.default), c.help);
    }
    if !s.result_files.is_empty() {
        println!("clasp eval --task {} reads:", s.name);
        for f in s.result_files.iter() {
            println!("  --input {}=PATH  # {}", f.name, f.help);
        }
    }
    Ok(())
}

/// A default as the plugin declares it (JSON), written as in a TOML config.
fn as_toml(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| toml::Value::try_from(v).ok())
        .map_or_else(|| json.to_string(), |v| v.to_string())
}
