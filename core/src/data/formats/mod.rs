//! Real dataset formats: each module reads (and, for synth, writes) one format.

pub mod coco;
pub mod lip;
pub mod market1501;
pub mod msmt17;
pub mod pa100k;
