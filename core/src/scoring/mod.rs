//! Reading results honestly: per-sample scores kept on disk, the image-blind levels every result
//! is printed beside, and bootstrap intervals over people for results and their differences.

pub mod blind;
pub mod bootstrap;
pub mod comparison;
pub mod scored_split;

pub use bootstrap::{Draws, Interval, Replicated};
pub use comparison::{compare, Comparison, Difference, Entry};
pub use scored_split::{Sample, ScoredSplit};
