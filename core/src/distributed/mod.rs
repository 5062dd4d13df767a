//! The processes of a data-parallel job: how many there are, which one this is, and the
//! collectives training needs (sums, broadcasts, a barrier).
//!
//! A job started by an MPI launcher (`mpirun`, `mpiexec`, `srun --mpi=pmix`) in a binary built
//! with `--features mpi` is a world of as many processes as the launcher started, joined over the
//! system's MPI. A job started torchrun-style (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`,
//! `MASTER_PORT`: torchrun, Kubeflow's PyTorchJob, many Slurm scripts) in a binary built with
//! `--features nccl` is joined over NCCL alone, on the GPUs (see [`torchrun`]). Anything else — no
//! feature, or no launcher — is a world of one, where every collective returns its input and
//! costs nothing. The world is set up once by [`init`] at the start of `main` and ended by
//! [`finish`].
//!
//! Every collective must be called by every process of the world in the same order: a process
//! that skips one leaves the others waiting in it. Training code therefore makes every decision
//! that changes which collectives run (skipping a step, stopping) from values already reduced.

pub mod gradients;
#[cfg(feature = "mpi")]
mod mpi_backend;
#[cfg(feature = "nccl")]
mod nccl_backend;
pub mod record_bytes;
pub mod torchrun;
#[cfg(feature = "nccl")]
pub use nccl_backend::self_test as nccl_self_test;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use anyhow::Result;
use sha2::{Digest, Sha256};

use crate::data::loader::Shard;

/// This process's place in the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct World {
    pub rank: usize,
    pub size: usize,
    /// Rank among the processes on this machine (which GPU it takes).
    pub local_rank: usize,
    backend: Backend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// One process; collectives are the identity.
    Single,
    #[cfg(feature = "mpi")]
    Mpi,
    /// Launched torchrun-style: every collective runs on the GPUs over NCCL.
    #[cfg(feature = "nccl")]
    Nccl,
}

static WORLD: OnceLock<World> = OnceLock::new();

/// Nanoseconds this process has spent in collectives (waiting for the others included).
static IN_COLLECTIVES_NS: AtomicU64 = AtomicU64::new(0);

/// Seconds this process has spent in collectives so far, waiting for slower processes included:
/// what data parallelism costs a step beyond its share of the compute.
pub fn seconds_in_collectives() -> f64 {
    IN_COLLECTIVES_NS.load(Ordering::Relaxed) as f64 * 1e-9
}

/// Runs one collective, counting its time.
#[cfg(any(feature = "mpi", feature = "nccl"))]
fn timed<T>(collective: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let out = collective();
    let ns = start.elapsed().as_nanos() as u64;
    IN_COLLECTIVES_NS.fetch_add(ns, Ordering::Relaxed);
    out
}

/// The environment variables by which launchers tell a process the size of its job: Open MPI,
/// MPICH's and Intel's hydra, MVAPICH, Slurm's `srun` (with PMIx or PMI2).
const JOB_SIZE_VARIABLES: [&str; 4] = [
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
    "MV2_COMM_WORLD_SIZE",
    "SLURM_STEP_NUM_TASKS",
];

/// Whether a launcher started this process as one of several (a job of one task, as `srun -n1`
/// starts on clusters where every task gets PMIx, is one process).
pub fn launched_by_mpi() -> bool {
    JOB_SIZE_VARIABLES.iter().any(|v| {
        std::env::var(v)
            .ok()
            .and_then(|n| n.trim().parse::<usize>().ok())
            .is_some_and(|n| n > 1)
    })
}

