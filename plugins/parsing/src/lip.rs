//! LIP's label space (20 classes, ids as in the dataset), its left/right pairs, the usual
//! colours, and its folder layout: `{split}_id.txt` naming images `{split}_images/NAME.jpg` with
//! label maps `{split}_segmentations/NAME.png`.

use std::path::Path;

use clasp_sdk::draw::image;
use clasp_sdk::{fail, Record, Result};

pub const CLASS_NAMES: [&str; 20] = [
    "Background",
    "Hat",
    "Hair",
    "Glove",
    "Sunglasses",
    "Upper-clothes",
    "Dress",
    "Coat",
    "Socks",
    "Pants",
    "Jumpsuits",
    "Scarf",
    "Skirt",
    "Face",
    "Left-arm",
    "Right-arm",
    "Left-leg",
    "Right-leg",
    "Left-shoe",
    "Right-shoe",
];

/// Pixels without a label.
pub const IGNORE: u8 = 255;

/// Classes that trade places when the image is mirrored.
pub const FLIP_PAIRS: [(u8, u8); 3] = [(14, 15), (16, 17), (18, 19)];

/// The class of a pixel of class `c` after a horizontal flip.
pub fn mirrored_class(c: u8) -> u8 {
    for (a, b) in FLIP_PAIRS {
        if c == a {
            return b;
        }
        if c == b {
            return a;
        }
    }
    c
}

/// The colour LIP's tools draw class `c` in.
pub fn palette(c: u8) -> [u8; 3] {
    const P: [[u8; 3]; 20] = [
        [0, 0, 0],
        [128, 0, 0],
        [255, 0, 0],
        [0, 85, 0],
        [170, 0, 51],
        [255, 85, 0],
        [0, 0, 85],
        [0, 119, 221],
        [85, 85, 0],
        [0, 85, 85],
        [85, 51, 0],
        [52, 86, 128],
        [0, 128, 0],
        [0, 0, 255],
        [51, 170, 221],
        [0, 255, 255],
        [85, 255, 170],
        [170, 255, 85],
        [255, 255, 0],
        [255, 170, 0],
    ];
    P[c as usize % P.len()]
}

/// The samples of LIP split `split` (`train`, `val`) under `root`; every listed name must have
/// an image and a label map.
pub fn read_split(root: &Path, split: &str) -> Result<Vec<Record>> {
    let list = root.join(format!("{split}_id.txt"));
    let text = std::fs::read_to_string(&list)
        .map_err(|e| clasp_sdk::Error::data(format!("reading {}: {e}", list.display())))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() {
            continue;
        }
        let image = root.join(format!("{split}_images/{name}.jpg"));
        let labels = root.join(format!("{split}_segmentations/{name}.png"));
        for p in [&image, &labels] {
            if !p.is_file() {
                fail!(
                    "{}:{}: `{name}` has no {}",
                    list.display(),
                    i + 1,
                    p.display()
                );
            }
        }
        out.push(Record {
            image: image.display().to_string().into(),
            label_map: Some(labels.display().to_string().into()).into(),
            ..Default::default()
        });
    }
    Ok(out)
}

/// A label PNG (8-bit grey or palette indices) as `(width, height, class ids)`.
pub fn read_label_png(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let img = image::open(path)
        .map_err(|e| clasp_sdk::Error::data(format!("decoding {}: {e}", path.display())))?;
    let img = match img {
        image::DynamicImage::ImageLuma8(g) => g,
        other => {
            // Palette PNGs decode to RGB; LIP's are 8-bit grey, so anything else is an error
            // rather than a guess.
            fail!(
                "{}: {:?} pixels, expected an 8-bit label map",
                path.display(),
                other.color()
            )
        }
    };
    Ok((img.width() as usize, img.height() as usize, img.into_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_and_right_swap_and_the_rest_stay() {
        assert_eq!(mirrored_class(14), 15);
        assert_eq!(mirrored_class(19), 18);
        assert_eq!(mirrored_class(13), 13);
        assert_eq!(CLASS_NAMES[14], "Left-arm");
        assert_eq!(CLASS_NAMES[mirrored_class(14) as usize], "Right-arm");
    }
}
