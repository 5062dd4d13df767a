//! Textured backgrounds: a ground plane and a wall with value-noise texture, bricks or stripes.

use rand::Rng;

use super::raster::Canvas;

/// Hash-based lattice noise in [0, 1].
fn lattice(seed: u32, x: i32, y: i32) -> f32 {
    let mut h = seed
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add((x as u32).wrapping_mul(0x85EB_CA6B))
        .wrapping_add((y as u32).wrapping_mul(0xC2B2_AE35));
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    (h & 0xFFFF) as f32 / 65535.0
}

/// Bilinear value noise at cell size `cell` pixels.
pub fn value_noise(seed: u32, x: f32, y: f32, cell: f32) -> f32 {
    let (u, v) = (x / cell, y / cell);
    let (x0, y0) = (u.floor() as i32, v.floor() as i32);
    let (fx, fy) = (u - x0 as f32, v - y0 as f32);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let a = lattice(seed, x0, y0) + (lattice(seed, x0 + 1, y0) - lattice(seed, x0, y0)) * sx;
    let b = lattice(seed, x0, y0 + 1)
        + (lattice(seed, x0 + 1, y0 + 1) - lattice(seed, x0, y0 + 1)) * sx;
    a + (b - a) * sy
}

#[derive(Debug, Clone, Copy)]
enum Wall {
    Noise,
    Bricks,
    Stripes,
}

/// A scene backdrop, fixed per camera so that a camera looks like a place.
#[derive(Debug, Clone)]
pub struct Backdrop {
    wall: Wall,
    wall_rgb: [f32; 3],
    ground_rgb: [f32; 3],
    horizon: f32,
    seed: u32,
}

impl Backdrop {
    pub fn sample<R: Rng>(rng: &mut R) -> Self {
        let base: f32 = rng.gen_range(70.0..200.0);
        let tint = |rng: &mut R| base + rng.gen_range(-40.0..40.0);
        let g: f32 = rng.gen_range(60.0..170.0);
        Self {
            wall: match rng.gen_range(0..3) {
                0 => Wall::Noise,
                1 => Wall::Bricks,
                _ => Wall::Stripes,
            },
            wall_rgb: [tint(rng), tint(rng), tint(rng)],
            ground_rgb: [
                g,
                g * rng.gen_range(0.9..1.05),
                g * rng.gen_range(0.85..1.05),
            ],
            horizon: rng.gen_range(0.45..0.8),
            seed: rng.gen(),
        }
    }

    /// Paints the whole canvas; `shift` moves the texture so each image sees another patch.
    pub fn paint(&self, canvas: &mut Canvas, shift: (f32, f32)) {
        let (w, h) = (canvas.w, canvas.h);
        let horizon = self.horizon * h as f32;
        let scale = h as f32 / 256.0;
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f32 + shift.0, y as f32 + shift.1);
                let fine = value_noise(self.seed, fx, fy, 3.0 * scale);
                let coarse = value_noise(self.seed ^ 0xABCD, fx, fy, 24.0 * scale);
                let c = if (y as f32) < horizon {
                    let pattern = match self.wall {
                        Wall::Noise => 0.75 + 0.35 * coarse,
                        Wall::Bricks => {
                            let row = (fy / (9.0 * scale)).floor();
                            let off = if row as i32 % 2 == 0 {
                                0.0
                            } else {
                                10.0 * scale
                            };
                            let mortar = (fy % (9.0 * scale)) < 1.2 * scale
                                || ((fx + off) % (20.0 * scale)) < 1.2 * scale;
                            if mortar {
                                1.25
                            } else {
                                0.8 + 0.2 * coarse
                            }
                        }
                        Wall::Stripes => {
                            if (fx / (14.0 * scale)) as i32 % 2 == 0 {
                                0.85
                            } else {
                                1.05
                            }
                        }
                    };
                    self.wall_rgb.map(|v| v * (pattern + 0.15 * (fine - 0.5)))
                } else {
                    let depth = 0.8 + 0.3 * (y as f32 - horizon) / (h as f32 - horizon).max(1.0);
                    self.ground_rgb
                        .map(|v| v * depth * (0.85 + 0.3 * coarse + 0.15 * (fine - 0.5)))
                };
                canvas.rgb[y * w + x] = c;
            }
        }
    }
}
