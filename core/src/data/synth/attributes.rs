//! PA-100K's 26 attributes of a rendered image, as an annotator would see them (what faces away
//! from the camera is not marked).

use super::identity::{AgeGroup, Gender, Identity, Lower, LowerPattern, Pattern};
use super::pose::{Pose, View};

/// Labels in `formats::pa100k::ATTRIBUTES` order. Every attribute is rendered.
pub fn pa100k_labels(who: &Identity, pose: &Pose) -> [u8; 26] {
    let back = matches!(pose.view, View::Back);
    let b = |x: bool| x as u8;
    let long_sleeve = who.long_sleeves || who.coat.is_some();
    [
        b(who.gender == Gender::Female),
        b(who.age == AgeGroup::Senior),
        b(who.age == AgeGroup::Adult),
        b(who.age == AgeGroup::Child),
        b(matches!(pose.view, View::Front)),
        b(matches!(pose.view, View::Side { .. })),
        b(back),
        b(who.hat.is_some()),
        b(who.glasses && !back),
        b(who.hand_bag.is_some()),
        b(who.shoulder_bag.is_some()),
        b(who.backpack.is_some()),
        b(who.holds_object && !back),
        b(!long_sleeve),
        b(long_sleeve),
        b(who.pattern == Pattern::Stripes && who.coat.is_none()),
        b(who.pattern == Pattern::Logo && who.coat.is_none() && !back),
        b(who.pattern == Pattern::Plaid && who.coat.is_none()),
        b(who.pattern == Pattern::Splice && who.coat.is_none()),
        b(who.lower_pattern == LowerPattern::Stripes),
        b(who.lower_pattern == LowerPattern::Dots),
        b(who.coat.is_some()),
        b(who.lower == Lower::Trousers),
        b(who.lower == Lower::Shorts),
        b(matches!(who.lower, Lower::Skirt | Lower::Dress)),
        b(who.boots),
    ]
}
