//! Sums of GPU tensors over the world with NCCL (`--features nccl`), in place on the device: the
//! gradient buckets of a data-parallel step never leave the GPUs. MPI still launches the job and
//! carries everything else; rank 0's NCCL id reaches the other ranks by an MPI broadcast.
//!
//! The communicator is built on the stream candle's CUDA device runs on, so a sum is ordered
//! after the kernels that produced its input; like MPI, only the main thread calls it.

use std::ffi::c_char;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Result};
use candle_core::cuda::cudarc::nccl::safe::{Comm, Id, ReduceOp};
use candle_core::{CpuStorage, CudaStorage, Device, InplaceOp1, Layout, Tensor};

use super::World;

/// NCCL's communicator is a raw handle: one thread at a time may use it, so it is `Send` (to sit
/// in a global) and deliberately not `Sync`.
struct NcclComm(Comm);
// SAFETY: only the main thread calls collectives (see the module docs); the mutex serialises
// access anyway.
unsafe impl Send for NcclComm {}

static COMM: Mutex<Option<NcclComm>> = Mutex::new(None);

/// Joins `world`'s NCCL communicator on `device` (every rank calls this; NCCL's init waits for
/// all of them). `share_id` sends rank 0's id to every rank.
pub(super) fn init(
    world: &World,
    device: &Device,
    share_id: impl FnOnce(&mut [u8; 128]) -> Result<()>,
) -> Result<()> {
    let stream = match device {
        Device::Cuda(d) => d.cuda_stream(),
        _ => bail!("NCCL needs a CUDA device, not {device:?}"),
    };
    let mut bytes = [0u8; 128];
    if world.rank == 0 {
        let id = Id::new().map_err(|e| anyhow!("ncclGetUniqueId failed: {:?}", e.0))?;
        // `c_char` is i8 or u8 depending on the platform: the bytes travel as u8.
        bytes = id.internal().map(|c| c as u8);
    }
    share_id(&mut bytes)?;
    let id = Id::uninit(bytes.map(|b| b as c_char));
    let comm = Comm::from_rank(stream, world.rank, world.size, id).map_err(|e| {
        anyhow!(
            "ncclCommInitRank (rank {} of {}) failed: {:?}",
            world.rank,
            world.size,
            e.0
        )
    })?;
    *COMM.lock().expect("NCCL state poisoned") = Some(NcclComm(comm));
    Ok(())
}

/// Whether a communicator is set up (a CUDA run of several processes).
pub(super) fn active() -> bool {
    COMM.lock().expect("NCCL state poisoned").is_some()
}

/// Sums the contiguous f32 CUDA tensor `t` over the world, in place.
pub(super) fn sum_in_place(t: &Tensor) -> Result<()> {
    let guard = COMM.lock().expect("NCCL state poisoned");
    let Some(NcclComm(comm)) = guard.as_ref() else {
        bail!("NCCL is not set up");
    };
    t.inplace_op1(&AllReduceSum(comm))?;
    // NCCL returns once the sum is queued: waiting here puts its time in the collectives' count
    // (the step needs the sum next anyway).
    t.device().synchronize()?;
    Ok(())
}

/// Ends the communicator (before MPI finalises).
pub(super) fn finish() {
    COMM.lock().expect("NCCL state poisoned").take();
}

/// `ncclAllReduce` (sum) of a tensor's own storage.
struct AllReduceSum<'a>(&'a Comm);

impl InplaceOp1 for AllReduceSum<'_> {
    fn name(&self) -> &'static str {
        "nccl-all-reduce-sum"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout) -> candle_core::Result<()> {
        candle_core::bail!("an NCCL all-reduce needs a CUDA tensor")
    }

    fn cuda_fwd(&self, storage: &mut CudaStorage, layout: &Layout) -> candle_core::Result<()> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("an NCCL all-reduce needs a contiguous tensor");
        };
        let slice = storage.as_cuda_slice_mut::<f32>()?;
        let mut view = slice.slice_mut(start..end);
        self.0
            .all_reduce_in_place(&mut view, &ReduceOp::Sum)
            .map_err(|e| candle_core::Error::msg(format!("ncclAllReduce failed: {:?}", e.0)))?;
        Ok(())
    }
}

/// A world-of-one communicator on `device` summing a tensor onto itself: what
/// `clasp device-check` runs to show NCCL loads, initialises and runs on this machine's GPU.
pub fn self_test(device: &Device) -> Result<f32> {
    let world = World::single();
    init(&world, device, |_| Ok(()))?;
    let values: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 7.0).collect();
    let t = Tensor::from_slice(&values, values.len(), device)?;
    let result = sum_in_place(&t).and_then(|()| Ok(t.to_vec1::<f32>()?));
    finish();
    let got = result?;
    Ok(got
        .iter()
        .zip(&values)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max))
}
