//! Path settings that may be absent: an `Option<PathBuf>`, unset by default. An empty string,
//! how earlier configs wrote "not set", still reads as unset.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

pub fn none_when_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(Option::<PathBuf>::deserialize(d)?.filter(|p| !p.as_os_str().is_empty()))
}
