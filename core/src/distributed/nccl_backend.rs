//! Sums of GPU tensors over the world with NCCL (`--features nccl`), in place on the device: the
//! gradient buckets of a data-parallel step never leave the GPUs. In a job MPI launched, MPI
//! carries everything else and rank 0's NCCL id reaches the other ranks by an MPI broadcast. In
//! a torchrun-style job there is no MPI: every rank makes the same id from `NCCL_COMM_ID`, and
//! the host's collectives (counts, broadcasts, gathers, the barrier) also run here, their values
//! copied to the GPU and back.
//!
//! The communicator is built on the stream candle's CUDA device runs on, so a sum is ordered
//! after the kernels that produced its input; like MPI, only the main thread calls it.

use std::ffi::c_char;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Result};
use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::nccl::safe::{Comm, Id, NcclType, ReduceOp};
use candle_core::cuda_backend::CudaDType;
use candle_core::{CpuStorage, CudaStorage, DType, Device, InplaceOp1, Layout, Tensor, WithDType};

use super::World;

/// NCCL's communicator is a raw handle: one thread at a time may use it, so it is `Send` (to sit
/// in a global) and deliberately not `Sync`.
struct NcclComm(Comm);
// SAFETY: only the main thread calls collectives (see the module docs); the mutex serialises
// access anyway.
unsafe impl Send for NcclComm {}

/// The communicator and the device it runs on (where host values are summed).
static COMM: Mutex<Option<(NcclComm, Device)>> = Mutex::new(None);

/// Where the ranks get the communicator's id.
pub(super) enum IdFrom<'a> {
    /// Rank 0 makes it and this sends it to every rank (an MPI broadcast).
    RankZero(&'a dyn Fn(&mut [u8; 128]) -> Result<()>),
    /// Every rank makes it from `NCCL_COMM_ID`: the same id everywhere, rank 0 listening there.
    Environment,
}

/// Joins `world`'s NCCL communicator on `device` (every rank calls this; NCCL's init waits for
/// all of them).
pub(super) fn init(world: &World, device: &Device, id_from: IdFrom) -> Result<()> {
    let stream = match device {
        Device::Cuda(d) => d.cuda_stream(),
        _ => bail!("NCCL needs a CUDA device, not {device:?}"),
    };
    let new_id = || Id::new().map_err(|e| anyhow!("ncclGetUniqueId failed: {:?}", e.0));
    let id = match id_from {
        IdFrom::RankZero(share) => {
            let mut bytes = [0u8; 128];
            if world.rank == 0 {
                // `c_char` is i8 or u8 depending on the platform: the bytes travel as u8.
                bytes = new_id()?.internal().map(|c| c as u8);
            }
            share(&mut bytes)?;
            Id::uninit(bytes.map(|b| b as c_char))
        }
        IdFrom::Environment => new_id()?,
    };
    let comm = Comm::from_rank(stream, world.rank, world.size, id).map_err(|e| {
        anyhow!(
            "ncclCommInitRank (rank {} of {}) failed: {:?}",
            world.rank,
            world.size,
            e.0
        )
    })?;
    *COMM.lock().expect("NCCL state poisoned") = Some((NcclComm(comm), device.clone()));
    Ok(())
}

/// Whether a communicator is set up (a CUDA run of several processes).
pub(super) fn active() -> bool {
    COMM.lock().expect("NCCL state poisoned").is_some()
}

/// Sums the contiguous f32 CUDA tensor `t` over the world, in place.
pub(super) fn sum_in_place(t: &Tensor) -> Result<()> {
    in_place(t, Collective::Sum)
}

fn in_place(t: &Tensor, collective: Collective) -> Result<()> {
    let guard = COMM.lock().expect("NCCL state poisoned");
    let Some((NcclComm(comm), _)) = guard.as_ref() else {
        bail!("NCCL is not set up");
    };
    t.inplace_op1(&OnStorage(comm, collective))?;
    // NCCL returns once the collective is queued: waiting here puts its time in the
    // collectives' count (the step needs the sum next anyway).
    t.device().synchronize()?;
    Ok(())
}

/// `values` (host memory) through `collective` on the communicator's GPU.
fn on_host<T: WithDType>(values: &mut [T], collective: Collective) -> Result<()> {
    let device = match COMM.lock().expect("NCCL state poisoned").as_ref() {
        Some((_, device)) => device.clone(),
        None => bail!(
            "a torchrun-style job's processes meet on their GPUs: this collective came before \
             the command chose its device"
        ),
    };
    let t = Tensor::from_slice(values, values.len(), &device)?;
    in_place(&t, collective)?;
    values.copy_from_slice(&t.to_vec1::<T>()?);
    Ok(())
}

