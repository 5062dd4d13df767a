//! Drawing one person: skeleton from the pose, body parts and garments as anti-aliased shapes,
//! LIP labels where they land, and COCO keypoints with visibility.

use super::identity::{AgeGroup, Gender, Identity, Lower, LowerPattern, Pattern};
use super::lip;
use super::pose::{Pose, View};
use super::raster::{rgb, shade, Canvas, Shape, P};

/// Where the person stands in the image: centre x, top of the head, height in pixels.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    pub cx: f32,
    pub top: f32,
    pub height: f32,
}

/// Body proportions in units of the person's height (0 = top of head, 1 = soles).
struct Proportions {
    head_r: f32,
    head_y: f32,
    shoulder_y: f32,
    hip_y: f32,
    upper_arm: f32,
    forearm: f32,
    thigh: f32,
    shin: f32,
}

fn proportions(age: AgeGroup) -> Proportions {
    match age {
        AgeGroup::Child => Proportions {
            head_r: 0.078,
            head_y: 0.082,
            shoulder_y: 0.2,
            hip_y: 0.54,
            upper_arm: 0.15,
            forearm: 0.13,
            thigh: 0.22,
            shin: 0.2,
        },
        _ => Proportions {
            head_r: 0.062,
            head_y: 0.066,
            shoulder_y: 0.18,
            hip_y: 0.52,
            upper_arm: 0.165,
            forearm: 0.15,
            thigh: 0.235,
            shin: 0.215,
        },
    }
}

/// Joints in body units; index 0 is the person's left side, 1 the right.
struct Skeleton {
    shoulder: [(f32, f32); 2],
    elbow: [(f32, f32); 2],
    wrist: [(f32, f32); 2],
    hip: [(f32, f32); 2],
    knee: [(f32, f32); 2],
    ankle: [(f32, f32); 2],
}

fn add(a: (f32, f32), len: f32, d: (f32, f32)) -> (f32, f32) {
    (a.0 + len * d.0, a.1 + len * d.1)
}

/// Draws `who` in `pose` at `at` under `light` into `canvas` (colours and LIP labels), back to
/// front, and returns the COCO keypoints.
pub fn draw_person(
    canvas: &mut Canvas,
    who: &Identity,
    pose: &Pose,
    at: &Placement,
    light: f32,
) -> [[f32; 3]; 17] {
    let f = Figure::new(who, pose, at, light);
    f.behind(canvas);
    // Depth order: in a side view the far arm goes behind the torso, the near one in front.
    for k in f.order {
        if f.side && k != f.near {
            f.arm(canvas, k);
        }
        f.leg(canvas, k);
    }
    f.torso(canvas);
    f.bags(canvas);
    for k in f.order {
        if !f.side || k == f.near {
            f.arm(canvas, k);
        }
    }
    f.held(canvas);
    f.head(canvas);
    let px = |p| f.px(p);
    keypoints(&f.sk, pose, &f.pr, f.head_c, f.lat, f.fwd, &px)
}

/// A fill of one colour.
fn flat(c: [f32; 3]) -> impl Fn(f32, f32) -> [f32; 3] {
    move |_: f32, _: f32| c
}

/// The colours of one person under one light.
struct Colours {
    skin: [f32; 3],
    lower: [f32; 3],
    upper: [f32; 3],
    upper2: [f32; 3],
    shoes: [f32; 3],
    hair: [f32; 3],
}

/// One person as drawn: the skeleton in body units, where it lands in the image, its colours and
/// which side faces the camera. Each method draws one section of the body.
struct Figure<'a> {
    who: &'a Identity,
    pose: &'a Pose,
    at: &'a Placement,
    light: f32,
    pr: Proportions,
    /// Height in pixels.
    s: f32,
    /// Build (width factor).
    b: f32,
    side: bool,
    /// Facing direction in side views (±1; 0 otherwise).
    fwd: f32,
    /// Image-x sign of each side's lateral offset.
    lat: [f32; 2],
    /// Half widths of shoulders and hips, in body units.
    sw: f32,
    hw: f32,
    sk: Skeleton,
    colours: Colours,
    /// Pattern period in pixels.
    period: f32,
    upper_label: u8,
    head_c: (f32, f32),
    /// The side nearer the camera, and the order the sides are drawn in.
    near: usize,
    order: [usize; 2],
}

