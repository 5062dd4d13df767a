//! JSON helpers shared by the files runs write and read back.

pub mod null_as_nan;
