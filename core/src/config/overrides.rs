//! Settings a program applies by key with typed values — the quickstart's stage budgets — over
//! the config file and under the user's `--set`. Values are TOML values, never hand-quoted
//! strings, and errors name the layer they came from.

/// Dotted keys (as `--set` spells them) with their values, in the order they were set; a later
/// setting of a key wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub pairs: Vec<(String, toml::Value)>,
}

impl Overrides {
    pub fn new() -> Self {
        Self::default()
    }

    /// These settings with `key` set to `value`.
    pub fn set(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.push(key, value);
        self
    }

    pub fn push(&mut self, key: &str, value: impl Into<toml::Value>) {
        self.pairs.push((key.to_string(), value.into()));
    }

    /// `other`'s settings after these.
    pub fn extend(&mut self, other: &Overrides) {
        self.pairs.extend(other.pairs.iter().cloned());
    }

    /// A path setting: its text, as a TOML string.
    pub fn path(self, key: &str, path: &std::path::Path) -> Self {
        self.set(key, path.display().to_string())
    }
}

/// `[a, b]`: a size or shape as a TOML array.
pub fn pair(a: i64, b: i64) -> toml::Value {
    toml::Value::Array(vec![a.into(), b.into()])
}
