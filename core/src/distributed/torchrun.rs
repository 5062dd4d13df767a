//! A job launched torchrun-style: each process learns its place from `RANK`, `WORLD_SIZE` and
//! `LOCAL_RANK`, and rank 0's address from `MASTER_ADDR` / `MASTER_PORT` — what torchrun,
//! Kubeflow's PyTorchJob (without `LOCAL_RANK`: one process per pod, so 0) and many Slurm
//! scripts set. Such a job has no MPI: its processes meet through NCCL's own bootstrap, rank 0
//! listening at `NCCL_COMM_ID` (`host:port`), which every rank's `ncclGetUniqueId` reads, so
//! every rank makes the same id without a broadcast. Where `NCCL_COMM_ID` is unset it is
//! `MASTER_ADDR:MASTER_PORT`, except under torchrun itself (`TORCHELASTIC_RUN_ID` set), whose
//! agent holds `MASTER_PORT` for its own store: there `NCCL_COMM_ID` must name another free port
//! of rank 0's host.

use anyhow::{bail, Result};

/// This process's place in a torchrun-style job (of more than one process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub rank: usize,
    pub size: usize,
    pub local_rank: usize,
    /// `host:port` where rank 0 listens for NCCL's bootstrap.
    pub comm_id: String,
}

impl Launch {
    /// From this process's environment; `None` unless `WORLD_SIZE` says more than one process.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// From the variables `var` returns; a missing or malformed one is named.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let number = |name: &str| -> Result<Option<usize>> {
            match var(name) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<usize>() {
                    Ok(n) => Ok(Some(n)),
                    Err(_) => bail!("{name}={v:?} is not a process count or index"),
                },
            }
        };
        let size = match number("WORLD_SIZE")? {
            Some(n) if n > 1 => n,
            _ => return Ok(None),
        };
        let required = |name: &str| -> Result<usize> {
            number(name)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "WORLD_SIZE={size} (a torchrun-style job) but {name} is not set: set RANK, \
                     MASTER_ADDR and MASTER_PORT (and LOCAL_RANK, where several processes share \
                     a machine) on every process"
                )
            })
        };
        let rank = required("RANK")?;
        // Kubeflow's PyTorchJob runs one process per pod and sets no LOCAL_RANK.
        let local_rank = number("LOCAL_RANK")?.unwrap_or(0);
        if rank >= size {
            bail!("RANK={rank} is not below WORLD_SIZE={size}");
        }
        let comm_id = match (var("NCCL_COMM_ID"), var("MASTER_ADDR"), var("MASTER_PORT")) {
            (Some(id), _, _) => id,
            (None, ..) if var("TORCHELASTIC_RUN_ID").is_some() => bail!(
                "started by torchrun, whose agent holds MASTER_PORT for its own store: set \
                 NCCL_COMM_ID=host:port to another free port of rank 0's host (every process \
                 the same), where the processes meet"
            ),
            (None, Some(addr), Some(port)) => {
                if port.trim().parse::<u16>().is_err() {
                    bail!("MASTER_PORT={port:?} is not a port number");
                }
                let addr = addr.trim();
                // An IPv6 address is bracketed before its port.
                match addr.contains(':') && !addr.starts_with('[') {
                    true => format!("[{addr}]:{}", port.trim()),
                    false => format!("{addr}:{}", port.trim()),
                }
            }
            (None, addr, _) => bail!(
                "WORLD_SIZE={size} (a torchrun-style job) but {} is not set: rank 0's host and \
                 a free port (MASTER_ADDR, MASTER_PORT), or NCCL_COMM_ID=host:port",
                if addr.is_none() {
                    "MASTER_ADDR"
                } else {
                    "MASTER_PORT"
                }
            ),
        };
        Ok(Some(Self {
            rank,
            size,
            local_rank,
            comm_id,
        }))
    }

    /// Sets `NCCL_COMM_ID`, which NCCL reads when the communicator is made. Called at the start
    /// of `main`, before any thread that could read the environment exists.
    #[cfg(feature = "nccl")]
    pub fn export_comm_id(&self) {
        std::env::set_var("NCCL_COMM_ID", &self.comm_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(vars: &[(&str, &str)]) -> Result<Option<Launch>> {
        Launch::from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    /// No `WORLD_SIZE`, or one process, is no job; a full set of variables is one (rank 0's
    /// address from MASTER_ADDR:MASTER_PORT unless NCCL_COMM_ID says otherwise, which torchrun
    /// itself needs); LOCAL_RANK defaults to 0; a missing or malformed variable is named.
    #[test]
    fn torchrun_variables_are_read_and_a_missing_one_is_named() -> Result<()> {
        assert_eq!(launch(&[])?, None);
        assert_eq!(launch(&[("WORLD_SIZE", "1"), ("RANK", "0")])?, None);
        let full = [
            ("WORLD_SIZE", "4"),
            ("RANK", "3"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "29500"),
        ];
        let l = launch(&full)?.unwrap();
        assert_eq!((l.rank, l.size, l.local_rank), (3, 4, 1));
        assert_eq!(l.comm_id, "node0:29500");
        let mut own_id = full.to_vec();
        own_id.push(("NCCL_COMM_ID", "node0:29511"));
        assert_eq!(launch(&own_id)?.unwrap().comm_id, "node0:29511");
        let pod: Vec<_> = full
            .iter()
            .copied()
            .filter(|(k, _)| *k != "LOCAL_RANK")
            .collect();
        assert_eq!(launch(&pod)?.unwrap().local_rank, 0);
        let mut v6 = full.to_vec();
        v6[3] = ("MASTER_ADDR", "fd00::1");
        assert_eq!(launch(&v6)?.unwrap().comm_id, "[fd00::1]:29500");
        let mut torchrun = full.to_vec();
        torchrun.push(("TORCHELASTIC_RUN_ID", "job7"));
        let err = launch(&torchrun).unwrap_err().to_string();
        assert!(err.contains("set NCCL_COMM_ID"), "{err}");
        torchrun.push(("NCCL_COMM_ID", "node0:29501"));
        assert_eq!(launch(&torchrun)?.unwrap().comm_id, "node0:29501");
        for (without, named) in [
            ("RANK", "RANK is not set"),
            ("MASTER_ADDR", "MASTER_ADDR is not set"),
            ("MASTER_PORT", "MASTER_PORT is not set"),
        ] {
            let vars: Vec<_> = full
                .iter()
                .copied()
                .filter(|(k, _)| *k != without)
                .collect();
            let err = launch(&vars).unwrap_err().to_string();
            assert!(err.contains(named), "{err}");
        }
        let err = launch(&[("WORLD_SIZE", "two")]).unwrap_err().to_string();
        assert!(err.contains("WORLD_SIZE=\"two\""), "{err}");
        let mut past = full.to_vec();
        past[1] = ("RANK", "4");
        let err = launch(&past).unwrap_err().to_string();
        assert!(err.contains("RANK=4 is not below WORLD_SIZE=4"), "{err}");
        Ok(())
    }
}
