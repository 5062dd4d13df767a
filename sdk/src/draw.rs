//! Drawing for prediction pictures (feature `draw`): rectangles, thick lines and anti-aliased
//! text on `image::RgbImage`, by `imageproc`, in DejaVu Sans embedded in the binary (no system
//! font is read). Everything clips at the image border. `imageproc` and `ab_glyph` are
//! re-exported for anything these helpers leave out.

use std::sync::OnceLock;

use ab_glyph::{FontRef, PxScale};
use image::{Rgb, RgbImage};
use imageproc::drawing;
use imageproc::point::Point;
use imageproc::rect::Rect;

pub use ab_glyph;
pub use image;
pub use imageproc;

pub const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
pub const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
/// Text height in pixels for captions and labels.
pub const TEXT_PX: f32 = 13.0;

/// DejaVu Sans, parsed once.
pub fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| {
        FontRef::try_from_slice(dejavu::sans::regular())
            .expect("the embedded DejaVu Sans is a valid TrueType font")
    })
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(i32::MIN as i64 / 2, i32::MAX as i64 / 2) as i32
}

/// A filled rectangle; an empty one draws nothing.
pub fn fill_rect(img: &mut RgbImage, x: i64, y: i64, w: u32, h: u32, colour: Rgb<u8>) {
    if w > 0 && h > 0 {
        let rect = Rect::at(clamp_i32(x), clamp_i32(y)).of_size(w, h);
        drawing::draw_filled_rect_mut(img, rect, colour);
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
    for t in 0..thickness.min(w.div_ceil(2)).min(h.div_ceil(2)) {
        let rect = Rect::at(clamp_i32(x + t as i64), clamp_i32(y + t as i64))
            .of_size(w - 2 * t, h - 2 * t);
        drawing::draw_hollow_rect_mut(img, rect, colour);
    }
}

/// A straight line from `a` to `b`, `width` pixels thick with round ends.
pub fn line(img: &mut RgbImage, a: (i64, i64), b: (i64, i64), width: u32, colour: Rgb<u8>) {
    // Clipped to the image and a margin first: a far-off end (a keypoint at 1e12) would
    // overflow the rasteriser or walk billions of pixels outside the image.
    let margin = width as f64 + 2.0;
    let lo = (-margin, -margin);
    let hi = (img.width() as f64 + margin, img.height() as f64 + margin);
    let as_f64 = |p: (i64, i64)| (p.0 as f64, p.1 as f64);
    let Some(((ax, ay), (bx, by))) = clip(as_f64(a), as_f64(b), lo, hi) else {
        return;
    };
    let (ax, ay, bx, by) = (ax as f32, ay as f32, bx as f32, by as f32);
    if width <= 1 {
        drawing::draw_line_segment_mut(img, (ax, ay), (bx, by), colour);
        return;
    }
    let r = width as f32 / 2.0;
    let len = ((bx - ax).powi(2) + (by - ay).powi(2)).sqrt();
    if len >= 1.0 {
        // The segment as a quadrilateral: both ends moved by ±r along the normal.
        let (nx, ny) = (-(by - ay) / len * r, (bx - ax) / len * r);
        let corner = |x: f32, y: f32| Point::new(x.round() as i32, y.round() as i32);
        let quad = [
            corner(ax + nx, ay + ny),
            corner(bx + nx, by + ny),
            corner(bx - nx, by - ny),
            corner(ax - nx, ay - ny),
        ];
        if quad[0] != quad[3] {
            drawing::draw_polygon_mut(img, &quad, colour);
        }
    }
    let radius = (width / 2) as i32;
    for (x, y) in [(ax, ay), (bx, by)] {
        let centre = (x.round() as i32, y.round() as i32);
        drawing::draw_filled_circle_mut(img, centre, radius, colour);
    }
}

/// The part of segment `a`–`b` inside the box `lo`–`hi` (Liang–Barsky), if any.
type Segment = ((f64, f64), (f64, f64));
fn clip(a: (f64, f64), b: (f64, f64), lo: (f64, f64), hi: (f64, f64)) -> Option<Segment> {
    let d = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-d.0, a.0 - lo.0),
        (d.0, hi.0 - a.0),
        (-d.1, a.1 - lo.1),
        (d.1, hi.1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else if p < 0.0 {
            t0 = t0.max(q / p);
        } else {
            t1 = t1.min(q / p);
        }
    }
    let at = |t: f64| (a.0 + t * d.0, a.1 + t * d.1);
    (t0 <= t1).then(|| (at(t0), at(t1)))
}

