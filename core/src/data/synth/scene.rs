//! One rendered image: backdrop, person, occluder and camera effects, with its ground truth.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::background::Backdrop;
use super::body::{draw_person, Placement};
use super::identity::{AgeGroup, Identity};
use super::lip;
use super::pose::Pose;
use super::raster::{Canvas, Shape, P};

/// A camera: a place (backdrop), a colour cast, a noise level and optional blur.
#[derive(Debug, Clone)]
pub struct Camera {
    pub id: u32,
    pub backdrop: Backdrop,
    pub cast: [f32; 3],
    pub noise: f32,
    pub blur: bool,
    pub light: f32,
}

impl Camera {
    pub fn sample(id: u32, rng: &mut ChaCha8Rng) -> Self {
        Self {
            id,
            backdrop: Backdrop::sample(rng),
            cast: [
                rng.gen_range(0.88..1.12),
                rng.gen_range(0.9..1.1),
                rng.gen_range(0.88..1.12),
            ],
            noise: rng.gen_range(1.0..6.0),
            blur: rng.gen_bool(0.3),
            light: rng.gen_range(0.8..1.1),
        }
    }
}

/// An image with everything known about it.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub width: usize,
    pub height: usize,
    /// Row-major RGB8.
    pub rgb: Vec<u8>,
    /// LIP class per pixel.
    pub labels: Vec<u8>,
    /// COCO `[x, y, v]` per keypoint (v: 0 unlabelled, 1 occluded, 2 visible).
    pub keypoints: [[f32; 3]; 17],
    /// Tight box `[x, y, w, h]` around the person's labelled pixels.
    pub bbox: [f32; 4],
    /// Pixels labelled as person.
    pub area: usize,
    pub pose: Pose,
}

/// Renders `who` seen by `camera` at `width`×`height`. `person = false` renders the backdrop
/// alone (a detector's false positive, Market's `0000` distractors).
pub fn render(
    who: &Identity,
    camera: &Camera,
    width: usize,
    height: usize,
    person: bool,
    rng: &mut ChaCha8Rng,
) -> Rendered {
    let mut canvas = Canvas::new(width, height);
    let (w, h) = (width as f32, height as f32);
    camera.backdrop.paint(
        &mut canvas,
        (rng.gen_range(0.0..400.0), rng.gen_range(0.0..200.0)),
    );
    let pose = Pose::sample(rng, who.holds_object);
    let mut keypoints = [[0f32; 3]; 17];
    if person {
        let frac = if who.age == AgeGroup::Child {
            rng.gen_range(0.72..0.88)
        } else {
            rng.gen_range(0.82..0.96)
        };
        let ph = h * frac;
        let at = Placement {
            cx: w / 2.0 + w * rng.gen_range(-0.08..0.08),
            top: (h - ph) * rng.gen_range(0.25..0.75),
            height: ph,
        };
        let light = camera.light * rng.gen_range(0.9..1.1);
        keypoints = draw_person(&mut canvas, who, &pose, &at, light);
    }
    // Occluders: a pole, a passer-by's shoulder or a bin, in front of the person.
    if rng.gen_bool(0.2) {
        let shade = rng.gen_range(40.0..200.0);
        let colour = [
            shade,
            shade * rng.gen_range(0.8..1.2),
            shade * rng.gen_range(0.8..1.2),
        ];
        let shape = match rng.gen_range(0..3) {
            0 => {
                let x = w * rng.gen_range(0.1..0.9);
                Shape::Capsule {
                    a: P(x, -10.0),
                    b: P(x, h + 10.0),
                    r: w * rng.gen_range(0.04..0.08),
                }
            }
            1 => {
                let left = rng.gen_bool(0.5);
                let cx = if left { 0.0 } else { w };
                Shape::Ellipse {
                    c: P(cx, h * rng.gen_range(0.3..0.7)),
                    rx: w * rng.gen_range(0.2..0.35),
                    ry: h * 0.25,
                }
            }
            _ => {
                let top = h * rng.gen_range(0.7..0.85);
                let x0 = w * rng.gen_range(-0.2..0.4);
                Shape::Poly(vec![
                    P(x0, top),
                    P(x0 + w * 0.6, top),
                    P(x0 + w * 0.6, h + 5.0),
                    P(x0, h + 5.0),
                ])
            }
        };
        canvas.fill(&shape, Some(lip::BACKGROUND), &|_, _| colour);
        for kp in keypoints.iter_mut() {
            if kp[2] == 2.0 && shape.sdf(kp[0], kp[1]) <= 0.0 {
                kp[2] = 1.0;
            }
        }
    }
    // Unlabelled keypoints (facing away, outside the frame) are [0, 0, 0], as in COCO.
    for kp in keypoints.iter_mut() {
        if kp[2] == 0.0 || kp[0] < 0.0 || kp[1] < 0.0 || kp[0] >= w || kp[1] >= h {
            *kp = [0.0, 0.0, 0.0];
        }
    }
    if camera.blur {
        box_blur(&mut canvas);
    }
    for p in canvas.rgb.iter_mut() {
        for (v, cast) in p.iter_mut().zip(camera.cast) {
            // Two uniforms give a cheap triangular noise with the camera's spread.
            let n = (rng.gen::<f32>() - rng.gen::<f32>()) * camera.noise;
            *v = *v * cast + n;
        }
    }
    let (bbox, area) = person_box(&canvas);
    Rendered {
        width,
        height,
        rgb: canvas.to_rgb8(),
        labels: canvas.labels,
        keypoints,
        bbox,
        area,
        pose,
    }
}

fn box_blur(canvas: &mut Canvas) {
    let (w, h) = (canvas.w, canvas.h);
    let src = canvas.rgb.clone();
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0f32; 3];
            let mut n = 0.0;
            for dy in [-1i32, 0, 1] {
                for dx in [-1i32, 0, 1] {
                    let (xx, yy) = (x as i32 + dx, y as i32 + dy);
                    if xx >= 0 && yy >= 0 && (xx as usize) < w && (yy as usize) < h {
                        let p = src[yy as usize * w + xx as usize];
                        for k in 0..3 {
                            acc[k] += p[k];
                        }
                        n += 1.0;
                    }
                }
            }
            canvas.rgb[y * w + x] = acc.map(|v| v / n);
        }
    }
}

fn person_box(canvas: &Canvas) -> ([f32; 4], usize) {
    let (mut x0, mut y0, mut x1, mut y1, mut area) = (usize::MAX, usize::MAX, 0, 0, 0);
    for y in 0..canvas.h {
        for x in 0..canvas.w {
            if canvas.labels[y * canvas.w + x] != lip::BACKGROUND {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
                area += 1;
            }
        }
    }
    if area == 0 {
        return ([0.0; 4], 0);
    }
    (
        [x0 as f32, y0 as f32, (x1 - x0) as f32, (y1 - y0) as f32],
        area,
    )
}
