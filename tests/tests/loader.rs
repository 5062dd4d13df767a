//! The loader: same batches whatever the worker count, corrupt and truncated images skipped and
//! named, P×K
//! batches, ranks that split each batch of the job as one process's larger batch.

use std::collections::{BTreeMap, BTreeSet};

use clasp_core::data::augment::MultiCropConfig;
use clasp_core::data::image_folder::MultiCropFolder;
use clasp_core::data::loader::{Dataset, Loader, LoaderConfig, Shard};
use clasp_core::data::sampler::Sampler;
use clasp_core::data::synth::dataset::{generate, SynthOptions};

fn synth_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        out: dir.path().to_path_buf(),
        identities: 8, // 4 train identities × 3 images
        images_per_id: 3,
        cameras: 2,
        seed: 1,
        height: 128,
        width: 64,
        jpeg_quality: 90,
        threads: 2,
    };
    generate(&opts, &|_| {}).unwrap();
    dir
}

fn config(workers: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size: 3,
        workers,
        prefetch: 2,
        seed: 9,
        drop_last: false,
        sampler: Sampler::Shuffle,
        shard: Shard::default(),
    }
}

fn crops() -> MultiCropConfig {
    MultiCropConfig {
        global_size: [64, 32],
        local_size: [32, 16],
        n_local: 2,
        ..Default::default()
    }
}

#[test]
fn batches_are_identical_with_one_or_three_workers() {
    let dir = synth_folder();
    let root = dir.path().join("reid/bounding_box_train");
    let run = |workers| {
        let loader = Loader::new(
            MultiCropFolder::new(&root, crops()).unwrap(),
            config(workers),
        );
        loader
            .epoch(3)
            .unwrap()
            .map(|b| (b.indices.clone(), b.items))
            .collect::<Vec<_>>()
    };
    let (a, b) = (run(1), run(3));
    assert_eq!(a.len(), 4, "12 images in batches of 3");
    for ((ia, va), (ib, vb)) in a.iter().zip(&b) {
        assert_eq!(ia, ib);
        assert!(va == vb, "views differ between worker counts");
    }
    // Another epoch is another order and other crops.
    let loader = Loader::new(MultiCropFolder::new(&root, crops()).unwrap(), config(2));
    let other: Vec<Vec<usize>> = loader.epoch(4).unwrap().map(|b| b.indices).collect();
    assert_ne!(other, a.iter().map(|(i, _)| i.clone()).collect::<Vec<_>>());
    // A run resumed mid-epoch gets the rest of that epoch, the same items and views.
    let rest: Vec<_> = loader
        .epoch_from(3, 2)
        .unwrap()
        .map(|b| (b.indices.clone(), b.items))
        .collect();
    assert_eq!(rest.len(), 2);
    for ((ia, va), (ib, vb)) in a[2..].iter().zip(&rest) {
        assert_eq!(ia, ib);
        assert!(va == vb, "views of a resumed epoch differ");
    }
}

#[test]
fn a_corrupt_jpeg_is_skipped_counted_and_named() {
    let dir = synth_folder();
    let root = dir.path().join("reid/bounding_box_train");
    std::fs::write(root.join("0999_c1s1_000001_01.jpg"), b"\xff\xd8 truncated").unwrap();
    // A real JPEG cut off mid-image: the decoder alone would fill it with grey, silently.
    let first = clasp_core::data::images::list_images(&root).unwrap()[0].clone();
    let whole = std::fs::read(first).unwrap();
    std::fs::write(
        root.join("0998_c1s1_000001_01.jpg"),
        &whole[..whole.len() / 2],
    )
    .unwrap();
    let loader = Loader::new(MultiCropFolder::new(&root, crops()).unwrap(), config(2));
    let mut it = loader.epoch(0).unwrap();
    let n: usize = it.by_ref().map(|b| b.items.len()).sum();
    assert_eq!(n, 12, "every good image still arrives");
    let mut skipped: Vec<String> = it.skipped().iter().map(|s| s.name.clone()).collect();
    skipped.sort();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(
        skipped[0].ends_with("0998_c1s1_000001_01.jpg"),
        "{skipped:?}"
    );
    assert!(
        skipped[1].ends_with("0999_c1s1_000001_01.jpg"),
        "{skipped:?}"
    );
    let e =
        clasp_core::data::images::open_image(&root.join("0998_c1s1_000001_01.jpg")).unwrap_err();
    assert!(format!("{e:#}").contains("truncated JPEG"), "{e:#}");
}

