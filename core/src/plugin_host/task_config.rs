//! A task's settings: the plugin's declared defaults, overridden by the `[task]` table of the
//! run's config, then parsed and checked by the plugin's own settings type. An unknown key or a
//! wrong value is an error that names the key and the plugin.

use abi_stable::std_types::RStr;
use anyhow::{anyhow, bail, Result};

use super::loader::Plugin;

/// The JSON object plugins receive.
pub fn resolve(plugin: &Plugin, overrides: &toml::Table) -> Result<String> {
    let spec = &plugin.spec;
    let mut out = serde_json::Map::new();
    for entry in spec.config.iter() {
        let key = entry.key.as_str();
        let default: serde_json::Value =
            serde_json::from_str(entry.default.as_str()).map_err(|e| {
                anyhow!(
                    "plugin `{}` declares an unreadable default for `{key}` ({}): {e}",
                    spec.name,
                    entry.default
                )
            })?;
        out.insert(key.to_string(), default);
    }
    for (key, value) in overrides {
        if !out.contains_key(key) {
            let known: Vec<&str> = spec.config.iter().map(|e| e.key.as_str()).collect();
            bail!(
                "config key `task.{key}` is not a setting of plugin `{}` (it has: {})",
                spec.name,
                known.join(", ")
            );
        }
        out.insert(key.clone(), serde_json::to_value(value)?);
    }
    let json = serde_json::Value::Object(out).to_string();
    (plugin.module.check_config())(RStr::from(json.as_str()))
        .into_result()
        .map_err(|e| anyhow!("config of plugin `{}`: {e}", spec.name))?;
    Ok(json)
}
