//! Geometric augmentations keep every target aligned with the pixels: checked on rendered synthetic
//! people, by the colours under each label and the labels under each keypoint.

use std::collections::BTreeMap;

use clasp_core::data::augment::geometric::{crop_resize, hflip, CropBox};
use clasp_core::data::augment::multicrop::{multi_crop, MultiCropConfig};
use clasp_core::data::augment::{Image, LabelMap, Sample};
use clasp_core::data::synth::dataset::{cameras, plan, render_job, Kind, SynthOptions};
use clasp_core::data::synth::lip;
use rand::SeedableRng;

fn samples(n: usize) -> Vec<Sample> {
    let opts = SynthOptions {
        out: Default::default(),
        identities: 12,
        images_per_id: 2,
        cameras: 3,
        seed: 3,
        height: 256,
        width: 128,
        jpeg_quality: 90,
        threads: 1,
    };
    let cams = cameras(&opts);
    plan(&opts)
        .iter()
        .filter(|j| j.kind == Kind::Person)
        .take(n)
        .map(|j| {
            let r = render_job(&opts, &cams, j);
            Sample {
                image: Image::from_rgb8(r.width, r.height, &r.rgb),
                labels: Some(LabelMap {
                    width: r.width,
                    height: r.height,
                    data: r.labels.clone(),
                    ignore: 255,
                    flip_swaps: lip::FLIP_SWAPS.to_vec(),
                }),
                grids: vec![],
                keypoints: Some(r.keypoints.to_vec()),
            }
        })
        .collect()
}

/// Mean colour of each class with enough pixels.
fn class_colours(s: &Sample) -> BTreeMap<u8, [f32; 3]> {
    let l = s.labels.as_ref().unwrap();
    let mut acc: BTreeMap<u8, ([f32; 3], usize)> = BTreeMap::new();
    for y in 0..l.height {
        for x in 0..l.width {
            let c = l.data[y * l.width + x];
            if c == l.ignore {
                continue;
            }
            let p = s.image.pixel(x, y);
            let e = acc.entry(c).or_insert(([0.0; 3], 0));
            for (acc, v) in e.0.iter_mut().zip(p) {
                *acc += v;
            }
            e.1 += 1;
        }
    }
    acc.into_iter()
        .filter(|(_, (_, n))| *n >= 40)
        .map(|(c, (sum, n))| (c, sum.map(|v| v / n as f32)))
        .collect()
}

/// Labels and pixels agree: each class keeps its colour; keypoints keep their class.
fn assert_aligned(orig: &Sample, aug: &Sample, flipped: bool) {
    let (a, b) = (class_colours(orig), class_colours(aug));
    let l = aug.labels.as_ref().unwrap();
    let mut compared = 0;
    // The backdrop differs between crops; every body class must keep its colour. (A flipped
    // left arm is relabelled left arm again, so classes compare directly.)
    let _ = flipped;
    for (c, colour) in b.iter().filter(|(c, _)| **c != lip::BACKGROUND) {
        if let Some(o) = a.get(c) {
            let d = (0..3).map(|k| (o[k] - colour[k]).abs()).fold(0.0, f32::max);
            // Left/right garments share a colour, so this is robust to the swap; mixed-pattern
            // classes and resampling move means a little.
            assert!(d < 25.0, "class {c}: mean colour {o:?} vs {colour:?}");
            compared += 1;
        }
    }
    assert!(compared >= 3, "too few classes compared");
    // Each visible keypoint sits on the same class as before (after the left/right swap).
    let (ko, ka) = (
        orig.keypoints.as_ref().unwrap(),
        aug.keypoints.as_ref().unwrap(),
    );
    let lo = orig.labels.as_ref().unwrap();
    let at = |m: &LabelMap, x: f32, y: f32| {
        m.data[(y as usize).min(m.height - 1) * m.width + (x as usize).min(m.width - 1)]
    };
    let (mut same, mut total) = (0, 0);
    for (i, &p) in ko.iter().enumerate() {
        let j = if flipped {
            clasp_core::data::augment::sample::flipped_keypoint(i)
        } else {
            i
        };
        let q = ka[j];
        if p[2] != 2.0 || q[2] == 0.0 {
            continue;
        }
        total += 1;
        // Joints sit on part boundaries, so accept the class anywhere within a pixel.
        let want = at(lo, p[0], p[1]);
        let found = [-1.0f32, 0.0, 1.0].iter().any(|dy| {
            [-1.0f32, 0.0, 1.0].iter().any(|dx| {
                let got = at(l, (q[0] + dx).max(0.0), (q[1] + dy).max(0.0));
                (if flipped { l.flipped_class(got) } else { got }) == want
            })
        });
        same += found as usize;
    }
    if total >= 4 {
        assert!(
            same * 10 >= total * 8,
            "only {same}/{total} keypoints keep their class"
        );
    }
}