/// Joins the job's world: over MPI when an MPI launcher started this process, over NCCL when
/// it was started torchrun-style for a `data_parallel` command, else a world of one. A launcher
/// whose backend the binary lacks is an error (the processes would each train alone, unaware of
/// one another, and write over each other's run folder).
pub fn init(data_parallel: bool) -> Result<World> {
    let mpi = launched_by_mpi();
    // An MPI launch wins over torchrun's variables (which a job script may also export); and
    // those variables concern only the commands that run data parallel (a `clasp synth` called
    // from inside a torchrun worker is one process of its own).
    let torchrun = match mpi || !data_parallel {
        true => None,
        false => torchrun::Launch::from_env()?,
    };
    let world = match (mpi, torchrun) {
        (false, None) => World::single(),
        #[cfg(feature = "mpi")]
        (true, _) => mpi_backend::init()?,
        #[cfg(not(feature = "mpi"))]
        (true, _) => anyhow::bail!(
            "started by an MPI launcher, but this `clasp` was built without MPI: rebuild with \
             `cargo build --release --features mpi` (needs libopenmpi-dev or MPICH), or run it \
             without mpirun"
        ),
        #[cfg(feature = "nccl")]
        (false, Some(launch)) => {
            launch.export_comm_id();
            World {
                rank: launch.rank,
                size: launch.size,
                local_rank: launch.local_rank,
                backend: Backend::Nccl,
            }
        }
        #[cfg(not(feature = "nccl"))]
        (false, Some(launch)) => anyhow::bail!(
            "started torchrun-style as rank {} of {} (RANK, WORLD_SIZE), but this `clasp` was \
             built without NCCL, which such a job's processes sum over: rebuild with \
             `--features nccl` to train on GPUs, or launch with `mpirun -np {}` (a build with \
             `--features mpi`, on CPUs or GPUs)",
            launch.rank,
            launch.size,
            launch.size
        ),
    };
    WORLD
        .set(world)
        .map_err(|_| anyhow::anyhow!("the world was already set up"))?;
    Ok(world)
}

/// The job's world; a world of one when [`init`] was not called (tests, library users).
pub fn world() -> World {
    *WORLD.get_or_init(World::single)
}

/// Ends the world: finalises MPI after a run that succeeded everywhere; after a failure aborts
/// the job, since the other processes may be waiting in a collective this one will never join.
#[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
pub fn finish(succeeded: bool) {
    #[cfg(feature = "nccl")]
    nccl_backend::finish(); // before MPI goes
    match world().backend {
        Backend::Single => {}
        #[cfg(feature = "mpi")]
        Backend::Mpi => mpi_backend::finish(succeeded),
        // The launcher (torchrun) stops the other processes when one fails.
        #[cfg(feature = "nccl")]
        Backend::Nccl => {}
    }
}

impl World {
    pub fn single() -> Self {
        Self {
            rank: 0,
            size: 1,
            local_rank: 0,
            backend: Backend::Single,
        }
    }

    /// The process that writes run folders, checkpoints and logs.
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// This process's part of the data.
    pub fn shard(&self) -> Shard {
        Shard {
            rank: self.rank,
            world_size: self.size,
        }
    }

    /// Sums `values` over the world, in place.
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    pub fn sum_f32(&self, values: &mut [f32]) -> Result<()> {
        match self.backend {
            Backend::Single => Ok(()),
            #[cfg(feature = "mpi")]
            Backend::Mpi => timed(|| mpi_backend::sum_f32(values)),
            #[cfg(feature = "nccl")]
            Backend::Nccl => timed(|| nccl_backend::sum_host(values)),
        }
    }

    /// Sums `values` over the world, in place.
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    pub fn sum_f64(&self, values: &mut [f64]) -> Result<()> {
        match self.backend {
            Backend::Single => Ok(()),
            #[cfg(feature = "mpi")]
            Backend::Mpi => timed(|| mpi_backend::sum_f64(values)),
            #[cfg(feature = "nccl")]
            Backend::Nccl => timed(|| nccl_backend::sum_host(values)),
        }
    }

    /// The sum of one count over the world.
    pub fn sum_count(&self, count: usize) -> Result<usize> {
        let mut v = [count as f64];
        self.sum_f64(&mut v)?;
        Ok(v[0].round() as usize)
    }

