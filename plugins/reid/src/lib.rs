//! Person re-identification as a CLASP task plugin (issue #5, in progress).
//!
//! Built so far: the retrieval metrics under the Market-1501 protocol ([`ranking`]), checked
//! against torchreid's `eval_market1501` (plus fast-reid's mINP) on committed fixtures. The head,
//! the losses, the P×K sampler and the export arrive next; until then this crate is a library.

pub mod ranking;
