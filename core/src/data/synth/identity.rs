//! An identity: a person's fixed appearance, sampled from a seed.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// An sRGB colour with a name used in captions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Colour {
    pub name: &'static str,
    pub rgb: [u8; 3],
}

const fn c(name: &'static str, r: u8, g: u8, b: u8) -> Colour {
    Colour {
        name,
        rgb: [r, g, b],
    }
}

pub const GARMENT_COLOURS: [Colour; 12] = [
    c("black", 30, 30, 34),
    c("white", 232, 232, 228),
    c("grey", 128, 128, 132),
    c("red", 196, 36, 40),
    c("blue", 40, 72, 180),
    c("navy", 26, 36, 84),
    c("green", 48, 140, 64),
    c("yellow", 226, 196, 48),
    c("orange", 232, 124, 36),
    c("purple", 112, 56, 148),
    c("pink", 236, 140, 176),
    c("brown", 112, 72, 40),
];

pub const HAIR_COLOURS: [Colour; 5] = [
    c("black", 24, 20, 18),
    c("brown", 92, 58, 32),
    c("blond", 214, 180, 110),
    c("red", 150, 60, 30),
    c("grey", 170, 170, 168),
];

pub const SKIN_TONES: [[u8; 3]; 6] = [
    [250, 218, 190],
    [234, 192, 160],
    [206, 160, 120],
    [170, 120, 84],
    [128, 84, 56],
    [90, 60, 40],
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Gender {
    Female,
    Male,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgeGroup {
    Child,
    Adult,
    Senior,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pattern {
    Plain,
    Stripes,
    Logo,
    Plaid,
    /// Two colours split down the middle (PA-100K's UpperSplice).
    Splice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lower {
    Trousers,
    Shorts,
    Skirt,
    /// A dress covers the torso too (LIP's "Dress").
    Dress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LowerPattern {
    Plain,
    Stripes,
    Dots,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    pub id: u32,
    pub gender: Gender,
    pub age: AgeGroup,
    pub skin: [u8; 3],
    pub hair: Colour,
    pub long_hair: bool,
    /// Body width multiplier (build cue).
    pub build: f32,
    pub upper: Colour,
    pub upper_second: Colour,
    pub pattern: Pattern,
    pub long_sleeves: bool,
    pub coat: Option<Colour>,
    pub lower: Lower,
    pub lower_colour: Colour,
    pub lower_pattern: LowerPattern,
    pub shoes: Colour,
    pub boots: bool,
    pub hat: Option<Colour>,
    pub glasses: bool,
    pub hand_bag: Option<Colour>,
    pub shoulder_bag: Option<Colour>,
    pub backpack: Option<Colour>,
    /// Carries a box in front (PA-100K's HoldObjectsInFront).
    pub holds_object: bool,
}

fn pick<R: Rng>(rng: &mut R, xs: &[Colour]) -> Colour {
    *xs.choose(rng).expect("non-empty palette")
}

impl Identity {
    pub fn sample<R: Rng>(id: u32, rng: &mut R) -> Self {
        let gender = if rng.gen_bool(0.5) {
            Gender::Female
        } else {
            Gender::Male
        };
        let age = match rng.gen_range(0..10) {
            0 => AgeGroup::Child,
            1 => AgeGroup::Senior,
            _ => AgeGroup::Adult,
        };
        let hair = if age == AgeGroup::Senior {
            HAIR_COLOURS[4]
        } else {
            pick(rng, &HAIR_COLOURS[..4])
        };
        let long_hair = rng.gen_bool(if gender == Gender::Female { 0.75 } else { 0.1 });
        let lower = match (gender, rng.gen_range(0..10)) {
            (Gender::Female, 0..=2) => Lower::Skirt,
            (Gender::Female, 3..=4) => Lower::Dress,
            (_, 0..=1) => Lower::Shorts,
            _ => Lower::Trousers,
        };
        let upper = pick(rng, &GARMENT_COLOURS);
        let mut upper_second = pick(rng, &GARMENT_COLOURS);
        if upper_second == upper {
            upper_second = GARMENT_COLOURS[(GARMENT_COLOURS
                .iter()
                .position(|c| *c == upper)
                .unwrap_or(0)
                + 5)
                % GARMENT_COLOURS.len()];
        }
        let pattern = match rng.gen_range(0..10) {
            0..=4 => Pattern::Plain,
            5 | 6 => Pattern::Stripes,
            7 => Pattern::Logo,
            8 => Pattern::Plaid,
            _ => Pattern::Splice,
        };
        let lower_pattern = match (lower, rng.gen_range(0..10)) {
            (Lower::Trousers | Lower::Skirt, 0) => LowerPattern::Stripes,
            (Lower::Trousers | Lower::Skirt, 1) => LowerPattern::Dots,
            _ => LowerPattern::Plain,
        };
        let maybe = |rng: &mut R, p: f64| rng.gen_bool(p).then(|| pick(rng, &GARMENT_COLOURS));
        let backpack = maybe(rng, 0.25);
        let shoulder_bag = if backpack.is_none() {
            maybe(rng, 0.2)
        } else {
            None
        };
        let holds_object = rng.gen_bool(0.08);
        let hand_bag = if holds_object { None } else { maybe(rng, 0.15) };
        Self {
            id,
            gender,
            age,
            skin: *SKIN_TONES.choose(rng).expect("non-empty"),
            hair,
            long_hair,
            build: match gender {
                Gender::Female => rng.gen_range(0.85..1.0),
                Gender::Male => rng.gen_range(0.95..1.15),
            },
            upper,
            upper_second,
            pattern,
            long_sleeves: rng.gen_bool(0.5),
            coat: maybe(rng, 0.15),
            lower,
            lower_colour: pick(rng, &GARMENT_COLOURS),
            lower_pattern,
            shoes: pick(rng, &GARMENT_COLOURS[..3]),
            boots: rng.gen_bool(0.15),
            hat: maybe(rng, 0.15),
            glasses: rng.gen_bool(0.2),
            hand_bag,
            shoulder_bag,
            backpack,
            holds_object,
        }
    }
}
