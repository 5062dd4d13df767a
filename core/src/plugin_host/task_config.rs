//! A task's configuration: the plugin's declared defaults, overridden by the `[task]` table of the
//! run's config. Unknown keys are errors that name the key and the plugin.

use anyhow::{anyhow, bail, Result};
use clasp_sdk::abi::PluginSpec;

/// The JSON object plugins receive.
pub fn resolve(spec: &PluginSpec, overrides: &toml::Table) -> Result<String> {
    let mut out = serde_json::Map::new();
    for entry in spec.config.iter() {
        let key = entry.key.as_str();
        let default: toml::Value = toml::from_str::<toml::Table>(&format!("v = {}", entry.default))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .ok_or_else(|| {
                anyhow!(
                    "plugin `{}` declares an unreadable default for `{key}`: {}",
                    spec.name,
                    entry.default
                )
            })?;
        out.insert(key.to_string(), serde_json::to_value(default)?);
    }
    for (key, value) in overrides {
        let Some(current) = out.get(key) else {
            let known: Vec<&str> = spec.config.iter().map(|e| e.key.as_str()).collect();
            bail!(
                "config key `task.{key}` is not a setting of plugin `{}` (it has: {})",
                spec.name,
                known.join(", ")
            );
        };
        let value = serde_json::to_value(value)?;
        let same_kind = std::mem::discriminant(current) == std::mem::discriminant(&value)
            || (current.is_number() && value.is_number());
        if !same_kind {
            bail!("config key `task.{key}`: {value} has another type than the default {current}");
        }
        out.insert(key.clone(), value);
    }
    Ok(serde_json::Value::Object(out).to_string())
}