impl<'a> Figure<'a> {
    fn new(who: &'a Identity, pose: &'a Pose, at: &'a Placement, light: f32) -> Self {
        let pr = proportions(who.age);
        let b = who.build;
        let female = who.gender == Gender::Female;
        let (lat, fwd, side) = match pose.view {
            View::Front => ([1.0f32, -1.0], 0.0, false),
            View::Back => ([-1.0, 1.0], 0.0, false),
            View::Side { facing_right } => {
                let f = if facing_right { 1.0 } else { -1.0 };
                ([0.012 * f, -0.012 * f], f, true)
            }
        };
        let sw = if side { 1.0 } else { 0.105 * b };
        let hw = if side {
            1.0
        } else {
            (if female { 0.075 } else { 0.068 }) * b
        };
        let sk = skeleton(pose, &pr, lat, fwd, side, sw, hw);
        let colours = Colours {
            skin: shade(rgb(who.skin), light),
            lower: shade(rgb(who.lower_colour.rgb), light),
            upper: shade(rgb(who.upper.rgb), light),
            upper2: shade(rgb(who.upper_second.rgb), light),
            shoes: shade(rgb(who.shoes.rgb), light),
            hair: shade(rgb(who.hair.rgb), light),
        };
        let near = if side {
            if fwd > 0.0 {
                0
            } else {
                1
            }
        } else {
            0
        };
        let order = if side { [1 - near, near] } else { [0, 1] };
        let upper_label = if who.lower == Lower::Dress {
            lip::DRESS
        } else {
            lip::UPPER_CLOTHES
        };
        let head_c = (if side { 0.01 * fwd } else { 0.0 }, pr.head_y);
        Self {
            who,
            pose,
            at,
            light,
            s: at.height,
            b,
            side,
            fwd,
            lat,
            sw,
            hw,
            sk,
            colours,
            period: (0.03 * at.height).max(2.0),
            upper_label,
            head_c,
            near,
            order,
            pr,
        }
    }

    /// Body units to image pixels.
    fn px(&self, p: (f32, f32)) -> P {
        P(self.at.cx + p.0 * self.s, self.at.top + p.1 * self.s)
    }

    fn upper_fill(&self, x: f32, y: f32) -> [f32; 3] {
        let (upper, upper2, period) = (self.colours.upper, self.colours.upper2, self.period);
        match self.who.pattern {
            Pattern::Plain | Pattern::Logo => upper,
            Pattern::Stripes => {
                if ((y / period) as i32) % 2 == 0 {
                    upper
                } else {
                    upper2
                }
            }
            Pattern::Plaid => {
                let a = ((y / period) as i32) % 2 == 0;
                let c = ((x / period) as i32) % 2 == 0;
                match (a, c) {
                    (true, true) => upper2,
                    (false, false) => upper,
                    _ => shade(upper, 0.75),
                }
            }
            Pattern::Splice => {
                if x < self.at.cx {
                    upper
                } else {
                    upper2
                }
            }
        }
    }

    fn lower_fill(&self, x: f32, y: f32) -> [f32; 3] {
        let (lower, period) = (self.colours.lower, self.period);
        match self.who.lower_pattern {
            LowerPattern::Plain => lower,
            LowerPattern::Stripes => {
                if ((x / (period * 0.7)) as i32) % 2 == 0 {
                    lower
                } else {
                    shade(lower, 0.55)
                }
            }
            LowerPattern::Dots => {
                let (u, v) = ((x / period).fract() - 0.5, (y / period).fract() - 0.5);
                if u * u + v * v < 0.06 {
                    [235.0, 235.0, 235.0]
                } else {
                    lower
                }
            }
        }
    }

