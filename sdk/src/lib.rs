//! clasp-sdk: the stable plugin ABI of CLASP-rs and the safe API plugin authors write against.
//!
//! Reserved crate: the ABI (abi_stable prefix-type root module, tensor-handle vtable, export
//! macro) is built by issue #4. It will never depend on candle or on clasp-core.