/// Sums host `values` over the world (a torchrun-style job's counts and scalars).
pub(super) fn sum_host<T: WithDType>(values: &mut [T]) -> Result<()> {
    on_host(values, Collective::Sum)
}

/// Replaces host `values` by rank 0's.
pub(super) fn broadcast_host<T: WithDType>(values: &mut [T]) -> Result<()> {
    on_host(values, Collective::Broadcast)
}

/// Every rank's `mine`, in rank order, on rank 0: the lengths summed from one slot per rank,
/// then each rank's bytes at its offset of a zeroed buffer, summed.
pub(super) fn gather_bytes(world: &World, mine: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
    let mut lengths = vec![0f64; world.size];
    lengths[world.rank] = mine.len() as f64;
    sum_host(&mut lengths)?;
    let lengths: Vec<usize> = lengths.iter().map(|l| *l as usize).collect();
    let offset: usize = lengths[..world.rank].iter().sum();
    let mut all = vec![0u8; lengths.iter().sum()];
    all[offset..offset + mine.len()].copy_from_slice(mine);
    sum_host(&mut all)?;
    if !world.is_main() {
        return Ok(None);
    }
    let mut parts = Vec::with_capacity(world.size);
    let mut rest = &all[..];
    for len in lengths {
        let (part, after) = rest.split_at(len);
        parts.push(part.to_vec());
        rest = after;
    }
    Ok(Some(parts))
}

/// Ends the communicator (before MPI finalises).
pub(super) fn finish() {
    COMM.lock().expect("NCCL state poisoned").take();
}

#[derive(Debug, Clone, Copy)]
enum Collective {
    /// `ncclAllReduce` with a sum.
    Sum,
    /// `ncclBroadcast` from rank 0.
    Broadcast,
}

/// A collective on a tensor's own storage.
struct OnStorage<'a>(&'a Comm, Collective);

impl OnStorage<'_> {
    fn run<T: NcclType + CudaDType>(
        &self,
        storage: &mut CudaStorage,
        (start, end): (usize, usize),
    ) -> candle_core::Result<()> {
        let slice = storage.as_cuda_slice_mut::<T>()?;
        let mut view = slice.slice_mut(start..end);
        let done = match self.1 {
            Collective::Sum => self.0.all_reduce_in_place(&mut view, &ReduceOp::Sum),
            Collective::Broadcast => self.0.broadcast_in_place(&mut view, 0),
        };
        done.map_err(|e| candle_core::Error::msg(format!("NCCL {:?} failed: {:?}", self.1, e.0)))?;
        Ok(())
    }
}

impl InplaceOp1 for OnStorage<'_> {
    fn name(&self) -> &'static str {
        "nccl-collective"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout) -> candle_core::Result<()> {
        candle_core::bail!("an NCCL collective needs a CUDA tensor")
    }

    fn cuda_fwd(&self, storage: &mut CudaStorage, layout: &Layout) -> candle_core::Result<()> {
        let Some(range) = layout.contiguous_offsets() else {
            candle_core::bail!("an NCCL collective needs a contiguous tensor");
        };
        match storage.dtype() {
            DType::F32 => self.run::<f32>(storage, range),
            DType::F64 => self.run::<f64>(storage, range),
            DType::U8 => self.run::<u8>(storage, range),
            other => candle_core::bail!("no NCCL collective for {other:?} here"),
        }
    }
}

/// A world-of-one communicator on `device` summing a tensor onto itself, and running the host
/// collectives a torchrun-style job uses (sums of f64, broadcasts of bytes, a gather): what
/// `clasp device-check` runs to show NCCL loads, initialises and runs on this machine's GPU.
/// Returns the largest gap between what came back and what went in (0 when all is well).
pub fn self_test(device: &Device) -> Result<f32> {
    let world = World::single();
    init(&world, device, IdFrom::RankZero(&|_| Ok(())))?;
    let result = run_self_test(&world, device);
    finish();
    result
}

fn run_self_test(world: &World, device: &Device) -> Result<f32> {
    let values: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 7.0).collect();
    let t = Tensor::from_slice(&values, values.len(), device)?;
    sum_in_place(&t)?;
    let mut gap = (t.to_vec1::<f32>()?.iter().zip(&values))
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let mut counts = [3.0f64, -0.25];
    sum_host(&mut counts)?;
    let mut bytes: Vec<u8> = (0..=255).collect();
    broadcast_host(&mut bytes)?;
    let gathered = gather_bytes(world, &bytes)?;
    let same = counts == [3.0, -0.25]
        && bytes.iter().enumerate().all(|(i, b)| usize::from(*b) == i)
        && gathered == Some(vec![bytes]);
    if !same {
        gap = gap.max(1.0);
    }
    Ok(gap)
}