    /// Long hair and a backpack seen from the front: behind everything.
    fn behind(&self, canvas: &mut Canvas) {
        let Colours { hair, .. } = self.colours;
        let px = |p| self.px(p);
        let ay = self.pr.shoulder_y;
        // Long hair and backpacks seen from the front hang behind everything.
        if self.who.long_hair && !matches!(self.pose.view, View::Back) {
            let hb = (self.head_c.0 - 0.02 * self.fwd, self.pr.shoulder_y + 0.08);
            canvas.fill(
                &Shape::Capsule {
                    a: px(self.head_c),
                    b: px(hb),
                    r: self.pr.head_r * 1.05 * self.s,
                },
                Some(lip::HAIR),
                &flat(hair),
            );
        }
        if let Some(bp) = self.who.backpack {
            if !matches!(self.pose.view, View::Back) {
                let back = if self.side { -self.fwd * 0.08 } else { 0.0 };
                let bag = shade(rgb(bp.rgb), self.light * 0.9);
                canvas.fill(
                    &rounded_box(
                        px((back - 0.07, ay + 0.02)),
                        px((back + 0.07, ay + 0.24)),
                        0.02 * self.s,
                    ),
                    Some(lip::BACKGROUND),
                    &flat(bag),
                );
            }
        }
    }

    /// Leg `k`: skin, then garments over it, then shoes.
    fn leg(&self, canvas: &mut Canvas, k: usize) {
        let Colours { skin, shoes, .. } = self.colours;
        let px = |p| self.px(p);
        let lower_fill = |x: f32, y: f32| self.lower_fill(x, y);
        let leg_label = [lip::LEFT_LEG, lip::RIGHT_LEG];
        let shoe_label = [lip::LEFT_SHOE, lip::RIGHT_SHOE];
        // Legs: skin, then garments over them, then shoes.
        let leg_r = 0.04 * self.b * self.s;
        canvas.fill(
            &Shape::Capsule {
                a: px(self.sk.hip[k]),
                b: px(self.sk.knee[k]),
                r: leg_r,
            },
            Some(leg_label[k]),
            &flat(skin),
        );
        canvas.fill(
            &Shape::Capsule {
                a: px(self.sk.knee[k]),
                b: px(self.sk.ankle[k]),
                r: leg_r * 0.78,
            },
            Some(leg_label[k]),
            &flat(skin),
        );
        match self.who.lower {
            Lower::Trousers => {
                canvas.fill(
                    &Shape::Capsule {
                        a: px(self.sk.hip[k]),
                        b: px(self.sk.knee[k]),
                        r: leg_r * 1.12,
                    },
                    Some(lip::PANTS),
                    &lower_fill,
                );
                canvas.fill(
                    &Shape::Capsule {
                        a: px(self.sk.knee[k]),
                        b: px(self.sk.ankle[k]),
                        r: leg_r * 0.95,
                    },
                    Some(lip::PANTS),
                    &lower_fill,
                );
            }
            Lower::Shorts => {
                let mid = px(self.sk.hip[k]).lerp(px(self.sk.knee[k]), 0.65);
                canvas.fill(
                    &Shape::Capsule {
                        a: px(self.sk.hip[k]),
                        b: mid,
                        r: leg_r * 1.2,
                    },
                    Some(lip::PANTS),
                    &lower_fill,
                );
            }
            Lower::Skirt | Lower::Dress => {}
        }
        let foot_dir = if self.side {
            (self.fwd, 0.0)
        } else {
            (self.lat[k] * 0.35, 0.0)
        };
        let toe = add(self.sk.ankle[k], 0.055, foot_dir);
        let ankle = (self.sk.ankle[k].0, self.sk.ankle[k].1 + 0.012);
        if self.who.boots {
            let top = px(self.sk.knee[k]).lerp(px(self.sk.ankle[k]), 0.45);
            canvas.fill(
                &Shape::Capsule {
                    a: top,
                    b: px(ankle),
                    r: leg_r * 0.95,
                },
                Some(shoe_label[k]),
                &flat(shoes),
            );
        }
        canvas.fill(
            &Shape::Capsule {
                a: px(ankle),
                b: px((toe.0, toe.1 + 0.012)),
                r: 0.02 * self.s,
            },
            Some(shoe_label[k]),
            &flat(shoes),
        );
    }

