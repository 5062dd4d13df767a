//! Drawing for prediction pictures and charts (feature `draw`): filled rectangles, lines and
//! text in an 8×8 bitmap font, on `image::RgbImage`. Everything clips at the image border.

use font8x8::{UnicodeFonts, BASIC_FONTS};
use image::{Rgb, RgbImage};

pub use image;

pub const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
pub const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
/// Side of one glyph at scale 1, in pixels.
pub const GLYPH: u32 = 8;

fn put(img: &mut RgbImage, x: i64, y: i64, colour: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, colour);
    }
}

pub fn fill_rect(img: &mut RgbImage, x: i64, y: i64, w: u32, h: u32, colour: Rgb<u8>) {
    for yy in y..y + h as i64 {
        for xx in x..x + w as i64 {
            put(img, xx, yy, colour);
        }
    }
}

/// The outline of a rectangle, `thickness` pixels wide, inside `x..x+w`, `y..y+h`.
pub fn rect_outline(
    img: &mut RgbImage,
    x: i64,
    y: i64,
    w: u32,
    h: u32,
    thickness: u32,
    colour: Rgb<u8>,
) {
    let t = thickness.min(w).min(h);
    fill_rect(img, x, y, w, t, colour);
    fill_rect(img, x, y + (h - t) as i64, w, t, colour);
    fill_rect(img, x, y, t, h, colour);
    fill_rect(img, x + (w - t) as i64, y, t, h, colour);
}

/// A straight line from `a` to `b` (Bresenham), `width` pixels thick.
pub fn line(img: &mut RgbImage, a: (i64, i64), b: (i64, i64), width: u32, colour: Rgb<u8>) {
    let (mut x, mut y) = a;
    let (dx, dy) = ((b.0 - a.0).abs(), -(b.1 - a.1).abs());
    let (sx, sy) = (
        if a.0 < b.0 { 1 } else { -1 },
        if a.1 < b.1 { 1 } else { -1 },
    );
    let mut err = dx + dy;
    let r = width as i64 / 2;
    loop {
        fill_rect(img, x - r, y - r, width.max(1), width.max(1), colour);
        if (x, y) == b {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// Width in pixels of `text` at `scale`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * GLYPH * scale
}

/// Writes `text` with its top-left corner at (`x`, `y`); characters outside the basic Latin set
/// are drawn as `?`.
pub fn text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: u32, colour: Rgb<u8>) {
    let s = scale.max(1) as i64;
    for (i, c) in text.chars().enumerate() {
        let glyph = BASIC_FONTS
            .get(c)
            .or_else(|| BASIC_FONTS.get('?'))
            .unwrap_or([0; 8]);
        let left = x + i as i64 * GLYPH as i64 * s;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    fill_rect(
                        img,
                        left + col * s,
                        y + row as i64 * s,
                        s as u32,
                        s as u32,
                        colour,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_sets_pixels_only_inside_its_box() {
        let mut img = RgbImage::from_pixel(40, 12, WHITE);
        text(&mut img, 2, 2, "A1", 1, BLACK);
        let inked: Vec<(u32, u32)> = img
            .enumerate_pixels()
            .filter(|(_, _, p)| **p == BLACK)
            .map(|(x, y, _)| (x, y))
            .collect();
        assert!(inked.len() > 10, "{inked:?}");
        assert!(inked
            .iter()
            .all(|(x, y)| (2..18).contains(x) && (2..10).contains(y)));
        assert_eq!(text_width("A1", 2), 32);
    }

    #[test]
    fn shapes_clip_at_the_border() {
        let mut img = RgbImage::from_pixel(10, 10, WHITE);
        fill_rect(&mut img, -5, -5, 8, 8, BLACK);
        line(&mut img, (0, 9), (20, 9), 1, BLACK);
        rect_outline(&mut img, 0, 0, 10, 10, 1, BLACK);
        assert_eq!(*img.get_pixel(2, 2), BLACK);
        assert_eq!(*img.get_pixel(5, 5), WHITE);
        assert_eq!(*img.get_pixel(9, 9), BLACK);
    }
}
