//! A task's typed settings: parsed once from the `[task]` table the host resolves, and described
//! to the host (keys, defaults, help) from the same type, so the schema `clasp plugins inspect`
//! prints cannot drift from what the plugin reads.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::abi::ConfigEntry;
use crate::{Error, Result};

/// The settings type of a task: a serde struct with `#[serde(default, deny_unknown_fields)]`, a
/// `Default` that holds the defaults, and doc comments that become each key's help.
pub trait Settings:
    Serialize + DeserializeOwned + Default + JsonSchema + Send + Sync + 'static
{
    /// Checks what types cannot say (ranges, combinations); runs once per parse.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

/// The widest layer a head setting may ask for: a zero width fails deep inside a layer, and an
/// absurd one exhausts memory before any message.
pub const MAX_WIDTH: usize = 16_384;

/// Fails unless `value` of setting `key` lies in `[min, max]`.
pub fn ensure_in<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<()> {
    if value < min || value > max {
        return Err(Error::config(format!(
            "task.{key} = {value} is outside [{min}, {max}]"
        )));
    }
    Ok(())
}

/// `json` (the host's resolved `[task]` table) as `S`; a wrong value is named by its key.
pub fn parse<S: Settings>(json: &str) -> Result<S> {
    let de = &mut serde_json::Deserializer::from_str(json);
    let settings: S = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!("task.{path}: ")
        };
        Error::config(format!("{at}{}", e.inner()))
    })?;
    settings.validate()?;
    Ok(settings)
}

/// One entry per key of `S`: its default (as JSON) and help (its doc comment, and the values a
/// choice allows).
pub fn schema<S: Settings>() -> Vec<ConfigEntry> {
    let defaults = match serde_json::to_value(S::default()) {
        Ok(Value::Object(m)) => m,
        _ => return Vec::new(),
    };
    let schema = schemars::schema_for!(S);
    let root = schema.as_value();
    let properties = root.get("properties").and_then(Value::as_object);
    defaults
        .into_iter()
        .map(|(key, default)| {
            let property = properties.and_then(|p| p.get(&key));
            ConfigEntry {
                key: key.into(),
                default: default.to_string().into(),
                help: property.map_or(String::new(), |p| help_of(root, p)).into(),
            }
        })
        .collect()
}

/// The values the setting `key` of `S` may take when it is a choice (an enum), as written in a
/// config: what a task's `head` offers becomes its spec's head variants.
pub(crate) fn choices_of<S: Settings>(key: &str) -> Vec<String> {
    let schema = schemars::schema_for!(S);
    let root = schema.as_value();
    let Some(property) = root.pointer(&format!("/properties/{key}")) else {
        return Vec::new();
    };
    let target = property
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| root.pointer(r.trim_start_matches('#')))
        .unwrap_or(property);
    choices(target)
        .into_iter()
        .map(|c| c.trim_matches('"').to_string())
        .collect()
}

/// The doc comment of a property, with the values of a choice ("one of: linear, mlp").
fn help_of(root: &Value, property: &Value) -> String {
    let text = |v: &Value| {
        v.get("description")
            .and_then(Value::as_str)
            .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    let mut help = text(property).unwrap_or_default();
    let target = property
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| root.pointer(r.trim_start_matches('#')))
        .unwrap_or(property);
    let choices = choices(target);
    if !choices.is_empty() {
        if help.is_empty() {
            help = text(target).unwrap_or_default();
        }
        help = format!("{help} (one of: {})", choices.join(", "))
            .trim()
            .to_string();
    }
    help
}

/// The values an enum of unit variants allows, as schemars writes them (`enum`, or `oneOf` of
/// `const`s when variants carry docs).
fn choices(schema: &Value) -> Vec<String> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values.iter().map(|v| v.to_string()).collect();
    }
    schema
        .get("oneOf")
        .and_then(Value::as_array)
        .map(|alts| {
            alts.iter()
                .filter_map(|a| a.get("const").or_else(|| a.get("enum")?.get(0)))
                .map(|v| v.to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    enum Head {
        Linear,
        Mlp,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(default, deny_unknown_fields)]
    struct Example {
        /// The head on the CLS feature.
        head: Head,
        /// Width of the hidden layer.
        hidden: usize,
    }

    impl Default for Example {
        fn default() -> Self {
            Self {
                head: Head::Linear,
                hidden: 256,
            }
        }
    }

    impl Settings for Example {
        fn validate(&self) -> Result<()> {
            ensure_in("hidden", self.hidden, 1, MAX_WIDTH)
        }
    }

    #[test]
    fn the_schema_comes_from_the_type_with_defaults_docs_and_choices() {
        let entries = schema::<Example>();
        let head = entries.iter().find(|e| e.key == "head").unwrap();
        assert_eq!(head.default.as_str(), "\"linear\"");
        assert_eq!(
            head.help.as_str(),
            "The head on the CLS feature. (one of: \"linear\", \"mlp\")"
        );
        assert_eq!(choices_of::<Example>("head"), ["linear", "mlp"]);
        assert!(choices_of::<Example>("hidden").is_empty());
        let hidden = entries.iter().find(|e| e.key == "hidden").unwrap();
        assert_eq!(
            (hidden.default.as_str(), hidden.help.as_str()),
            ("256", "Width of the hidden layer.")
        );
    }

    #[test]
    fn a_wrong_value_is_named_by_its_key() {
        assert_eq!(
            parse::<Example>(r#"{"head": "mlp", "hidden": 8}"#).unwrap(),
            Example {
                head: Head::Mlp,
                hidden: 8
            }
        );
        let e = parse::<Example>(r#"{"head": "mpl"}"#).unwrap_err();
        assert!(
            e.message.starts_with("task.head: unknown variant `mpl`"),
            "{e}"
        );
        let e = parse::<Example>(r#"{"hidden": 0}"#).unwrap_err();
        assert_eq!(e.message, "task.hidden = 0 is outside [1, 16384]");
        let e = parse::<Example>(r#"{"hiden": 3}"#).unwrap_err();
        assert!(e.message.contains("unknown field `hiden`"), "{e}");
    }
}
