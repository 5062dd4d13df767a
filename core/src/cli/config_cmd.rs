//! `clasp config show`.

use anyhow::Result;

use super::GlobalArgs;
use crate::config::to_toml;

pub fn show(g: &GlobalArgs) -> Result<()> {
    print!("{}", to_toml(&g.load()?)?);
    Ok(())
}
