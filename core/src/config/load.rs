//! Layered loading: built-in defaults → `--config FILE.toml` → `CLASP_*` variables → `--set k=v`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};

use super::overrides::Overrides;
use super::schema::Config;

/// Environment variables with the `CLASP_` prefix that are not configuration keys: the plugin
/// path, logging, the fused-ops switch, and `scripts/cuda/setup.sh`'s cache folder and toolkit
/// (exported in a CI job, they must not stop every command).
pub const NON_CONFIG_ENV: [&str; 5] = [
    "PLUGIN_PATH",
    "LOG",
    "COMPOSED_OPS",
    "CUDA_CACHE",
    "CUDA_TOOLKIT",
];

/// Where the layers come from.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    pub file: Option<PathBuf>,
    /// Settings a program applies (the quickstart's stage budgets), over the file and the
    /// environment, under `--set`.
    pub program: Overrides,
    /// `key=value` pairs from `--set`, applied last.
    pub overrides: Vec<String>,
    /// Read `CLASP_*` environment variables (`CLASP_MODEL__PRESET=tiny`).
    pub use_env: bool,
}

/// Dotted-key settings as a figment provider named by their source, so errors say where a value
/// came from (the command line's `--set`, the quickstart's budget).
struct KeyValues {
    source: &'static str,
    pairs: Vec<(String, toml::Value)>,
}

impl Provider for KeyValues {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.source)
    }

    fn data(&self) -> std::result::Result<Map<Profile, Dict>, figment::Error> {
        // Nest `a.b.c = v` into tables ourselves: values must carry this provider's tag.
        let mut root = toml::Table::new();
        for (key, value) in &self.pairs {
            let mut table = &mut root;
            let parts = key_parts(key).map_err(|e| figment::Error::from(e.to_string()))?;
            for part in &parts[..parts.len() - 1] {
                let entry = table
                    .entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if !entry.is_table() {
                    *entry = toml::Value::Table(toml::Table::new());
                }
                table = entry.as_table_mut().expect("just made a table");
            }
            table.insert(parts[parts.len() - 1].to_string(), value.clone());
        }
        let dict = figment::value::Value::serialize(&root)?
            .into_dict()
            .unwrap_or_default();
        Ok(Profile::Default.collect(dict))
    }
}

/// The parts of a dotted key as TOML reads one: `plugins.sha256."libx.so"` is three parts.
pub(crate) fn key_parts(key: &str) -> Result<Vec<String>> {
    let not_a_key = || anyhow!("`{key}` is not a dotted key such as model.preset");
    let mut table =
        toml::from_str::<toml::Table>(&format!("{key} = 0")).map_err(|_| not_a_key())?;
    let mut parts = Vec::new();
    loop {
        let mut entries = table.into_iter();
        let (k, v) = entries.next().ok_or_else(not_a_key)?;
        parts.push(k);
        match v {
            toml::Value::Table(t) => table = t,
            _ => return Ok(parts),
        }
    }
}

/// Parses `key=value`; the value is read as TOML (numbers, booleans, arrays) or else a string.
pub fn parse_override(pair: &str) -> Result<(String, toml::Value)> {
    let (key, raw) = pair
        .split_once('=')
        .ok_or_else(|| anyhow!("--set `{pair}` is not of the form key=value"))?;
    let key = key.trim();
    key_parts(key).with_context(|| format!("--set `{pair}`"))?;
    let raw = raw.trim();
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    Ok((key.to_string(), value))
}