    /// Arm `k`: skin, sleeve (or coat sleeve) over it, hand.
    fn arm(&self, canvas: &mut Canvas, k: usize) {
        let Colours { skin, upper, .. } = self.colours;
        let px = |p| self.px(p);
        let arm_label = [lip::LEFT_ARM, lip::RIGHT_ARM];
        let r = 0.028 * self.b * self.s;
        let sleeve_label = if self.who.coat.is_some() {
            lip::COAT
        } else {
            self.upper_label
        };
        let sleeve = self
            .who
            .coat
            .map_or(upper, |c| shade(rgb(c.rgb), self.light));
        canvas.fill(
            &Shape::Capsule {
                a: px(self.sk.shoulder[k]),
                b: px(self.sk.elbow[k]),
                r,
            },
            Some(arm_label[k]),
            &flat(skin),
        );
        canvas.fill(
            &Shape::Capsule {
                a: px(self.sk.elbow[k]),
                b: px(self.sk.wrist[k]),
                r: r * 0.85,
            },
            Some(arm_label[k]),
            &flat(skin),
        );
        let long = self.who.long_sleeves || self.who.coat.is_some();
        let sleeve_end = if long {
            px(self.sk.wrist[k])
        } else {
            px(self.sk.shoulder[k]).lerp(px(self.sk.elbow[k]), 0.6)
        };
        canvas.fill(
            &Shape::Capsule {
                a: px(self.sk.shoulder[k]),
                b: px(self.sk.elbow[k]).lerp(sleeve_end, if long { 0.0 } else { 1.0 }),
                r: r * 1.15,
            },
            Some(sleeve_label),
            &flat(sleeve),
        );
        if long {
            canvas.fill(
                &Shape::Capsule {
                    a: px(self.sk.elbow[k]),
                    b: sleeve_end.lerp(px(self.sk.elbow[k]), 0.1),
                    r: r * 1.0,
                },
                Some(sleeve_label),
                &flat(sleeve),
            );
        }
        canvas.fill(
            &Shape::Ellipse {
                c: px(self.sk.wrist[k]),
                rx: r * 0.9,
                ry: r * 0.9,
            },
            Some(arm_label[k]),
            &flat(skin),
        );
    }

    /// Torso, its logo, the skirt, dress or trousers at the hips, and a coat over them.
    fn torso(&self, canvas: &mut Canvas) {
        let Colours { upper2, .. } = self.colours;
        let px = |p| self.px(p);
        let upper_fill = |x: f32, y: f32| self.upper_fill(x, y);
        let lower_fill = |x: f32, y: f32| self.lower_fill(x, y);
        // Torso (and skirt / dress / coat over the hips).
        let torso = if self.side {
            let lean = 0.01 * self.fwd;
            Shape::Poly(vec![
                px((-0.05 * self.b - lean, self.pr.shoulder_y - 0.01)),
                px((0.055 * self.b + lean, self.pr.shoulder_y - 0.01)),
                px((0.05 * self.b, self.pr.hip_y + 0.03)),
                px((-0.05 * self.b, self.pr.hip_y + 0.03)),
            ])
        } else {
            Shape::Poly(vec![
                px((-self.sw - 0.012, self.pr.shoulder_y - 0.012)),
                px((self.sw + 0.012, self.pr.shoulder_y - 0.012)),
                px((self.hw + 0.018, self.pr.hip_y + 0.03)),
                px((-self.hw - 0.018, self.pr.hip_y + 0.03)),
            ])
        };
        canvas.fill(&torso, Some(self.upper_label), &upper_fill);
        if self.who.pattern == Pattern::Logo && !matches!(self.pose.view, View::Back) {
            let c = (
                if self.side { 0.02 * self.fwd } else { 0.0 },
                self.pr.shoulder_y + 0.1,
            );
            canvas.fill(
                &Shape::Ellipse {
                    c: px(c),
                    rx: 0.03 * self.s,
                    ry: 0.03 * self.s,
                },
                Some(self.upper_label),
                &flat(upper2),
            );
        }
        let waist = self.pr.hip_y - 0.03;
        match self.who.lower {
            Lower::Skirt | Lower::Dress => {
                let (label, fill): (u8, &dyn Fn(f32, f32) -> [f32; 3]) =
                    if self.who.lower == Lower::Dress {
                        (lip::DRESS, &upper_fill)
                    } else {
                        (lip::SKIRT, &lower_fill)
                    };
                let w0 = if self.side {
                    0.055 * self.b
                } else {
                    self.hw + 0.02
                };
                let w1 = if self.side {
                    0.1 * self.b
                } else {
                    self.hw + 0.075
                };
                canvas.fill(
                    &Shape::Poly(vec![
                        px((-w0, waist)),
                        px((w0, waist)),
                        px((w1, self.pr.hip_y + 0.2)),
                        px((-w1, self.pr.hip_y + 0.2)),
                    ]),
                    Some(label),
                    fill,
                );
            }
            Lower::Trousers | Lower::Shorts => {
                let w = if self.side {
                    0.052 * self.b
                } else {
                    self.hw + 0.03
                };
                canvas.fill(
                    &Shape::Poly(vec![
                        px((-w, waist)),
                        px((w, waist)),
                        px((w, self.pr.hip_y + 0.05)),
                        px((-w, self.pr.hip_y + 0.05)),
                    ]),
                    Some(lip::PANTS),
                    &lower_fill,
                );
            }
        }
        if let Some(coat) = self.who.coat {
            let c = shade(rgb(coat.rgb), self.light);
            let bottom = self.pr.hip_y + 0.17;
            let (l, r) = if self.side {
                (-0.058 * self.b, 0.062 * self.b)
            } else {
                (-self.sw - 0.018, self.sw + 0.018)
            };
            let open = !self.side && !matches!(self.pose.view, View::Back);
            let panels: Vec<(f32, f32)> = if open {
                vec![(l, -0.025), (0.025, r)]
            } else {
                vec![(l, r)]
            };
            for (x0, x1) in panels {
                canvas.fill(
                    &Shape::Poly(vec![
                        px((x0, self.pr.shoulder_y - 0.015)),
                        px((x1, self.pr.shoulder_y - 0.015)),
                        px((x1 * 1.1, bottom)),
                        px((x0 * 1.1, bottom)),
                    ]),
                    Some(lip::COAT),
                    &flat(c),
                );
            }
        }
    }

