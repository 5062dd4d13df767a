//! Captions of a rendered person in several phrasings (for training the CLIP teacher).

use super::identity::{AgeGroup, Gender, Identity, Lower, LowerPattern, Pattern};
use super::pose::{Action, Pose, View};

fn person_noun(who: &Identity) -> &'static str {
    match (who.gender, who.age) {
        (Gender::Female, AgeGroup::Child) => "girl",
        (Gender::Male, AgeGroup::Child) => "boy",
        (Gender::Female, AgeGroup::Senior) => "old woman",
        (Gender::Male, AgeGroup::Senior) => "old man",
        (Gender::Female, AgeGroup::Adult) => "woman",
        (Gender::Male, AgeGroup::Adult) => "man",
    }
}

fn upper_phrase(who: &Identity) -> String {
    let pattern = match who.pattern {
        Pattern::Plain => String::new(),
        Pattern::Stripes => "striped ".into(),
        Pattern::Logo => "logo ".into(),
        Pattern::Plaid => "plaid ".into(),
        Pattern::Splice => format!("{}-and-", who.upper_second.name),
    };
    let sleeves = if who.long_sleeves {
        "long-sleeved"
    } else {
        "short-sleeved"
    };
    let garment = if who.lower == Lower::Dress {
        "dress"
    } else {
        "shirt"
    };
    format!("a {} {pattern}{sleeves} {garment}", who.upper.name)
}

fn lower_phrase(who: &Identity) -> Option<String> {
    let pattern = match who.lower_pattern {
        LowerPattern::Plain => "",
        LowerPattern::Stripes => "striped ",
        LowerPattern::Dots => "polka-dot ",
    };
    let item = match who.lower {
        Lower::Trousers => "trousers",
        Lower::Shorts => "shorts",
        Lower::Skirt => "skirt",
        Lower::Dress => return None,
    };
    let article = if who.lower == Lower::Skirt { "a " } else { "" };
    Some(format!(
        "{article}{} {pattern}{item}",
        who.lower_colour.name
    ))
}

fn carried(who: &Identity) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = who.backpack {
        out.push(format!("a {} backpack", c.name));
    }
    if let Some(c) = who.shoulder_bag {
        out.push(format!("a {} shoulder bag", c.name));
    }
    if let Some(c) = who.hand_bag {
        out.push(format!("a {} handbag", c.name));
    }
    if who.holds_object {
        out.push("a box".into());
    }
    out
}

fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Short captions that each say one thing about the person, the way partial alt text does —
/// including what is absent ("without a hat"), so a teacher trained on them can tell a
/// positive sentence from its negative.
fn aspect_captions(who: &Identity, pose: &Pose) -> Vec<String> {
    let with = |present: bool, thing: &str| {
        format!(
            "a person {} {thing}",
            if present { "with" } else { "without" }
        )
    };
    let age = match who.age {
        AgeGroup::Child => "a child",
        AgeGroup::Adult => "an adult",
        AgeGroup::Senior => "an old person",
    };
    let view = match pose.view {
        View::Front => "seen from the front",
        View::Back => "seen from behind",
        View::Side { .. } => "seen from the side",
    };
    let top = match (who.coat.is_some(), who.pattern) {
        (true, _) => "a coat",
        (false, Pattern::Plain) => "a plain top",
        (false, Pattern::Stripes) => "a striped top",
        (false, Pattern::Logo) => "a top with a logo",
        (false, Pattern::Plaid) => "a plaid top",
        (false, Pattern::Splice) => "a two-coloured top",
    };
    let (article, lower) = match who.lower {
        Lower::Trousers => ("", "trousers"),
        Lower::Shorts => ("", "shorts"),
        Lower::Skirt => ("a ", "skirt"),
        Lower::Dress => ("a ", "dress"),
    };
    let lower_pattern = match who.lower_pattern {
        LowerPattern::Plain => "plain",
        LowerPattern::Stripes => "striped",
        LowerPattern::Dots => "polka-dot",
    };
    let sex = match who.gender {
        Gender::Female => "a female person",
        Gender::Male => "a male person",
    };
    vec![
        format!("a photo of {age}"),
        sex.to_string(),
        format!("a person {view}"),
        format!(
            "a person in {} sleeves",
            if who.long_sleeves || who.coat.is_some() {
                "long"
            } else {
                "short"
            }
        ),
        format!("a person in {top}"),
        format!("a person in {article}{lower_pattern} {lower}"),
        with(who.hat.is_some(), "a hat"),
        with(who.glasses, "glasses"),
        with(who.coat.is_some(), "a coat"),
        // One caption per kind of bag: "carrying a red backpack and a blue handbag" would make
        // each colour pair its own class and say nothing about one bag on its own.
        with(who.backpack.is_some(), "a backpack"),
        with(who.shoulder_bag.is_some(), "a shoulder bag"),
        with(who.hand_bag.is_some(), "a handbag"),
        with(who.holds_object, "a box"),
        format!("a person in {}", if who.boots { "boots" } else { "shoes" }),
    ]
}