/// Width in pixels of `text` at height `px`.
pub fn text_width(text: &str, px: f32) -> u32 {
    drawing::text_size(PxScale::from(px), font(), text).0
}

/// Writes `text` at height `px` with its top-left corner at (`x`, `y`).
pub fn text(img: &mut RgbImage, x: i64, y: i64, text: &str, px: f32, colour: Rgb<u8>) {
    let (x, y) = (clamp_i32(x), clamp_i32(y));
    drawing::draw_text_mut(img, colour, x, y, PxScale::from(px), font(), text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inked(img: &RgbImage) -> Vec<(u32, u32)> {
        img.enumerate_pixels()
            .filter(|(_, _, p)| p.0[0] < 128)
            .map(|(x, y, _)| (x, y))
            .collect()
    }

    #[test]
    fn text_sets_pixels_only_inside_its_box() {
        let mut img = RgbImage::from_pixel(60, 24, WHITE);
        text(&mut img, 2, 2, "A1", TEXT_PX, BLACK);
        let ink = inked(&img);
        let w = text_width("A1", TEXT_PX);
        assert!((10..30).contains(&w), "{w}");
        assert!(ink.len() > 10, "{ink:?}");
        assert!(ink
            .iter()
            .all(|(x, y)| (2..2 + w + 1).contains(x) && (2..2 + TEXT_PX as u32 + 2).contains(y)));
        assert!(text_width("A1", 2.0 * TEXT_PX) > w);
    }

    #[test]
    fn shapes_clip_at_the_border() {
        let mut img = RgbImage::from_pixel(10, 10, WHITE);
        fill_rect(&mut img, -5, -5, 8, 8, BLACK);
        line(&mut img, (0, 9), (20, 9), 1, BLACK);
        rect_outline(&mut img, 0, 0, 10, 10, 1, BLACK);
        fill_rect(&mut img, 4, 4, 0, 3, BLACK);
        assert_eq!(*img.get_pixel(2, 2), BLACK);
        assert_eq!(*img.get_pixel(5, 5), WHITE);
        assert_eq!(*img.get_pixel(9, 9), BLACK);
    }

    #[test]
    fn a_thick_line_covers_its_width_and_nothing_far_from_it() {
        let mut img = RgbImage::from_pixel(40, 40, WHITE);
        line(&mut img, (5, 20), (35, 20), 5, BLACK);
        for y in 18..=22 {
            assert_eq!(*img.get_pixel(20, y), BLACK, "row {y}");
        }
        assert_eq!(*img.get_pixel(20, 14), WHITE);
        assert_eq!(*img.get_pixel(20, 26), WHITE);
        let mut diagonal = RgbImage::from_pixel(40, 40, WHITE);
        line(&mut diagonal, (5, 5), (35, 35), 3, BLACK);
        assert_eq!(*diagonal.get_pixel(20, 20), BLACK);
        assert_eq!(*diagonal.get_pixel(30, 10), WHITE);
        // Ends far outside the image neither panic nor take long, and keep their direction.
        line(
            &mut diagonal,
            (-1_000_000_000_000, 3),
            (1_000_000_000_000, 3),
            3,
            BLACK,
        );
        assert_eq!(*diagonal.get_pixel(35, 3), BLACK);
        let mut far = RgbImage::from_pixel(40, 40, WHITE);
        line(
            &mut far,
            (10, 10),
            (10 + 1_000_000_000_000, 10 + 1_000_000_000_000),
            1,
            BLACK,
        );
        assert_eq!(*far.get_pixel(30, 30), BLACK);
        assert_eq!(*far.get_pixel(30, 10), WHITE);
        let before = inked(&far).len();
        line(&mut far, (-100, -100), (-50, -80), 3, BLACK);
        assert_eq!(
            inked(&far).len(),
            before,
            "a line wholly outside draws nothing"
        );
    }
}
