//! Writes a synthetic dataset in the real formats: Market-1501 (ReID), LIP (parsing), COCO
//! keypoints (pose), a PA-100K table (attributes) and captions. Every image is rendered once,
//! encoded once, and hard-linked into each format's folder.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::attributes::pa100k_labels;
use super::captions::{captions, empty_scene_captions};
use super::identity::Identity;
use super::lip;
use super::rng_for;
use super::scene::{render, Camera, Rendered};
use crate::data::formats::coco::{CocoAnnotation, CocoImage, CocoKeypoints};
use crate::data::formats::market1501::{
    MarketName, GALLERY_DIR, QUERY_DIR, TRAIN_DIR, VAL_GALLERY_DIR, VAL_QUERY_DIR,
};
use crate::data::formats::pa100k::{self, AttributeRow};

#[derive(Debug, Clone, Serialize)]
pub struct SynthOptions {
    pub out: PathBuf,
    pub identities: u32,
    pub images_per_id: u32,
    pub cameras: u32,
    pub seed: u64,
    pub height: usize,
    pub width: usize,
    pub jpeg_quality: u8,
    pub threads: usize,
}

/// Which disjoint group of people an image shows: models learn from `Train`, choose epochs and
/// recipes on `Val`, and are scored once on `Test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    /// The split's name in the LIP, COCO and PA-100K files (`val_id.txt`, `test.csv`, …).
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// An image's place in a retrieval split (Market-1501's folders).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ReidRole {
    Train,
    Query,
    Gallery,
}

/// How many of `identities` people are trained on and how many validate: half train, of the
/// rest two fifths validate and three fifths test (100 → 50 / 20 / 30).
pub fn split_sizes(identities: u32) -> (u32, u32) {
    let train = identities.div_ceil(2);
    (train, (identities - train) * 2 / 5)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    Person,
    /// A backdrop without a person: Market's `0000` distractors.
    Distractor,
    /// A person image of no identity: Market's `-1` junk.
    Junk,
}

/// One image to render.
#[derive(Debug, Clone)]
pub struct Job {
    pub index: usize,
    pub pid: u32,
    pub shot: u32,
    pub cam: u32,
    pub split: Split,
    pub role: ReidRole,
    pub kind: Kind,
    pub name: MarketName,
}

impl Job {
    pub fn stem(&self) -> String {
        self.name.file_name().trim_end_matches(".jpg").to_string()
    }