impl ConfigSources {
    pub fn figment(&self) -> Result<Figment> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = &self.file {
            if !file.exists() {
                bail!("config file {} does not exist", file.display());
            }
            fig = fig.merge(Toml::file_exact(file));
        }
        if self.use_env {
            fig = fig.merge(Env::prefixed("CLASP_").ignore(&NON_CONFIG_ENV).split("__"));
        }
        fig = fig.merge(KeyValues {
            source: "the quickstart's stage settings",
            pairs: self.program.pairs.clone(),
        });
        let overrides = self
            .overrides
            .iter()
            .map(|p| parse_override(p))
            .collect::<Result<Vec<_>>>()?;
        Ok(fig.merge(KeyValues {
            source: "command-line --set",
            pairs: overrides,
        }))
    }

    /// The layer that set `key` (`"command-line --set"`, a file, the environment), or `None`
    /// when it holds its built-in default.
    pub fn given(&self, key: &str) -> Result<Option<String>> {
        let defaults = std::any::type_name::<Config>();
        Ok(self
            .figment()?
            .find_metadata(key)
            .filter(|m| m.name != defaults)
            .map(|m| match &m.source {
                Some(src) => format!("{} ({src})", m.name),
                None => m.name.to_string(),
            }))
    }

    /// The resolved configuration, or an error naming the bad key and its source.
    pub fn load(&self) -> Result<Config> {
        let figment = self.figment()?;
        let config: Config = figment.extract().map_err(|e| describe(&figment, e))?;
        reject_extra_elements(&figment, &config)?;
        super::validate::validate(&config)?;
        Ok(config)
    }
}

/// serde fills a fixed-size array from the first elements of a longer one: `model.img_size =
/// [64, 32, 3]` would become `[64, 32]` without a word. Every array given must have the length
/// the resolved config kept.
fn reject_extra_elements(figment: &Figment, config: &Config) -> Result<()> {
    use figment::value::Value;
    fn walk(figment: &Figment, key: &str, given: &Value, kept: &toml::Value) -> Result<()> {
        match (given, kept) {
            (Value::Dict(_, g), toml::Value::Table(k)) => {
                for (name, v) in g {
                    if let Some(w) = k.get(name) {
                        let key = if key.is_empty() {
                            name.clone()
                        } else {
                            format!("{key}.{name}")
                        };
                        walk(figment, &key, v, w)?;
                    }
                }
                Ok(())
            }
            (Value::Array(_, g), toml::Value::Array(k)) if g.len() != k.len() => {
                let source = figment
                    .find_metadata(key)
                    .map_or_else(|| "unknown source".to_string(), |m| m.name.to_string());
                bail!(
                    "config key `{key}`: {} elements given, expected {} [from {source}]",
                    g.len(),
                    k.len()
                )
            }
            _ => Ok(()),
        }
    }
    let data = figment.data().map_err(|e| describe(figment, e))?;
    let kept = toml::Value::try_from(config)?;
    for dict in data.values() {
        walk(figment, "", &Value::from(dict.clone()), &kept)?;
    }
    Ok(())
}

/// figment reports keys with the profile in front (`default.model.x`); drop it and say where.
fn describe(figment: &Figment, err: figment::Error) -> anyhow::Error {
    let mut lines = Vec::new();
    for e in err {
        let key = e
            .path
            .iter()
            .skip_while(|p| p.as_str() == "default")
            .cloned()
            .collect::<Vec<_>>()
            .join(".");
        // Unknown-field errors carry no metadata: ask the figment which layer set that key.
        let source = e
            .metadata
            .as_ref()
            .or_else(|| figment.find_metadata(&key))
            .map(|m| match &m.source {
                Some(src) => format!("{} ({src})", m.name),
                None => m.name.to_string(),
            })
            .unwrap_or_else(|| "unknown source".into());
        lines.push(format!("config key `{key}`: {} [from {source}]", e.kind));
    }
    anyhow!("invalid configuration:\n  {}", lines.join("\n  "))
}

/// Loads a config file alone (no env, no overrides), e.g. to read a run's resolved config.
pub fn load_file(path: &Path) -> Result<Config> {
    ConfigSources {
        file: Some(path.to_path_buf()),
        ..Default::default()
    }
    .load()
    .with_context(|| format!("loading {}", path.display()))
}

/// The resolved config as TOML, as `clasp config show` prints and runs save.
pub fn to_toml(config: &Config) -> Result<String> {
    Ok(toml::to_string(config)?)
}