    /// A backpack'self.s straps or back, and a shoulder bag.
    fn bags(&self, canvas: &mut Canvas) {
        let px = |p| self.px(p);
        let ay = self.pr.shoulder_y;
        // Accessories on the body.
        if let Some(bp) = self.who.backpack {
            let bag = shade(rgb(bp.rgb), self.light * 0.9);
            match self.pose.view {
                View::Back => {
                    canvas.fill(
                        &rounded_box(
                            px((-0.075, ay + 0.02)),
                            px((0.075, ay + 0.25)),
                            0.02 * self.s,
                        ),
                        Some(lip::BACKGROUND),
                        &flat(bag),
                    );
                }
                View::Front => {
                    for k in 0..2 {
                        let x = self.sk.shoulder[k].0 * 0.6;
                        canvas.fill(
                            &Shape::Capsule {
                                a: px((x, ay - 0.005)),
                                b: px((x * 0.9, ay + 0.16)),
                                r: 0.012 * self.s,
                            },
                            None,
                            &flat(bag),
                        );
                    }
                }
                View::Side { .. } => {}
            }
        }
        if let Some(sb) = self.who.shoulder_bag {
            let bag = shade(rgb(sb.rgb), self.light);
            let k = 1;
            let from = (self.sk.shoulder[1 - k].0 * 0.8, ay);
            let hang = (
                if self.side {
                    -0.04 * self.fwd
                } else {
                    self.lat[k] * (self.hw + 0.05)
                },
                self.pr.hip_y + 0.02,
            );
            canvas.fill(
                &Shape::Capsule {
                    a: px(from),
                    b: px(hang),
                    r: 0.007 * self.s,
                },
                None,
                &flat(shade(bag, 0.8)),
            );
            canvas.fill(
                &rounded_box(
                    px((hang.0 - 0.05, hang.1 - 0.02)),
                    px((hang.0 + 0.05, hang.1 + 0.08)),
                    0.015 * self.s,
                ),
                Some(lip::BACKGROUND),
                &flat(bag),
            );
        }
    }

    /// A hand bag and an object held in front.
    fn held(&self, canvas: &mut Canvas) {
        let px = |p| self.px(p);
        if let Some(hb) = self.who.hand_bag {
            let bag = shade(rgb(hb.rgb), self.light);
            let w = self.sk.wrist[0];
            canvas.fill(
                &rounded_box(
                    px((w.0 - 0.04, w.1 + 0.015)),
                    px((w.0 + 0.04, w.1 + 0.1)),
                    0.012 * self.s,
                ),
                Some(lip::BACKGROUND),
                &flat(bag),
            );
        }
        if self.who.holds_object && !matches!(self.pose.view, View::Back) {
            let mid = (
                (self.sk.wrist[0].0 + self.sk.wrist[1].0) / 2.0,
                (self.sk.wrist[0].1 + self.sk.wrist[1].1) / 2.0,
            );
            canvas.fill(
                &Shape::Poly(vec![
                    px((mid.0 - 0.09, mid.1 - 0.09)),
                    px((mid.0 + 0.09, mid.1 - 0.09)),
                    px((mid.0 + 0.09, mid.1 + 0.03)),
                    px((mid.0 - 0.09, mid.1 + 0.03)),
                ]),
                Some(lip::BACKGROUND),
                &flat(shade([176.0, 132.0, 84.0], self.light)),
            );
        }
    }

