//! `clasp synth` writes every format; each reads back through its reader with the same ground
//! truth; output does not depend on the thread count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clasp_core::data::formats::{coco::CocoKeypoints, lip, market1501, pa100k};
use clasp_core::data::synth::attributes::pa100k_labels;
use clasp_core::data::synth::dataset::{
    cameras, generate, identity, plan, render_job, split_sizes, Kind, ReidRole, Split, SynthOptions,
};

fn options(out: &Path, threads: usize) -> SynthOptions {
    SynthOptions {
        out: out.to_path_buf(),
        identities: 6,
        images_per_id: 4,
        cameras: 3,
        seed: 7,
        height: 128,
        width: 64,
        jpeg_quality: 90,
        threads,
    }
}

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn same_seed_gives_identical_files_with_one_or_two_threads() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(&options(a.path(), 1), &|_| {}).unwrap();
    generate(&options(b.path(), 2), &|_| {}).unwrap();
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert!(fa.len() > 50, "{} files", fa.len());
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (k, v) in &fa {
        if k == "synth.json" {
            continue; // records the thread count and the time taken
        }
        assert!(v == &fb[k], "{k} differs between 1 and 2 threads");
    }
    // A different seed is a different dataset.
    let c = tempfile::tempdir().unwrap();
    let mut other = options(c.path(), 2);
    other.seed = 8;
    generate(&other, &|_| {}).unwrap();
    let fc = files(c.path());
    let key = "parsing/train_id.txt";
    assert_eq!(fa[key], fc[key], "same plan");
    let img = fa.keys().find(|k| k.ends_with(".png")).unwrap();
    assert_ne!(fa[img], fc[img], "{img} should change with the seed");
}

