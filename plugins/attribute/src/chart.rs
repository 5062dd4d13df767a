//! The prediction picture: the image with one bar per attribute (green above 0.5, grey below).

use std::path::Path;

use clasp_sdk::{fail, Result};

pub fn bar_chart(image: &Path, probs: &[f32], out: &Path) -> Result<()> {
    let img = match image::open(image) {
        Ok(i) => i.to_rgb8(),
        Err(e) => fail!("decoding {}: {e}", image.display()),
    };
    let (w, h) = (img.width(), img.height());
    let bar_h = (h / probs.len().max(1) as u32).max(2);
    let chart_w = 200;
    let mut canvas = image::RgbImage::from_pixel(
        w + chart_w,
        h.max(bar_h * probs.len() as u32),
        image::Rgb([255, 255, 255]),
    );
    image::imageops::overlay(&mut canvas, &img, 0, 0);
    for (i, p) in probs.iter().enumerate() {
        let len = (p.clamp(0.0, 1.0) * (chart_w - 10) as f32) as u32;
        let colour = if *p > 0.5 {
            [40, 160, 60]
        } else {
            [170, 170, 170]
        };
        for y in i as u32 * bar_h + 1..(i as u32 + 1) * bar_h {
            for x in 0..len {
                canvas.put_pixel(w + 5 + x, y, image::Rgb(colour));
            }
        }
    }
    match canvas.save(out) {
        Ok(()) => Ok(()),
        Err(e) => fail!("writing {}: {e}", out.display()),
    }
}
