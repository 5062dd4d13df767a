//! clasp-sdk as it was before `describe` and `prepare` were appended to the root module: the real ABI types
//! (`abi.rs` is the SDK's own file) and the 9-field `TaskPlugin`.

#[path = "../../../../../sdk/src/abi.rs"]
pub mod abi;
pub mod plugin;
