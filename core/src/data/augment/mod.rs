//! Image augmentations: geometric ones move every target with the image; photometric ones touch
//! the image only.

pub mod geometric;
pub mod multicrop;
pub mod photometric;
pub mod sample;

pub use multicrop::{multi_crop, MultiCropConfig};
pub use sample::{Image, LabelMap, Sample};