    /// Neck, face, hair, eyes or sunglasses, hat.
    fn head(&self, canvas: &mut Canvas) {
        let Colours { skin, hair, .. } = self.colours;
        let px = |p| self.px(p);
        // Neck and head.
        canvas.fill(
            &Shape::Capsule {
                a: px((self.head_c.0, self.pr.head_y + self.pr.head_r * 0.6)),
                b: px((0.0, self.pr.shoulder_y)),
                r: 0.024 * self.s,
            },
            Some(lip::FACE),
            &flat(skin),
        );
        let (hr, hcx, hcy) = (
            self.pr.head_r * self.s,
            px(self.head_c).0,
            px(self.head_c).1,
        );
        let face = Shape::Ellipse {
            c: P(hcx, hcy),
            rx: hr * 0.88,
            ry: hr,
        };
        canvas.fill(&face, Some(lip::FACE), &flat(skin));
        match self.pose.view {
            View::Back => {
                canvas.fill(&face, Some(lip::HAIR), &flat(hair));
                if self.who.long_hair {
                    canvas.fill(
                        &Shape::Capsule {
                            a: P(hcx, hcy),
                            b: px((0.0, self.pr.shoulder_y + 0.08)),
                            r: hr * 1.02,
                        },
                        Some(lip::HAIR),
                        &flat(hair),
                    );
                }
            }
            _ => {
                // A cap of hair over the top (and the back, in a self.side view).
                let shift = if self.side { -self.fwd * hr * 0.3 } else { 0.0 };
                canvas.fill(
                    &Shape::Ellipse {
                        c: P(hcx + shift, hcy - hr * 0.35),
                        rx: hr * 0.92,
                        ry: hr * 0.7,
                    },
                    Some(lip::HAIR),
                    &flat(hair),
                );
                let eye = [20.0, 20.0, 24.0];
                let eyes: Vec<f32> = if self.side {
                    vec![self.fwd * 0.5]
                } else {
                    vec![-0.38, 0.38]
                };
                for ex in &eyes {
                    if self.who.glasses {
                        canvas.fill(
                            &Shape::Ellipse {
                                c: P(hcx + ex * hr, hcy + 0.02 * hr),
                                rx: hr * 0.28,
                                ry: hr * 0.2,
                            },
                            Some(lip::SUNGLASSES),
                            &flat([18.0, 18.0, 22.0]),
                        );
                    } else {
                        canvas.fill(
                            &Shape::Ellipse {
                                c: P(hcx + ex * hr, hcy + 0.02 * hr),
                                rx: hr * 0.09,
                                ry: hr * 0.09,
                            },
                            None,
                            &flat(eye),
                        );
                    }
                }
            }
        }
        if let Some(hat) = self.who.hat {
            let c = shade(rgb(hat.rgb), self.light);
            canvas.fill(
                &Shape::Ellipse {
                    c: P(hcx, hcy - hr * 0.55),
                    rx: hr * 1.0,
                    ry: hr * 0.62,
                },
                Some(lip::HAT),
                &flat(c),
            );
            canvas.fill(
                &Shape::Capsule {
                    a: P(hcx - hr * 1.1, hcy - hr * 0.3),
                    b: P(hcx + hr * 1.1, hcy - hr * 0.3),
                    r: hr * 0.1,
                },
                Some(lip::HAT),
                &flat(shade(c, 0.85)),
            );
        }
    }
}