    fn reid_dir(&self) -> &'static str {
        match (self.split, self.role) {
            (Split::Train, _) | (_, ReidRole::Train) => TRAIN_DIR,
            (Split::Val, ReidRole::Query) => VAL_QUERY_DIR,
            (Split::Val, ReidRole::Gallery) => VAL_GALLERY_DIR,
            (Split::Test, ReidRole::Query) => QUERY_DIR,
            (Split::Test, ReidRole::Gallery) => GALLERY_DIR,
        }
    }

    pub fn is_train(&self) -> bool {
        self.split == Split::Train
    }

    /// Whether the parsing, pose and attribute files list this image: every image of a training
    /// identity, and the first image of each validation and test identity — so that a scored
    /// sample is a person, and resampling samples is resampling people.
    pub fn in_task_sets(&self) -> bool {
        self.kind == Kind::Person && (self.split == Split::Train || self.shot == 0)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SynthSummary {
    pub images: usize,
    pub train_ids: u32,
    pub val_ids: u32,
    pub test_ids: u32,
    pub train_images: usize,
    /// Every image of the validation identities (queries, gallery, its distractors).
    pub val_images: usize,
    /// The test identities' queries and gallery (with the test gallery's distractors).
    pub query: usize,
    pub gallery: usize,
    pub distractors: usize,
    pub seconds: f64,
    /// LIP classes that exist in the label space but are never rendered.
    pub lip_classes_not_rendered: Vec<&'static str>,
    /// PA-100K attributes that are constant because they are not rendered.
    pub attributes_not_rendered: Vec<&'static str>,
}

pub fn cameras(opts: &SynthOptions) -> Vec<Camera> {
    (1..=opts.cameras)
        .map(|c| Camera::sample(c, &mut rng_for(opts.seed, &[1, c as u64])))
        .collect()
}

pub fn identity(opts: &SynthOptions, pid: u32) -> Identity {
    Identity::sample(pid, &mut rng_for(opts.seed, &[2, pid as u64]))
}

/// Every image of the dataset: train identities first, then validation and test identities
/// (queries in up to two of their cameras, always leaving a gallery image, the rest gallery),
/// then the distractors and junk of each gallery.
pub fn plan(opts: &SynthOptions) -> Vec<Job> {
    let (n_train, n_val) = split_sizes(opts.identities);
    let mut jobs = Vec::new();
    fn push(jobs: &mut Vec<Job>, job: (u32, u32, u32, Split, ReidRole, Kind), market_pid: i32) {
        let (pid, shot, cam, split, role, kind) = job;
        let index = jobs.len();
        jobs.push(Job {
            index,
            pid,
            shot,
            cam,
            split,
            role,
            kind,
            name: MarketName {
                pid: market_pid,
                cam,
                seq: 1 + shot % 3,
                frame: 100 + 37 * shot + 3 * pid,
                det: 1 + (index % 3) as u32,
            },
        });
    }
    let queries_per_id = opts.images_per_id.saturating_sub(1).min(2) as usize;
    for pid in 1..=opts.identities {
        let split = if pid <= n_train {
            Split::Train
        } else if pid <= n_train + n_val {
            Split::Val
        } else {
            Split::Test
        };
        let mut query_cams = Vec::new();
        for shot in 0..opts.images_per_id {
            // Cameras cycle from a per-identity offset, so every identity is seen by several.
            let cam = (pid * 5 + shot) % opts.cameras + 1;
            let role = if split == Split::Train {
                ReidRole::Train
            } else if query_cams.len() < queries_per_id && !query_cams.contains(&cam) {
                query_cams.push(cam);
                ReidRole::Query
            } else {
                ReidRole::Gallery
            };
            let job = (pid, shot, cam, split, role, Kind::Person);
            push(&mut jobs, job, pid as i32);
        }
    }
    for split in [Split::Val, Split::Test] {
        let gallery = jobs
            .iter()
            .filter(|j| j.split == split && j.role == ReidRole::Gallery)
            .count() as u32;
        // Distractor shots are numbered apart per split so that no two images share a render.
        let base = if split == Split::Val { 1000 } else { 5000 };
        for d in 0..gallery.div_ceil(10) {
            let cam = d % opts.cameras + 1;
            let distractor = (0, base + d, cam, split, ReidRole::Gallery, Kind::Distractor);
            push(&mut jobs, distractor, 0);
            let pid = 1 + d % opts.identities.max(1);
            let junk = (pid, base + d, cam, split, ReidRole::Gallery, Kind::Junk);
            push(&mut jobs, junk, -1);
        }
    }
    jobs
}

/// Renders one job: the same pixels whatever thread or order renders it.
pub fn render_job(opts: &SynthOptions, cameras: &[Camera], job: &Job) -> Rendered {
    let who = identity(opts, job.pid.max(1));
    let cam = &cameras[(job.cam - 1) as usize];
    let mut rng = rng_for(
        opts.seed,
        &[3, job.pid as u64, job.shot as u64, job.kind as u64],
    );
    render(
        &who,
        cam,
        opts.width,
        opts.height,
        job.kind != Kind::Distractor,
        &mut rng,
    )
}

/// What a finished image contributes to the annotation files.
struct Done {
    job: Job,
    rendered: Rendered,
}

fn encode_jpeg(r: &Rendered, quality: u8) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality).encode(
        &r.rgb,
        r.width as u32,
        r.height as u32,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(bytes)
}

fn link_or_copy(src: &Path, dst: &Path) -> Result<()> {
    if dst.exists() {
        std::fs::remove_file(dst)?;
    }
    if std::fs::hard_link(src, dst).is_err() {
        std::fs::copy(src, dst).with_context(|| format!("copying to {}", dst.display()))?;
    }
    Ok(())
}

