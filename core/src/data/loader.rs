//! The data loader: worker threads load and augment whole batches ahead of the training step,
//! at most `prefetch` batches ahead, and batches come out in order. Each item's randomness comes
//! from (seed, epoch, position), so the output does not depend on the number of workers.
//! An item that fails to load (a corrupt image) is left out of its batch, counted and named.
//!
//! Under data parallelism every process walks the same order in batches of `world_size ×
//! batch_size` (the job's batch) and loads its own block of each: rank r takes positions
//! `[r·B, (r+1)·B)` of every job batch. So N processes with batches of B see, batch for batch,
//! what one process sees with batches of N·B (or with B and `accumulate = N`), with the same
//! augmentations, since an item's randomness is keyed by its position in the whole order. A last
//! short job batch may leave a process's block empty; the process still takes part in the step.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use anyhow::Result;
use rand_chacha::ChaCha8Rng;

use anyhow::bail;

use super::sampler::Sampler;
use super::synth::rng_for;

/// Something that loads item `index`, using `rng` for its augmentations.
pub trait Dataset: Send + Sync + 'static {
    type Item: Send + 'static;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Self::Item>;
    /// How to name item `index` in messages (its file).
    fn describe(&self, index: usize) -> String;
}

#[derive(Debug, Clone)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub workers: usize,
    /// Batches prepared ahead of the consumer.
    pub prefetch: usize,
    pub seed: u64,
    pub drop_last: bool,
    pub sampler: Sampler,
    pub shard: Shard,
}

/// This process's part of each job batch when training runs on `world_size` processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub world_size: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            rank: 0,
            world_size: 1,
        }
    }
}

/// One batch: the loaded items with their dataset indices.
pub struct Batch<T> {
    pub index: usize,
    pub items: Vec<T>,
    pub indices: Vec<usize>,
}

/// An item that could not be loaded.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub index: usize,
    pub name: String,
    pub error: String,
}

pub struct Loader<D: Dataset> {
    dataset: Arc<D>,
    cfg: LoaderConfig,
}

impl<D: Dataset> Loader<D> {
    pub fn new(dataset: D, cfg: LoaderConfig) -> Self {
        Self {
            dataset: Arc::new(dataset),
            cfg,
        }
    }

    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    /// How many batches an epoch has (the same for every epoch and every process).
    pub fn batches_per_epoch(&self) -> Result<usize> {
        let n = self
            .cfg
            .sampler
            .order(self.dataset.len(), self.cfg.seed, 0)?
            .len();
        let job_batch = self.job_batch()?;
        Ok(if self.cfg.drop_last {
            n / job_batch
        } else {
            n.div_ceil(job_batch)
        })
    }

    /// Items per batch over all processes.
    fn job_batch(&self) -> Result<usize> {
        let Shard { rank, world_size } = self.cfg.shard;
        if world_size == 0 || rank >= world_size {
            bail!("shard rank {rank} of world size {world_size}");
        }
        Ok(self.cfg.batch_size.max(1) * world_size)
    }

    /// Batches of `epoch`, in order, prepared by the worker threads.
    pub fn epoch(&self, epoch: u64) -> Result<EpochIter<D::Item>> {
        self.epoch_from(epoch, 0)
    }