/// The joints of `pose` in body units.
fn skeleton(
    pose: &Pose,
    pr: &Proportions,
    lat: [f32; 2],
    fwd: f32,
    side: bool,
    sw: f32,
    hw: f32,
) -> Skeleton {
    let dir = |k: usize, theta: f32| -> (f32, f32) {
        if side {
            (theta.sin() * fwd, theta.cos())
        } else {
            (theta.sin() * lat[k], theta.cos())
        }
    };
    let mut sk = Skeleton {
        shoulder: [(0.0, 0.0); 2],
        elbow: [(0.0, 0.0); 2],
        wrist: [(0.0, 0.0); 2],
        hip: [(0.0, 0.0); 2],
        knee: [(0.0, 0.0); 2],
        ankle: [(0.0, 0.0); 2],
    };
    for (k, l) in lat.iter().enumerate() {
        sk.shoulder[k] = (l * sw, pr.shoulder_y);
        sk.elbow[k] = add(sk.shoulder[k], pr.upper_arm, dir(k, pose.shoulder[k]));
        sk.wrist[k] = add(
            sk.elbow[k],
            pr.forearm,
            dir(k, pose.shoulder[k] + pose.elbow[k]),
        );
        sk.hip[k] = (l * hw, pr.hip_y);
        sk.knee[k] = add(sk.hip[k], pr.thigh, dir(k, pose.hip[k]));
        let shin_angle = if side {
            pose.hip[k] - pose.knee[k]
        } else {
            pose.hip[k]
        };
        sk.ankle[k] = add(sk.knee[k], pr.shin, dir(k, shin_angle));
    }
    sk
}

fn rounded_box(a: P, b: P, r: f32) -> Shape {
    // A capsule-cornered box is close enough: a convex polygon with cut corners.
    let (x0, y0, x1, y1) = (a.0.min(b.0), a.1.min(b.1), a.0.max(b.0), a.1.max(b.1));
    let r = r.min((x1 - x0) / 2.0).min((y1 - y0) / 2.0);
    Shape::Poly(vec![
        P(x0 + r, y0),
        P(x1 - r, y0),
        P(x1, y0 + r),
        P(x1, y1 - r),
        P(x1 - r, y1),
        P(x0 + r, y1),
        P(x0, y1 - r),
        P(x0, y0 + r),
    ])
}

/// COCO keypoints `[x, y, v]` in pixels. Facial points that face away are unlabelled (v = 0).
fn keypoints(
    sk: &Skeleton,
    pose: &Pose,
    pr: &Proportions,
    head_c: (f32, f32),
    lat: [f32; 2],
    fwd: f32,
    px: &dyn Fn((f32, f32)) -> P,
) -> [[f32; 3]; 17] {
    let r = pr.head_r;
    let (hx, hy) = head_c;
    let mut face: [((f32, f32), f32); 5] = match pose.view {
        View::Front | View::Back => {
            let v = if matches!(pose.view, View::Back) {
                0.0
            } else {
                2.0
            };
            [
                ((hx, hy + 0.25 * r), v),
                ((hx + lat[0] * 0.38 * r, hy + 0.02 * r), v),
                ((hx + lat[1] * 0.38 * r, hy + 0.02 * r), v),
                ((hx + lat[0] * 0.9 * r, hy + 0.1 * r), 2.0),
                ((hx + lat[1] * 0.9 * r, hy + 0.1 * r), 2.0),
            ]
        }
        View::Side { .. } => {
            // The side facing the camera is the left one when facing right.
            let near_left = fwd > 0.0;
            let (vl, vr) = if near_left { (2.0, 0.0) } else { (0.0, 2.0) };
            [
                ((hx + fwd * 0.95 * r, hy + 0.2 * r), 2.0),
                ((hx + fwd * 0.55 * r, hy + 0.02 * r), vl),
                ((hx + fwd * 0.55 * r, hy + 0.02 * r), vr),
                ((hx - fwd * 0.1 * r, hy + 0.1 * r), vl),
                ((hx - fwd * 0.1 * r, hy + 0.1 * r), vr),
            ]
        }
    };
    let mut out = [[0f32; 3]; 17];
    for (i, (p, v)) in face.iter_mut().enumerate() {
        let q = px(*p);
        out[i] = [q.0, q.1, *v];
    }
    let joints = [sk.shoulder, sk.elbow, sk.wrist, sk.hip, sk.knee, sk.ankle];
    for (j, pair) in joints.iter().enumerate() {
        for k in 0..2 {
            let q = px(pair[k]);
            out[5 + 2 * j + k] = [q.0, q.1, 2.0];
        }
    }
    out
}