fn write_job(opts: &SynthOptions, job: &Job, r: &Rendered) -> Result<()> {
    let root = &opts.out;
    let reid = root
        .join("reid")
        .join(job.reid_dir())
        .join(job.name.file_name());
    std::fs::write(&reid, encode_jpeg(r, opts.jpeg_quality)?)
        .with_context(|| format!("writing {}", reid.display()))?;
    if !job.in_task_sets() {
        return Ok(());
    }
    let stem = job.stem();
    let split = job.split.name();
    let parsing = root.join("parsing");
    link_or_copy(&reid, &parsing.join(format!("{split}_images/{stem}.jpg")))?;
    let labels = image::GrayImage::from_raw(r.width as u32, r.height as u32, r.labels.clone())
        .context("label buffer size")?;
    let png = parsing.join(format!("{split}_segmentations/{stem}.png"));
    labels
        .save(&png)
        .with_context(|| format!("writing {}", png.display()))?;
    link_or_copy(&reid, &root.join(format!("pose/images/{stem}.jpg")))?;
    link_or_copy(&reid, &root.join(format!("attributes/images/{stem}.jpg")))?;
    Ok(())
}

const SPLITS: [Split; 3] = [Split::Train, Split::Val, Split::Test];

/// Renders and writes everything; returns what it wrote.
/// What `generate` writes at the top of its folder; `synth.json` last, as the mark of a
/// complete dataset.
pub const WRITTEN: [&str; 6] = [
    "reid",
    "parsing",
    "pose",
    "attributes",
    "captions.jsonl",
    "synth.json",
];