#[test]
fn flip_keeps_labels_keypoints_and_pixels_together() {
    for s in samples(6) {
        let f = hflip(&s);
        assert_aligned(&s, &f, true);
        // Left stays left: a flipped left wrist is still labelled as the person's left wrist and
        // lands where the mirrored pixel is.
        let (ko, kf) = (s.keypoints.as_ref().unwrap(), f.keypoints.as_ref().unwrap());
        if ko[9][2] > 0.0 {
            assert_eq!(kf[10], [128.0 - ko[9][0], ko[9][1], ko[9][2]]);
        }
        let back = hflip(&f);
        assert!(
            back.image == s.image && back.labels == s.labels,
            "flipping twice is the identity"
        );
        for (p, q) in back
            .keypoints
            .unwrap()
            .iter()
            .zip(s.keypoints.as_ref().unwrap())
        {
            assert!((0..3).all(|k| (p[k] - q[k]).abs() < 1e-4), "{p:?} vs {q:?}");
        }
    }
}

#[test]
fn crops_keep_labels_keypoints_and_pixels_together() {
    for s in samples(6) {
        for b in [
            CropBox {
                x: 10.0,
                y: 20.0,
                w: 100.0,
                h: 200.0,
            },
            CropBox {
                x: 0.0,
                y: 64.0,
                w: 128.0,
                h: 128.0,
            },
            CropBox {
                x: 30.5,
                y: 10.25,
                w: 64.0,
                h: 96.0,
            },
        ] {
            let c = crop_resize(&s, b, 64, 128);
            assert_aligned(&s, &c, false);
            for (o, n) in s
                .keypoints
                .as_ref()
                .unwrap()
                .iter()
                .zip(c.keypoints.as_ref().unwrap())
            {
                if n[2] > 0.0 {
                    assert!((n[0] - (o[0] - b.x) * 64.0 / b.w).abs() < 1e-4);
                }
            }
        }
    }
}

#[test]
fn multi_crop_views_have_the_configured_sizes_and_stay_aligned() {
    let cfg = MultiCropConfig {
        // Geometry only, so colours can be compared.
        jitter_p: 0.0,
        grayscale_p: 0.0,
        ..Default::default()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for s in samples(3) {
        let views = multi_crop(&s, &cfg, &mut rng);
        assert_eq!(views.len(), 2 + cfg.n_local);
        assert_eq!((views[0].image.height, views[0].image.width), (256, 128));
        assert_eq!((views[2].image.height, views[2].image.width), (128, 64));
        for v in &views {
            let l = v.labels.as_ref().unwrap();
            assert_eq!((l.height, l.width), (v.image.height, v.image.width));
        }
    }
}

/// A patch-grid map (as pseudo-labels are) follows the crop at its own resolution: after the
/// crop it still agrees with the full-resolution labels sampled at the grid cells' centres.
#[test]
fn patch_grids_follow_the_geometry() {
    for s in samples(4) {
        let l = s.labels.as_ref().unwrap();
        // 16×8 grid: the label at each 16×16 cell centre.
        let (gw, gh) = (l.width / 16, l.height / 16);
        let grid = LabelMap {
            width: gw,
            height: gh,
            data: (0..gh)
                .flat_map(|y| (0..gw).map(move |x| (x, y)))
                .map(|(x, y)| l.data[(16 * y + 8) * l.width + 16 * x + 8])
                .collect(),
            ignore: 255,
            flip_swaps: lip::FLIP_SWAPS.to_vec(),
        };
        let s = Sample {
            grids: vec![grid],
            ..s
        };
        let out = hflip(&crop_resize(
            &s,
            CropBox {
                x: 16.0,
                y: 32.0,
                w: 96.0,
                h: 192.0,
            },
            128,
            256,
        ));
        let (g, lo) = (&out.grids[0], out.labels.as_ref().unwrap());
        assert_eq!(
            (g.width, g.height),
            (8, 16),
            "the grid keeps its 1/16 ratio"
        );
        let mut agree = 0;
        for y in 0..g.height {
            for x in 0..g.width {
                // The grid cell's source point, seen in the augmented full-resolution map.
                let v = g.data[y * g.width + x];
                let near = (0..16).any(|dy| {
                    (0..16).any(|dx| lo.data[(16 * y + dy) * lo.width + 16 * x + dx] == v)
                });
                agree += near as usize;
            }
        }
        assert!(
            agree * 100 >= g.width * g.height * 95,
            "{agree}/{} grid cells agree",
            g.width * g.height
        );
    }
}