    /// Replaces `values` by rank 0's.
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    pub fn broadcast_f32(&self, values: &mut [f32]) -> Result<()> {
        match self.backend {
            Backend::Single => Ok(()),
            #[cfg(feature = "mpi")]
            Backend::Mpi => timed(|| mpi_backend::broadcast_f32(values)),
            #[cfg(feature = "nccl")]
            Backend::Nccl => timed(|| nccl_backend::broadcast_host(values)),
        }
    }

    /// Replaces `bytes` by rank 0's.
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    pub fn broadcast_bytes(&self, bytes: &mut [u8]) -> Result<()> {
        match self.backend {
            Backend::Single => Ok(()),
            #[cfg(feature = "mpi")]
            Backend::Mpi => timed(|| mpi_backend::broadcast_bytes(bytes)),
            #[cfg(feature = "nccl")]
            Backend::Nccl => timed(|| nccl_backend::broadcast_host(bytes)),
        }
    }

    /// Rank 0's `value` (the others' is not read).
    pub fn main_value(&self, value: Option<u64>) -> Result<Option<u64>> {
        let mut bytes = [0u8; 9];
        if let Some(v) = value {
            bytes[0] = 1;
            bytes[1..].copy_from_slice(&v.to_le_bytes());
        }
        self.broadcast_bytes(&mut bytes)?;
        let v = u64::from_le_bytes(bytes[1..].try_into()?);
        Ok((bytes[0] == 1).then_some(v))
    }

    /// Whether `ok` holds on every process (every process learns the same answer, so they can
    /// all stop together when one cannot go on).
    pub fn all(&self, ok: bool) -> Result<bool> {
        Ok(self.sum_count(usize::from(!ok))? == 0)
    }

    /// Whether `bytes` (a hash, a count) are rank 0's on every process; every process learns the
    /// same answer. Ranks that disagree on their settings or data would pair different steps.
    pub fn same_everywhere(&self, bytes: &[u8]) -> Result<bool> {
        if self.size == 1 {
            return Ok(true);
        }
        let mut len = [bytes.len() as f64];
        self.sum_f64(&mut len)?;
        if len[0] != (bytes.len() * self.size) as f64 {
            self.all(false)?;
            return Ok(false);
        }
        let mut theirs: Vec<f32> = bytes.iter().map(|b| f32::from(*b)).collect();
        self.broadcast_f32(&mut theirs)?;
        let mine = theirs.iter().zip(bytes).all(|(t, b)| *t == f32::from(*b));
        self.all(mine)
    }

    /// Refuses to go on unless every process sees rank 0's `count` of `what` (its data: ranks that
    /// list another number of images would take another number of steps).
    pub fn ensure_same_count(&self, what: &str, count: usize) -> Result<()> {
        if !self.same_everywhere(&(count as u64).to_le_bytes())? {
            anyhow::bail!(
                "the processes of this job see different {what} ({count} here): give every rank \
                 the same data"
            );
        }
        Ok(())
    }

