//! Configuration: schema with defaults, layered loading with figment, validation.

pub mod load;
pub mod model;
mod optional_path;
pub mod overrides;
pub mod pretrain;
pub mod probe;
pub mod schema;
pub mod teacher;
pub mod validate;

pub use load::{to_toml, ConfigSources};
pub use schema::Config;
