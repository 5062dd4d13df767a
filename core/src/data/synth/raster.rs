//! A small anti-aliased rasteriser: shapes given by signed distance (in pixels, negative inside),
//! blended by coverage into an RGB canvas, with a label map written where a shape covers a pixel.

/// A point in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct P(pub f32, pub f32);

impl P {
    pub fn lerp(self, o: P, t: f32) -> P {
        P(self.0 + (o.0 - self.0) * t, self.1 + (o.1 - self.1) * t)
    }
}

#[derive(Debug, Clone)]
pub enum Shape {
    /// A segment with round ends, as limbs are drawn.
    Capsule {
        a: P,
        b: P,
        r: f32,
    },
    Ellipse {
        c: P,
        rx: f32,
        ry: f32,
    },
    /// A convex polygon, vertices in either winding.
    Poly(Vec<P>),
}

impl Shape {
    /// Axis-aligned pixel bounds, padded for the anti-aliasing ramp.
    fn bounds(&self) -> (f32, f32, f32, f32) {
        let (x0, y0, x1, y1) = match self {
            Shape::Capsule { a, b, r } => (
                a.0.min(b.0) - r,
                a.1.min(b.1) - r,
                a.0.max(b.0) + r,
                a.1.max(b.1) + r,
            ),
            Shape::Ellipse { c, rx, ry } => (c.0 - rx, c.1 - ry, c.0 + rx, c.1 + ry),
            Shape::Poly(v) => v.iter().fold(
                (f32::MAX, f32::MAX, f32::MIN, f32::MIN),
                |(a, b, c, d), p| (a.min(p.0), b.min(p.1), c.max(p.0), d.max(p.1)),
            ),
        };
        (x0 - 1.0, y0 - 1.0, x1 + 1.0, y1 + 1.0)
    }

    /// Signed distance from pixel centre `(x, y)` (negative inside).
    pub fn sdf(&self, x: f32, y: f32) -> f32 {
        match self {
            Shape::Capsule { a, b, r } => {
                let (px, py) = (x - a.0, y - a.1);
                let (bx, by) = (b.0 - a.0, b.1 - a.1);
                let len2 = bx * bx + by * by;
                let t = if len2 > 0.0 {
                    ((px * bx + py * by) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (dx, dy) = (px - bx * t, py - by * t);
                (dx * dx + dy * dy).sqrt() - r
            }
            Shape::Ellipse { c, rx, ry } => {
                let (nx, ny) = ((x - c.0) / rx, (y - c.1) / ry);
                ((nx * nx + ny * ny).sqrt() - 1.0) * rx.min(*ry)
            }
            Shape::Poly(v) => {
                // Max of signed distances to the edge lines: exact inside, close enough outside
                // for a one-pixel anti-aliasing ramp.
                let n = v.len();
                let area: f32 = (0..n)
                    .map(|i| {
                        let (a, b) = (v[i], v[(i + 1) % n]);
                        a.0 * b.1 - b.0 * a.1
                    })
                    .sum();
                let sign = if area >= 0.0 { 1.0 } else { -1.0 };
                (0..n)
                    .map(|i| {
                        let (a, b) = (v[i], v[(i + 1) % n]);
                        let (ex, ey) = (b.0 - a.0, b.1 - a.1);
                        let len = (ex * ex + ey * ey).sqrt().max(1e-6);
                        // Outward normal for counter-clockwise (area > 0 in y-down) order.
                        sign * ((x - a.0) * ey - (y - a.1) * ex) / len
                    })
                    .fold(f32::MIN, f32::max)
            }
        }
    }
}

/// RGB floats in [0, 255] plus a label per pixel.
pub struct Canvas {
    pub w: usize,
    pub h: usize,
    pub rgb: Vec<[f32; 3]>,
    pub labels: Vec<u8>,
}

impl Canvas {
    pub fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            rgb: vec![[0.0; 3]; w * h],
            labels: vec![0; w * h],
        }
    }

    /// Paints `shape` with `colour(x, y)`; where it covers a pixel's centre the label becomes
    /// `label` (if given). Returns whether anything was drawn.
    pub fn fill(
        &mut self,
        shape: &Shape,
        label: Option<u8>,
        colour: &dyn Fn(f32, f32) -> [f32; 3],
    ) -> bool {
        let (x0, y0, x1, y1) = shape.bounds();
        let xs = (x0.floor().max(0.0) as usize)..(x1.ceil().min(self.w as f32).max(0.0) as usize);
        let ys = (y0.floor().max(0.0) as usize)..(y1.ceil().min(self.h as f32).max(0.0) as usize);
        let mut drawn = false;
        for y in ys {
            for x in xs.clone() {
                let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
                let d = shape.sdf(fx, fy);
                let cov = (0.5 - d).clamp(0.0, 1.0);
                if cov <= 0.0 {
                    continue;
                }
                drawn = true;
                let i = y * self.w + x;
                let c = colour(fx, fy);
                let dst = &mut self.rgb[i];
                for k in 0..3 {
                    dst[k] += (c[k] - dst[k]) * cov;
                }
                if d <= 0.0 {
                    if let Some(l) = label {
                        self.labels[i] = l;
                    }
                }
            }
        }
        drawn
    }

    pub fn label_at(&self, x: f32, y: f32) -> Option<u8> {
        if x < 0.0 || y < 0.0 || x >= self.w as f32 || y >= self.h as f32 {
            return None;
        }
        Some(self.labels[y as usize * self.w + x as usize])
    }

    /// 8-bit RGB, rounded and clamped.
    pub fn to_rgb8(&self) -> Vec<u8> {
        self.rgb
            .iter()
            .flat_map(|p| p.map(|v| v.round().clamp(0.0, 255.0) as u8))
            .collect()
    }
}

pub fn rgb(c: [u8; 3]) -> [f32; 3] {
    c.map(|v| v as f32)
}

pub fn shade(c: [f32; 3], f: f32) -> [f32; 3] {
    c.map(|v| v * f)
}