    /// Refuses to go on unless every process lists rank 0's `names` of `what`, in the same order
    /// (an evaluation shared out by position would otherwise drop or repeat samples).
    pub fn ensure_same_list<'a>(
        &self,
        what: &str,
        names: impl Iterator<Item = &'a str>,
    ) -> Result<()> {
        let mut hash = Sha256::new();
        let mut count = 0usize;
        for name in names {
            hash.update((name.len() as u64).to_le_bytes());
            hash.update(name.as_bytes());
            count += 1;
        }
        if !self.same_everywhere(&hash.finalize())? {
            anyhow::bail!(
                "the processes of this job list different {what} ({count} here): give every \
                 rank the same data"
            );
        }
        Ok(())
    }

    /// Whether every collective of this job runs on the GPUs (a torchrun-style launch): then
    /// [`World::join_gpus`] must come before any.
    pub fn collectives_need_gpus(&self) -> bool {
        #[cfg(feature = "nccl")]
        if self.backend == Backend::Nccl {
            return true;
        }
        false
    }

    /// Sets up the GPU collectives on this rank's `device` when the job spans several processes
    /// and the build has NCCL; otherwise nothing (sums then go through the host over MPI). A
    /// torchrun-style job has no other collectives: it must call this before any, on a GPU.
    #[cfg_attr(not(feature = "nccl"), allow(unused_variables))]
    pub fn join_gpus(&self, device: &candle_core::Device) -> Result<()> {
        #[cfg(feature = "nccl")]
        match self.backend {
            Backend::Nccl if !device.is_cuda() => anyhow::bail!(
                "a torchrun-style job (RANK, WORLD_SIZE) sums over NCCL, on GPUs: set \
                 run.device = \"cuda\", or launch on CPUs with `mpirun -np {}`",
                self.size
            ),
            // Every rank reads the same NCCL_COMM_ID, so every rank makes the same id.
            Backend::Nccl => nccl_backend::init(self, device, nccl_backend::IdFrom::Environment)?,
            _ if self.size > 1 && device.is_cuda() => nccl_backend::init(
                self,
                device,
                nccl_backend::IdFrom::RankZero(&|id| self.broadcast_bytes(&mut id[..])),
            )?,
            _ => return Ok(()),
        }
        #[cfg(feature = "nccl")]
        tracing::debug!("NCCL rank {} of {} on {device:?}", self.rank, self.size);
        Ok(())
    }

    /// Whether tensors on `device` are summed over the world on the GPUs (NCCL set up for a
    /// CUDA job of several processes); else sums go through the host.
    #[cfg_attr(not(feature = "nccl"), allow(unused_variables))]
    pub fn sums_on_device(&self, device: &candle_core::Device) -> bool {
        #[cfg(feature = "nccl")]
        if self.size > 1 && device.is_cuda() {
            return nccl_backend::active();
        }
        false
    }

    /// Sums the contiguous f32 tensor `t` over the world in place on its GPU (only where
    /// [`World::sums_on_device`] holds).
    #[cfg_attr(not(feature = "nccl"), allow(unused_variables))]
    pub fn sum_on_device(&self, t: &candle_core::Tensor) -> Result<()> {
        #[cfg(feature = "nccl")]
        if self.sums_on_device(t.device()) {
            return timed(|| nccl_backend::sum_in_place(t));
        }
        anyhow::bail!("no GPU collectives for {:?} in this job", t.device())
    }

    /// Every process's `mine`, in rank order, on rank 0; `None` on the others.
    pub fn gather_bytes(&self, mine: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>> {
        match self.backend {
            Backend::Single => Ok(Some(vec![mine])),
            #[cfg(feature = "mpi")]
            Backend::Mpi => timed(|| mpi_backend::gather_bytes(&mine)),
            #[cfg(feature = "nccl")]
            Backend::Nccl => timed(|| nccl_backend::gather_bytes(self, &mine)),
        }
    }

    /// Waits until every process reaches this point.
    pub fn barrier(&self) -> Result<()> {
        match self.backend {
            Backend::Single => Ok(()),
            #[cfg(feature = "mpi")]
            Backend::Mpi => timed(mpi_backend::barrier),
            #[cfg(feature = "nccl")]
            Backend::Nccl => timed(|| nccl_backend::sum_host(&mut [0f32])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A world of one: collectives leave their input as it is, and cost no time.
    #[test]
    fn a_world_of_one_sums_and_broadcasts_to_the_input() -> Result<()> {
        let world = World::single();
        let mut v = [1.5f32, -2.0];
        world.sum_f32(&mut v)?;
        world.broadcast_f32(&mut v)?;
        assert_eq!(v, [1.5, -2.0]);
        assert_eq!(world.sum_count(7)?, 7);
        assert!(world.all(true)? && !world.all(false)?);
        assert!(world.is_main());
        assert_eq!(world.shard(), Shard::default());
        Ok(())
    }
}
