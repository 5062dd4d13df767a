//! The world over MPI (rsmpi): `MPI_Init` once, collectives on `MPI_COMM_WORLD`, and
//! `MPI_Finalize` or `MPI_Abort` at the end. Only the main thread calls MPI.

use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use mpi::collective::SystemOperation;
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

#[cfg(feature = "nccl")]
pub(super) fn broadcast_bytes(values: &mut [u8]) -> Result<()> {
    comm()?.process_at_rank(0).broadcast_into(values);
    Ok(())
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