    /// Batches `first..` of `epoch`: what a run resumed mid-epoch still has to see, with the
    /// same items and augmentations as an uninterrupted epoch.
    pub fn epoch_from(&self, epoch: u64, first: usize) -> Result<EpochIter<D::Item>> {
        let order = self
            .cfg
            .sampler
            .order(self.dataset.len(), self.cfg.seed, epoch)?;
        let (bs, job_batch) = (self.cfg.batch_size.max(1), self.job_batch()?);
        let mine = self.cfg.shard.rank * bs..(self.cfg.shard.rank + 1) * bs;
        let batches: Vec<Vec<(usize, usize)>> = order
            .iter()
            .copied()
            .enumerate()
            .collect::<Vec<_>>()
            .chunks(job_batch)
            .filter(|c| !self.cfg.drop_last || c.len() == job_batch)
            .map(|c| c[mine.start.min(c.len())..mine.end.min(c.len())].to_vec())
            .collect();
        let batches = Arc::new(batches);
        let first = first.min(batches.len());
        let window = Arc::new((Mutex::new(first), Condvar::new()));
        let next = Arc::new(AtomicUsize::new(first));
        let stop = Arc::new(AtomicBool::new(false));
        let skipped = Arc::new(Mutex::new(Vec::new()));
        let prefetch = self.cfg.prefetch.max(1);
        let (tx, rx) = sync_channel(prefetch);
        let workers = (0..self.cfg.workers.max(1))
            .map(|_| {
                let (dataset, batches, window, next, stop, skipped, tx) = (
                    self.dataset.clone(),
                    batches.clone(),
                    window.clone(),
                    next.clone(),
                    stop.clone(),
                    skipped.clone(),
                    tx.clone(),
                );
                let seed = self.cfg.seed;
                std::thread::spawn(move || loop {
                    let b = next.fetch_add(1, Ordering::SeqCst);
                    if b >= batches.len() || stop.load(Ordering::SeqCst) {
                        return;
                    }
                    // Stay within `prefetch` batches of what the consumer has taken.
                    {
                        let (lock, cv) = &*window;
                        let mut consumed = lock.lock().expect("loader window poisoned");
                        while b >= *consumed + prefetch && !stop.load(Ordering::SeqCst) {
                            consumed = cv.wait(consumed).expect("loader window poisoned");
                        }
                    }
                    let mut batch = Batch {
                        index: b,
                        items: Vec::with_capacity(batches[b].len()),
                        indices: Vec::with_capacity(batches[b].len()),
                    };
                    for &(position, index) in &batches[b] {
                        let mut rng = rng_for(seed, &[11, epoch, position as u64]);
                        match dataset.get(index, &mut rng) {
                            Ok(item) => {
                                batch.items.push(item);
                                batch.indices.push(index);
                            }
                            Err(e) => skipped.lock().expect("poisoned").push(Skipped {
                                index,
                                name: dataset.describe(index),
                                error: format!("{e:#}"),
                            }),
                        }
                    }
                    if tx.send(batch).is_err() {
                        return;
                    }
                })
            })
            .collect();
        Ok(EpochIter {
            rx,
            pending: BTreeMap::new(),
            next_out: first,
            total: batches.len(),
            window,
            stop,
            skipped,
            workers,
        })
    }
}

pub struct EpochIter<T> {
    rx: Receiver<Batch<T>>,
    pending: BTreeMap<usize, Batch<T>>,
    next_out: usize,
    total: usize,
    window: Arc<(Mutex<usize>, Condvar)>,
    stop: Arc<AtomicBool>,
    skipped: Arc<Mutex<Vec<Skipped>>>,
    workers: Vec<JoinHandle<()>>,
}

impl<T> EpochIter<T> {
    pub fn num_batches(&self) -> usize {
        self.total
    }

    /// Items that failed to load so far, sorted by index.
    pub fn skipped(&self) -> Vec<Skipped> {
        let mut s = self.skipped.lock().expect("poisoned").clone();
        s.sort_by_key(|s| s.index);
        s
    }
}

impl<T> Iterator for EpochIter<T> {
    type Item = Batch<T>;

    fn next(&mut self) -> Option<Batch<T>> {
        if self.next_out >= self.total {
            return None;
        }
        while !self.pending.contains_key(&self.next_out) {
            match self.rx.recv() {
                Ok(b) => {
                    self.pending.insert(b.index, b);
                }
                Err(_) => return None, // every worker ended (one panicked)
            }
        }
        let batch = self.pending.remove(&self.next_out);
        self.next_out += 1;
        let (lock, cv) = &*self.window;
        *lock.lock().expect("loader window poisoned") = self.next_out;
        cv.notify_all();
        batch
    }
}

impl<T> Drop for EpochIter<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.window.1.notify_all();
        // Unblock workers waiting to send, then join them.
        while self.rx.try_recv().is_ok() {}
        for w in self.workers.drain(..) {
            while !w.is_finished() {
                while self.rx.try_recv().is_ok() {}
                std::thread::yield_now();
            }
            let _ = w.join();
        }
    }
}
