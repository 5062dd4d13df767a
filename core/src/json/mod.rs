//! JSON helpers shared by the files runs write and read back.

pub mod nan_as_null;