#[test]
fn identity_balanced_batches_hold_p_ids_of_k_images() {
    let pids: Vec<i64> = (0..40).map(|i| i / 5).collect(); // 8 ids × 5 images
    let sampler = Sampler::IdentityBalanced {
        p: 4,
        k: 2,
        pids: pids.clone(),
    };
    // As torchreid's RandomIdentitySampler: each identity gives two chunks of two images (its
    // fifth image waits for another epoch) and batches take chunks of four identities — here
    // every chunk once: 16 chunks, 4 batches, every epoch.
    for epoch in 0..4 {
        let order = sampler.order(40, 0, epoch).unwrap();
        assert_eq!(order.len(), 32, "epoch {epoch}");
    }
    let order = sampler.order(40, 0, 0).unwrap();
    let distinct: BTreeSet<usize> = order.iter().copied().collect();
    assert!(
        distinct.len() >= 28,
        "nearly every image once: {}",
        distinct.len()
    );
    for batch in order.chunks(8) {
        let mut per: BTreeMap<i64, usize> = BTreeMap::new();
        for i in batch {
            *per.entry(pids[*i]).or_default() += 1;
        }
        assert_eq!(per.len(), 4);
        assert!(per.values().all(|&k| k == 2));
    }
}

/// Three ranks with batches of 2 load, batch by batch, the items and crops one process loads with
/// batches of 6 — rank r the r-th block of each — and every rank has as many batches (the last,
/// short job batch leaves rank 2's block empty).
#[test]
fn ranks_split_each_job_batch_as_one_process_loads_it() {
    let dir = synth_folder();
    let root = dir.path().join("reid/bounding_box_train");
    let epoch = |batch_size, rank, world_size| {
        let cfg = LoaderConfig {
            batch_size,
            shard: Shard { rank, world_size },
            ..config(2)
        };
        let loader = Loader::new(MultiCropFolder::new(&root, crops()).unwrap(), cfg);
        let per_epoch = loader.batches_per_epoch().unwrap();
        let batches: Vec<_> = loader
            .epoch(1)
            .unwrap()
            .map(|b| (b.indices, b.items))
            .collect();
        assert_eq!(batches.len(), per_epoch);
        batches
    };
    let whole = epoch(6, 0, 1);
    let ranks: Vec<_> = (0..3).map(|r| epoch(2, r, 3)).collect();
    assert_eq!(whole.len(), 2, "12 images in job batches of 6");
    for (b, (indices, items)) in whole.iter().enumerate() {
        for (r, rank) in ranks.iter().enumerate() {
            assert_eq!(rank.len(), whole.len(), "every rank takes every step");
            let block = (2 * r).min(indices.len())..(2 * r + 2).min(indices.len());
            assert_eq!(rank[b].0, indices[block.clone()], "batch {b}, rank {r}");
            assert!(
                rank[b].1[..] == items[block],
                "batch {b}, rank {r}: crops differ from one process's"
            );
        }
    }
    // 8 items in job batches of 6: the second job batch gives ranks 0 and 1 two items each and
    // rank 2 none; the sampler's order is the same.
    let short = |rank| {
        let cfg = LoaderConfig {
            batch_size: 2,
            shard: Shard {
                rank,
                world_size: 3,
            },
            sampler: Sampler::Sequential,
            ..config(1)
        };
        let folder = MultiCropFolder::new(&root, crops()).unwrap();
        let loader = Loader::new(Subset(folder, 8), cfg);
        loader
            .epoch(0)
            .unwrap()
            .map(|b| b.indices)
            .collect::<Vec<_>>()
    };
    assert_eq!(short(0), vec![vec![0, 1], vec![6, 7]]);
    assert_eq!(short(2), vec![vec![4, 5], vec![]]);
    let bad = LoaderConfig {
        shard: Shard {
            rank: 3,
            world_size: 3,
        },
        ..config(1)
    };
    let loader = Loader::new(MultiCropFolder::new(&root, crops()).unwrap(), bad);
    assert!(loader.batches_per_epoch().is_err());
}

/// The first `.1` items of a dataset.
struct Subset<D>(D, usize);

impl<D: Dataset> Dataset for Subset<D> {
    type Item = D::Item;
    fn len(&self) -> usize {
        self.1.min(self.0.len())
    }
    fn get(&self, index: usize, rng: &mut rand_chacha::ChaCha8Rng) -> anyhow::Result<D::Item> {
        self.0.get(index, rng)
    }
    fn describe(&self, index: usize) -> String {
        self.0.describe(index)
    }
}