/// Three phrasings of the whole description, then the short aspect captions.
pub fn captions(who: &Identity, pose: &Pose) -> Vec<String> {
    let noun = person_noun(who);
    let hair = format!(
        "{} {} hair",
        if who.long_hair { "long" } else { "short" },
        who.hair.name
    );
    let mut wear = vec![upper_phrase(who)];
    if let Some(l) = lower_phrase(who) {
        wear.push(l);
    }
    wear.push(format!(
        "{} {}",
        who.shoes.name,
        if who.boots { "boots" } else { "shoes" }
    ));
    if let Some(c) = who.coat {
        wear.push(format!("a {} coat", c.name));
    }
    if let Some(h) = who.hat {
        wear.push(format!("a {} hat", h.name));
    }
    if who.glasses {
        wear.push("glasses".into());
    }
    let carry = carried(who);
    let carry_clause = if carry.is_empty() {
        String::new()
    } else {
        format!(", carrying {}", join(&carry))
    };
    let view = match pose.view {
        View::Front => "seen from the front",
        View::Back => "seen from behind",
        View::Side { .. } => "seen from the side",
    };
    let doing = match pose.action {
        Action::Walking => "walking",
        Action::Standing => "standing",
        Action::ArmsRaised => "with raised arms",
        Action::Carrying => "carrying something",
    };
    let mut all = vec![
        format!("a {noun} with {hair} wearing {}{carry_clause}", join(&wear)),
        format!("a photo of a {noun} {doing}, {view}, in {}", join(&wear)),
        format!(
            "{} {noun}, {hair}, {}{}",
            if noun.starts_with('o') { "an" } else { "a" },
            join(&wear),
            if carry.is_empty() {
                ", no bag".to_string()
            } else {
                format!(", with {}", join(&carry))
            }
        ),
    ];
    all.extend(aspect_captions(who, pose));
    all
}

/// Captions of a backdrop without a person.
pub fn empty_scene_captions() -> Vec<String> {
    vec![
        "an empty street with no person".into(),
        "a wall and the ground, no person".into(),
        "the background".into(),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::config::teacher::AttributePrompt;

    fn people(n: u32) -> Vec<Vec<String>> {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        (1..=n)
            .map(|id| {
                let who = Identity::sample(id, &mut rng);
                let pose = Pose::sample(&mut rng, who.holds_object);
                captions(&who, &pose)
            })
            .collect()
    }

    #[test]
    fn every_person_has_the_same_aspects_each_a_small_set_of_classes() {
        let all = people(300);
        let n = all[0].len();
        assert!(all.iter().all(|c| c.len() == n));
        // After the whole descriptions, the k-th caption of everyone says the same kind of
        // thing: a handful of alternatives (a class), never a free description.
        for k in 3..n {
            let classes: HashSet<&str> = all.iter().map(|c| c[k].as_str()).collect();
            assert!((2..=12).contains(&classes.len()), "aspect {k}: {classes:?}");
        }
    }

    /// The synthetic teacher's attribute sentences are captions it was trained on: a sentence
    /// no person is ever described by would be a probe in words the teacher never read.
    #[test]
    fn synthetic_attribute_sentences_are_aspect_captions() {
        let seen: HashSet<String> = people(3000).into_iter().flatten().collect();
        let recipe: toml::Value =
            toml::from_str(include_str!("../../../../configs/teacher/synthetic.toml")).unwrap();
        let attributes: Vec<AttributePrompt> =
            recipe["label"]["attributes"].clone().try_into().unwrap();
        assert_eq!(attributes.len(), 26);
        for a in &attributes {
            for s in a.positive.iter().chain(&a.negative) {
                assert!(seen.contains(s), "{}: {s:?} is no caption", a.name);
            }
        }
    }
}