#[test]
fn every_format_reads_back_the_rendered_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), 2);
    let summary = generate(&opts, &|_| {}).unwrap();
    let jobs = plan(&opts);
    let cams = cameras(&opts);
    assert_eq!(summary.images, jobs.len());
    let by_stem: BTreeMap<String, _> = jobs.iter().map(|j| (j.stem(), j)).collect();
    let root = dir.path();

    // ReID: names carry pid and camera; train, validation and test identities are disjoint;
    // every query has a match in another camera.
    let reid = root.join("reid");
    let read = |dir| market1501::read_split(&reid, dir).unwrap();
    let train = read(market1501::TRAIN_DIR);
    let query = read(market1501::QUERY_DIR);
    let gallery = read(market1501::GALLERY_DIR);
    let val_query = read(market1501::VAL_QUERY_DIR);
    let val_gallery = read(market1501::VAL_GALLERY_DIR);
    let all = [&train, &query, &gallery, &val_query, &val_gallery];
    assert_eq!(all.iter().map(|s| s.len()).sum::<usize>(), jobs.len());
    for item in all.into_iter().flatten() {
        let stem = item.path.file_stem().unwrap().to_str().unwrap();
        let job = by_stem[stem];
        assert_eq!(item.cam, job.cam);
        let want = match job.kind {
            Kind::Person => job.pid as i32,
            Kind::Distractor => 0,
            Kind::Junk => -1,
        };
        assert_eq!(item.pid, want, "{stem}");
    }
    let ids = |sides: &[&Vec<market1501::ReidItem>]| -> BTreeSet<i32> {
        sides
            .iter()
            .flat_map(|s| s.iter().map(|i| i.pid))
            .filter(|p| *p > 0)
            .collect()
    };
    let train_ids = ids(&[&train]);
    let val_ids = ids(&[&val_query, &val_gallery]);
    let test_ids = ids(&[&query, &gallery]);
    assert!(!val_ids.is_empty() && !test_ids.is_empty());
    assert!(train_ids.is_disjoint(&test_ids) && train_ids.is_disjoint(&val_ids));
    assert!(val_ids.is_disjoint(&test_ids));
    for (queries, gallery) in [(&query, &gallery), (&val_query, &val_gallery)] {
        for q in queries.iter() {
            assert!(
                gallery.iter().any(|g| g.pid == q.pid && g.cam != q.cam),
                "query {:?} has no cross-camera match",
                q.path
            );
        }
        assert!(gallery.iter().any(|g| g.pid == 0) && gallery.iter().any(|g| g.pid == -1));
    }

    // Parsing: label maps equal the renderer's.
    let mut n_parsing = 0;
    for split in ["train", "val", "test"] {
        for item in lip::read_split(&root.join("parsing"), split).unwrap() {
            let stem = item.image.file_stem().unwrap().to_str().unwrap();
            let r = render_job(&opts, &cams, by_stem[stem]);
            let (w, h, labels) = lip::read_labels(&item.labels).unwrap();
            assert_eq!((w as usize, h as usize), (r.width, r.height));
            assert!(labels == r.labels, "{stem}: label map differs");
            n_parsing += 1;
        }
    }
    // Every image of a training person, one image of each validation and test person.
    let persons = jobs.iter().filter(|j| j.in_task_sets()).count();
    let people = jobs
        .iter()
        .filter(|j| j.kind == Kind::Person && j.shot == 0)
        .count();
    let train_images = jobs.iter().filter(|j| j.is_train()).count();
    assert_eq!(
        persons,
        train_images + people - (opts.identities as usize).div_ceil(2)
    );
    assert_eq!(n_parsing, persons);

    // Pose: COCO keypoints, boxes and areas equal the renderer's.
    let mut n_pose = 0;
    for split in ["train", "val", "test"] {
        let coco = CocoKeypoints::read(
            &root.join(format!("pose/annotations/person_keypoints_{split}.json")),
        )
        .unwrap();
        assert_eq!(coco.categories[0].keypoints.len(), 17);
        for (img, ann) in coco.images.iter().zip(&coco.annotations) {
            assert_eq!(ann.image_id, img.id);
            assert!(root.join("pose/images").join(&img.file_name).exists());
            let job = by_stem[img.file_name.trim_end_matches(".jpg")];
            assert_eq!(job.split.name(), split);
            let r = render_job(&opts, &cams, job);
            let kps: Vec<f32> = r.keypoints.iter().flatten().copied().collect();
            assert_eq!(ann.keypoints, kps);
            assert_eq!(ann.bbox, r.bbox);
            assert_eq!(ann.area, r.area as f32);
            assert_eq!(
                ann.num_keypoints as usize,
                r.keypoints.iter().filter(|k| k[2] > 0.0).count()
            );
            n_pose += 1;
        }
    }
    assert_eq!(n_pose, persons);

    // Attributes: the table equals the labels of identity + pose.
    let mut n_attr = 0;
    for split in ["train", "val", "test"] {
        let table = root.join(format!("attributes/{split}.csv"));
        for row in pa100k::read(&table).unwrap() {
            assert!(pa100k::image_path(&table, &row).exists());
            let job = by_stem[row.image.trim_end_matches(".jpg")];
            let r = render_job(&opts, &cams, job);
            assert_eq!(
                row.labels,
                pa100k_labels(&identity(&opts, job.pid), &r.pose)
            );
            n_attr += 1;
        }
    }
    assert_eq!(n_attr, persons);

    // Captions: one line per person image (several phrasings each) and per empty backdrop
    // (pid 0, described as having no person); junk images have none.
    let captions = std::fs::read_to_string(root.join("captions.jsonl")).unwrap();
    let empty = jobs.iter().filter(|j| j.kind == Kind::Distractor).count();
    let person_images = jobs.iter().filter(|j| j.kind == Kind::Person).count();
    assert_eq!(captions.lines().count(), person_images + empty);
    let mut described_empty = 0;
    for line in captions.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(root.join(v["image"].as_str().unwrap()).exists());
        let texts = v["captions"].as_array().unwrap();
        assert!(texts.len() >= 3);
        if v["pid"] == 0 {
            described_empty += 1;
            assert!(texts
                .iter()
                .any(|t| t.as_str().unwrap().contains("no person")));
        }
    }
    assert_eq!(described_empty, empty);
}

/// Each evaluated person keeps a gallery image for its queries, down to two images a person
/// (one query, one gallery image); one image a person is gallery only.
#[test]
fn every_query_keeps_a_gallery_image_of_its_person() {
    let dir = tempfile::tempdir().unwrap();
    for images_per_id in [1, 2, 3, 6] {
        let mut opts = options(dir.path(), 1);
        opts.identities = 20;
        opts.images_per_id = images_per_id;
        let jobs = plan(&opts);
        let (n_train, n_val) = split_sizes(opts.identities);
        assert_eq!((n_train, n_val), (10, 4));
        for pid in n_train + 1..=opts.identities {
            let of = |role| {
                jobs.iter()
                    .filter(|j| j.pid == pid && j.kind == Kind::Person && j.role == role)
                    .count()
            };
            let queries = of(ReidRole::Query);
            assert_eq!(
                queries,
                (images_per_id as usize - 1).min(2),
                "{images_per_id}"
            );
            assert_eq!(of(ReidRole::Gallery), images_per_id as usize - queries);
            let split = jobs.iter().find(|j| j.pid == pid).unwrap().split;
            let want = if pid <= n_train + n_val {
                Split::Val
            } else {
                Split::Test
            };
            assert_eq!(split, want);
        }
    }
}

