//! LIP's 20 human-parsing classes (ids as in the LIP dataset).

pub const BACKGROUND: u8 = 0;
pub const HAT: u8 = 1;
pub const HAIR: u8 = 2;
pub const GLOVE: u8 = 3;
pub const SUNGLASSES: u8 = 4;
pub const UPPER_CLOTHES: u8 = 5;
pub const DRESS: u8 = 6;
pub const COAT: u8 = 7;
pub const SOCKS: u8 = 8;
pub const PANTS: u8 = 9;
pub const JUMPSUITS: u8 = 10;
pub const SCARF: u8 = 11;
pub const SKIRT: u8 = 12;
pub const FACE: u8 = 13;
pub const LEFT_ARM: u8 = 14;
pub const RIGHT_ARM: u8 = 15;
pub const LEFT_LEG: u8 = 16;
pub const RIGHT_LEG: u8 = 17;
pub const LEFT_SHOE: u8 = 18;
pub const RIGHT_SHOE: u8 = 19;

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

/// Classes the renderer never produces (their ids still exist in the label space).
pub const NOT_RENDERED: [u8; 4] = [GLOVE, SOCKS, JUMPSUITS, SCARF];

/// A fixed colour per class for overlays.
pub fn palette(class: u8) -> [u8; 3] {
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
    P[class as usize % 20]
}

/// Left/right class pairs, for flipping label maps.
pub const FLIP_SWAPS: [(u8, u8); 3] = [
    (LEFT_ARM, RIGHT_ARM),
    (LEFT_LEG, RIGHT_LEG),
    (LEFT_SHOE, RIGHT_SHOE),
];
