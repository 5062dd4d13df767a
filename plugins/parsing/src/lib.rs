//! Human parsing as a CLASP task plugin (issue #5, in progress).
//!
//! Built so far: the segmentation metrics over a confusion matrix accumulated across a dataset
//! ([`confusion`]), checked against a numpy reference on committed fixtures. The head, the
//! per-pixel loss, the flip test and the export arrive next; until then this crate is a library.

pub mod confusion;