/// Empties `out` of an earlier (or interrupted) synthetic dataset so that a new one does not mix
/// with its images. Refused, naming the entry, when the folder holds anything `generate` does
/// not write: it is not a synthetic dataset to replace.
pub fn clear_previous(out: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(());
    };
    let mut ours = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("listing {}", out.display()))?;
        let name = e.file_name().to_string_lossy().to_string();
        if !WRITTEN.contains(&name.as_str()) && name != ".synth.json.tmp" {
            bail!(
                "{} holds `{name}`, which `clasp synth` does not write: not a synthetic dataset \
                 to replace; choose another --out",
                out.display()
            );
        }
        ours.push(e.path());
    }
    for p in ours {
        if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        }
        .with_context(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

pub fn generate(opts: &SynthOptions, progress: &(dyn Fn(u64) + Sync)) -> Result<SynthSummary> {
    let start = Instant::now();
    let root = &opts.out;
    let mut dirs: Vec<String> = [
        TRAIN_DIR,
        QUERY_DIR,
        GALLERY_DIR,
        VAL_QUERY_DIR,
        VAL_GALLERY_DIR,
    ]
    .iter()
    .map(|d| format!("reid/{d}"))
    .collect();
    for split in SPLITS {
        dirs.push(format!("parsing/{}_images", split.name()));
        dirs.push(format!("parsing/{}_segmentations", split.name()));
    }
    dirs.extend(["pose/images", "pose/annotations", "attributes/images"].map(String::from));
    for dir in dirs {
        std::fs::create_dir_all(root.join(&dir))
            .with_context(|| format!("creating {}", root.join(&dir).display()))?;
    }
    let cams = cameras(opts);
    let jobs = plan(opts);
    let threads = opts.threads.max(1);
    let chunk = jobs.len().div_ceil(threads).max(1);
    let mut done: Vec<Done> = std::thread::scope(|s| -> Result<Vec<Done>> {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                let cams = &cams;
                s.spawn(move || -> Result<Vec<Done>> {
                    let mut out = Vec::with_capacity(part.len());
                    for job in part {
                        let rendered = render_job(opts, cams, job);
                        write_job(opts, job, &rendered)?;
                        progress(1);
                        out.push(Done {
                            job: job.clone(),
                            rendered,
                        });
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().expect("synth worker panicked")?);
        }
        Ok(all)
    })?;
    done.sort_by_key(|d| d.job.index);
    write_annotations(opts, &done)?;

    let count = |f: &dyn Fn(&Job) -> bool| done.iter().filter(|d| f(&d.job)).count();
    let (n_train, n_val) = split_sizes(opts.identities);
    let test = |j: &Job| j.split == Split::Test;
    let summary = SynthSummary {
        images: done.len(),
        train_ids: n_train,
        val_ids: n_val,
        test_ids: opts.identities - n_train - n_val,
        train_images: count(&|j| j.split == Split::Train),
        val_images: count(&|j| j.split == Split::Val),
        query: count(&|j| test(j) && j.role == ReidRole::Query),
        gallery: count(&|j| test(j) && j.role == ReidRole::Gallery),
        distractors: count(&|j| j.kind != Kind::Person),
        seconds: start.elapsed().as_secs_f64(),
        lip_classes_not_rendered: lip::NOT_RENDERED
            .iter()
            .map(|c| lip::CLASS_NAMES[*c as usize])
            .collect(),
        attributes_not_rendered: vec![],
    };
    // Last, and whole or not at all: its presence says the dataset is complete.
    let marker = root.join("synth.json");
    let tmp = root.join(".synth.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_string_pretty(&serde_json::json!({ "options": opts, "summary": summary }))?,
    )
    .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &marker).with_context(|| format!("writing {}", marker.display()))?;
    Ok(summary)
}

fn write_annotations(opts: &SynthOptions, done: &[Done]) -> Result<()> {
    let root = &opts.out;
    let listed: Vec<&Done> = done.iter().filter(|d| d.job.in_task_sets()).collect();
    let of_split = |split: Split| listed.iter().filter(move |d| d.job.split == split);
    // LIP id lists and class names.
    for split in SPLITS {
        let ids: String = of_split(split)
            .map(|d| format!("{}\n", d.job.stem()))
            .collect();
        std::fs::write(root.join(format!("parsing/{}_id.txt", split.name())), ids)?;
    }
    let classes: String = lip::CLASS_NAMES.iter().map(|c| format!("{c}\n")).collect();
    std::fs::write(root.join("parsing/classes.txt"), classes)?;
    // COCO keypoints, one file per split.
    for split in SPLITS {
        let mut coco = CocoKeypoints {
            images: vec![],
            annotations: vec![],
            categories: vec![CocoKeypoints::person_category()],
        };
        for d in of_split(split) {
            let id = d.job.index as u64 + 1;
            let r = &d.rendered;
            coco.images.push(CocoImage {
                id,
                file_name: format!("{}.jpg", d.job.stem()),
                width: r.width as u32,
                height: r.height as u32,
            });
            coco.annotations.push(CocoAnnotation {
                id,
                image_id: id,
                category_id: 1,
                keypoints: r.keypoints.iter().flatten().copied().collect(),
                num_keypoints: r.keypoints.iter().filter(|k| k[2] > 0.0).count() as u32,
                bbox: r.bbox,
                area: r.area as f32,
                iscrowd: 0,
            });
        }
        let file = format!("pose/annotations/person_keypoints_{}.json", split.name());
        coco.write(&root.join(file))?;
    }
    // Attribute tables.
    for split in SPLITS {
        let rows: Vec<AttributeRow> = of_split(split)
            .map(|d| AttributeRow {
                image: format!("{}.jpg", d.job.stem()),
                labels: pa100k_labels(&identity(opts, d.job.pid), &d.rendered.pose),
            })
            .collect();
        pa100k::write(
            &root.join(format!("attributes/{}.csv", split.name())),
            &rows,
        )?;
    }
    // Captions, for the teacher.
    let mut f = std::io::BufWriter::new(std::fs::File::create(root.join("captions.jsonl"))?);
    // Backdrops without a person (pid 0) are described as such: the teacher learns what
    // "no person" looks like, which background pseudo-labels need.
    for d in done.iter().filter(|d| d.job.kind != Kind::Junk) {
        let texts = if d.job.kind == Kind::Person {
            captions(&identity(opts, d.job.pid), &d.rendered.pose)
        } else {
            empty_scene_captions()
        };
        let line = serde_json::json!({
            "image": format!("reid/{}/{}", d.job.reid_dir(), d.job.name.file_name()),
            "pid": d.job.pid,
            "captions": texts,
        });
        writeln!(f, "{line}")?;
    }
    f.flush()?;
    Ok(())
}