#[test]
fn visible_keypoints_land_on_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), 1);
    let cams = cameras(&opts);
    let (mut on, mut total) = (0, 0);
    for job in plan(&opts).iter().filter(|j| j.kind == Kind::Person) {
        let r = render_job(&opts, &cams, job);
        for kp in r.keypoints.iter().filter(|k| k[2] == 2.0) {
            total += 1;
            let (x, y) = (kp[0] as usize, kp[1] as usize);
            // Within a pixel of a person label (joints sit inside limbs; bags may cover a wrist).
            let near = (y.saturating_sub(1)..=(y + 1).min(r.height - 1)).any(|yy| {
                (x.saturating_sub(1)..=(x + 1).min(r.width - 1))
                    .any(|xx| r.labels[yy * r.width + xx] != 0)
            });
            on += near as usize;
        }
    }
    assert!(total > 100);
    assert!(
        on as f64 / total as f64 > 0.95,
        "{on}/{total} visible keypoints on the person"
    );
}

#[test]
fn malformed_coco_json_names_file_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        r#"{"images": [], "categories": [], "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
            "keypoints": "oops", "num_keypoints": 0, "bbox": [0, 0, 1, 1], "area": 1}]}"#,
    )
    .unwrap();
    let err = format!("{:#}", CocoKeypoints::read(&path).unwrap_err());
    assert!(
        err.contains("bad.json") && err.contains("annotations[0].keypoints"),
        "{err}"
    );
    std::fs::write(
        &path,
        r#"{"images": [], "categories": [], "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
            "keypoints": [1, 2, 2], "num_keypoints": 1, "bbox": [0, 0, 1, 1], "area": 1}]}"#,
    )
    .unwrap();
    let err = format!("{:#}", CocoKeypoints::read(&path).unwrap_err());
    assert!(
        err.contains("annotations[0].keypoints") && err.contains("51"),
        "{err}"
    );
}

#[test]
fn malformed_tables_and_names_say_where() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t.csv");
    let mut text = pa100k::header();
    text.push_str("\na.jpg");
    text.push_str(&",0".repeat(25));
    text.push_str(",2\n");
    std::fs::write(&table, text).unwrap();
    let err = format!("{:#}", pa100k::read(&table).unwrap_err());
    assert!(err.contains("t.csv:2") && err.contains("`boots`"), "{err}");
    let reid = dir.path().join("reid/bounding_box_train");
    std::fs::create_dir_all(&reid).unwrap();
    std::fs::write(reid.join("person.jpg"), b"x").unwrap();
    let err = format!(
        "{:#}",
        market1501::read_split(&dir.path().join("reid"), market1501::TRAIN_DIR).unwrap_err()
    );
    assert!(
        err.contains("person.jpg") && err.contains("bounding_box_train"),
        "{err}"
    );
}

/// `clasp synth` refuses a non-empty folder; `--overwrite` replaces a complete synthetic dataset
/// whole (no stale image survives) and refuses a folder without its `synth.json` (written last,
/// the mark of a complete set) or holding anything else.
#[test]
fn synth_refuses_a_non_empty_folder_and_overwrite_leaves_nothing_stale() {
    let exe = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("clasp");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let synth = |extra: &[&str]| {
        let o = std::process::Command::new(&exe)
            .args(["synth", "--out"])
            .arg(&out)
            .args([
                "--identities",
                "4",
                "--images-per-id",
                "2",
                "--size",
                "64",
                "32",
            ])
            .args(extra)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (ok, log) = synth(&[]);
    assert!(ok && out.join("synth.json").is_file(), "{log}");
    let (ok, log) = synth(&[]);
    assert!(
        !ok && log.contains("not empty") && log.contains("--overwrite"),
        "{log}"
    );
    // A complete set with an image of another run among its own: replaced whole.
    let stale = out.join("reid/bounding_box_train/0999_c1s1_000099_00.jpg");
    std::fs::write(&stale, b"old").unwrap();
    let (ok, log) = synth(&["--overwrite"]);
    assert!(ok && out.join("synth.json").is_file(), "{log}");
    assert!(!stale.exists(), "a stale image survived --overwrite");
    // No completion mark (an interrupted render, or someone else's folder): not ours to replace.
    std::fs::remove_file(out.join("synth.json")).unwrap();
    let (ok, log) = synth(&["--overwrite"]);
    assert!(!ok && log.contains("no synth.json"), "{log}");
    assert!(out.join("reid").is_dir(), "the refused folder was touched");
    std::fs::write(out.join("synth.json"), b"{}").unwrap();
    std::fs::write(out.join("notes.txt"), b"mine").unwrap();
    let (ok, log) = synth(&["--overwrite"]);
    assert!(!ok && log.contains("notes.txt"), "{log}");
    assert!(out.join("notes.txt").exists());
}
