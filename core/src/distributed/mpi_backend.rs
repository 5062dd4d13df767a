//! The world over MPI (rsmpi): `MPI_Init` once, collectives on `MPI_COMM_WORLD`, and
//! `MPI_Finalize` or `MPI_Abort` at the end. Only the main thread calls MPI.

use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;

use super::{Backend, World};

/// MPI's state; dropping it finalises MPI.
static UNIVERSE: Mutex<Option<Universe>> = Mutex::new(None);

pub(super) fn init() -> Result<World> {
    // Loader and kernel threads exist, but only the main thread calls MPI.
    let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled).context(
        "MPI was already initialised, or an MPI launcher set its variables but MPI_Init failed",
    )?;
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    // Ranks sharing this machine's memory, numbered by world rank: the GPU this rank takes.
    let local = world.split_shared(world.rank());
    let local_rank = local.rank() as usize;
    *UNIVERSE.lock().expect("MPI state poisoned") = Some(universe);
    tracing::debug!("MPI rank {rank} of {size} (local rank {local_rank})");
    Ok(World {
        rank,
        size,
        local_rank,
        backend: Backend::Mpi,
    })
}

fn comm() -> Result<SimpleCommunicator> {
    match UNIVERSE.lock().expect("MPI state poisoned").as_ref() {
        Some(u) => Ok(u.world()),
        None => bail!("MPI is not initialised (or already finalised)"),
    }
}

pub(super) fn sum_f32(values: &mut [f32]) -> Result<()> {
    let send = values.to_vec();
    comm()?.all_reduce_into(&send[..], values, SystemOperation::sum());
    Ok(())
}

pub(super) fn sum_f64(values: &mut [f64]) -> Result<()> {
    let send = values.to_vec();
    comm()?.all_reduce_into(&send[..], values, SystemOperation::sum());
    Ok(())
}

pub(super) fn broadcast_f32(values: &mut [f32]) -> Result<()> {
    comm()?.process_at_rank(0).broadcast_into(values);
    Ok(())
}

pub(super) fn broadcast_bytes(values: &mut [u8]) -> Result<()> {
    comm()?.process_at_rank(0).broadcast_into(values);
    Ok(())
}

/// Every rank's `mine`, in rank order, on rank 0 (`None` elsewhere).
pub(super) fn gather_bytes(mine: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
    let comm = comm()?;
    let root = comm.process_at_rank(0);
    let len = i32::try_from(mine.len()).context("more than 2 GiB to gather from one process")?;
    if comm.rank() != 0 {
        root.gather_into(&len);
        root.gather_varcount_into(mine);
        return Ok(None);
    }
    let mut counts = vec![0i32; comm.size() as usize];
    root.gather_into_root(&len, &mut counts[..]);
    // MPI counts and offsets are C ints: the whole gather must stay under 2 GiB.
    let mut displs = Vec::with_capacity(counts.len());
    let mut at = 0i32;
    for &c in &counts {
        displs.push(at);
        at = at
            .checked_add(c)
            .context("more than 2 GiB to gather on rank 0")?;
    }
    let mut all = vec![0u8; counts.iter().map(|&c| c as usize).sum()];
    let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
    root.gather_varcount_into_root(mine, &mut partition);
    Ok(Some(
        displs
            .iter()
            .zip(&counts)
            .map(|(&d, &c)| all[d as usize..(d + c) as usize].to_vec())
            .collect(),
    ))
}

pub(super) fn barrier() -> Result<()> {
    comm()?.barrier();
    Ok(())
}

pub(super) fn finish(succeeded: bool) {
    let universe = UNIVERSE.lock().expect("MPI state poisoned").take();
    match (universe, succeeded) {
        (Some(u), true) => drop(u), // MPI_Finalize
        // The others may wait in a collective this process will not join: end them all.
        (Some(u), false) => u.world().abort(2),
        (None, _) => {}
    }
}
