//! [`ProcessGroup`]: a c10d TCPStore rendezvous and a Gloo process group on it, with the
//! collectives on tch tensors, checked on the Rust side before any communication.

use std::ffi::{c_int, CString};
use std::ptr::{self, NonNull};
use std::time::Duration;

use tch::{Device, Kind, Tensor};

use crate::error::{DistError, Result};
use crate::ffi;
use crate::rendezvous::Rendezvous;

/// The communication backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Gloo: CPU tensors (in libtorch_cpu).
    Gloo,
    /// NCCL: CUDA tensors (in libtorch_cuda), one GPU per rank (`LOCAL_RANK`); only with the
    /// `nccl` cargo feature and the CUDA headers at build time ([`nccl_available`]).
    Nccl,
}

impl Backend {
    /// `Gloo` / `NCCL`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "Gloo",
            Backend::Nccl => "NCCL",
        }
    }
}

/// Whether this build has the NCCL backend: `Ok(())`, or why not.
pub fn nccl_available() -> std::result::Result<(), &'static str> {
    if cfg!(dist_nccl) {
        Ok(())
    } else {
        Err(match option_env!("DIST_NCCL_MISSING") {
            Some(why) => why,
            None => "the dist crate was built without its `nccl` cargo feature",
        })
    }
}

/// The reduction of [`ProcessGroup::all_reduce`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// The sum over the ranks.
    Sum,
    /// The mean over the ranks (Gloo has no average: the sum divided by the world size, for
    /// floating-point tensors only).
    Avg,
}

/// A c10d TCPStore: rank 0 serves it, the others connect.
struct Store(NonNull<ffi::DistStore>);

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: created by dist_store_new, freed once here.
        unsafe { ffi::dist_store_free(self.0.as_ptr()) }
    }
}

/// A process group: every rank of the rendezvous, connected pairwise through the backend.
/// Every rank must call the same collectives in the same order on tensors of the same shapes
/// and dtypes, as with `torch.distributed`.
pub struct ProcessGroup {
    group: NonNull<ffi::DistGroup>,
    _store: Store,
    rank: usize,
    world_size: usize,
    backend: Backend,
    timeout: Duration,
    /// Where this rank's tensors live: the CPU for Gloo, CUDA device `LOCAL_RANK` for NCCL.
    device: Device,
}

// SAFETY: c10d's process groups are thread-safe (collectives are enqueued under the backend's
// own lock and run on its worker threads); the store is only used by the group after creation.
unsafe impl Send for ProcessGroup {}
// SAFETY: as above; no method takes `&mut self`.
unsafe impl Sync for ProcessGroup {}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessGroup")
            .field("backend", &self.backend)
            .field("rank", &self.rank)
            .field("world_size", &self.world_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

fn to_c_int(n: usize) -> c_int {
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

impl ProcessGroup {
    /// Meets the other ranks at the rendezvous's TCPStore (rank 0 serves it and waits for all
    /// `world_size` ranks) and connects the backend; each step fails after `timeout`. The
    /// timeout is also the backend's for every collective.
    pub fn new(rv: &Rendezvous, backend: Backend, timeout: Duration) -> Result<Self> {
        if backend == Backend::Nccl {
            nccl_available().map_err(|why| DistError::Unsupported {
                backend: "NCCL",
                why,
            })?;
        }
        let rendezvous_error = |message: String| DistError::Rendezvous {
            addr: rv.master_addr.clone(),
            port: rv.master_port,
            rank: rv.rank,
            world_size: rv.world_size,
            timeout,
            message,
        };
        let host = CString::new(rv.master_addr.as_str())
            .map_err(|_| rendezvous_error("MASTER_ADDR holds a NUL byte".to_owned()))?;
        let mut store = ptr::null_mut();
        // SAFETY: host outlives the call; store is written on success.
        let err = unsafe {
            ffi::dist_store_new(
                host.as_ptr(),
                rv.master_port,
                to_c_int(rv.world_size),
                c_int::from(rv.is_master()),
                millis(timeout),
                1,
                &mut store,
            )
        };
        // SAFETY: err comes from the shim.
        unsafe { ffi::take_error(err) }.map_err(|m| rendezvous_error(hint_rendezvous(m, rv)))?;
        let store = Store(
            NonNull::new(store)
                .ok_or_else(|| rendezvous_error("the shim returned no store".to_owned()))?,
        );
        let mut master_world: c_int = 0;
        // SAFETY: store is live.
        let err = unsafe {
            ffi::dist_store_world_size(
                store.0.as_ptr(),
                to_c_int(rv.rank),
                to_c_int(rv.world_size),
                &mut master_world,
            )
        };
        // SAFETY: err comes from the shim.
        unsafe { ffi::take_error(err) }.map_err(rendezvous_error)?;
        if usize::try_from(master_world).ok() != Some(rv.world_size) {
            return Err(DistError::Env {
                var: "WORLD_SIZE",
                expected: format!("the same on every rank: rank 0 has WORLD_SIZE={master_world}"),
                found: format!("WORLD_SIZE={} on rank {}", rv.world_size, rv.rank),
            });
        }
        let mut group = ptr::null_mut();
        // SAFETY: store is live; group is written on success.
        let err = unsafe {
            let new_group = match backend {
                #[cfg(dist_nccl)]
                Backend::Nccl => ffi::dist_nccl_new,
                _ => ffi::dist_gloo_new,
            };
            new_group(
                store.0.as_ptr(),
                to_c_int(rv.rank),
                to_c_int(rv.world_size),
                millis(timeout),
                &mut group,
            )
        };
        let group_error = |message: String| DistError::Group {
            backend: backend.name(),
            rank: rv.rank,
            world_size: rv.world_size,
            timeout,
            message,
        };
        // SAFETY: err comes from the shim.
        unsafe { ffi::take_error(err) }.map_err(|m| group_error(hint_peer(m)))?;
        let group = NonNull::new(group)
            .ok_or_else(|| group_error("the shim returned no process group".to_owned()))?;
        Ok(ProcessGroup {
            group,
            _store: store,
            rank: rv.rank,
            world_size: rv.world_size,
            backend,
            timeout,
            device: match backend {
                Backend::Gloo => Device::Cpu,
                Backend::Nccl => Device::Cuda(rv.local_rank),
            },
        })
    }

    /// The group of torchrun's environment ([`Rendezvous::from_env`]); `Ok(None)` when
    /// `WORLD_SIZE` is unset (one process alone).
    pub fn from_env(backend: Backend, timeout: Duration) -> Result<Option<Self>> {
        match Rendezvous::from_env()? {
            Some(rv) => Ok(Some(ProcessGroup::new(&rv, backend, timeout)?)),
            None => Ok(None),
        }
    }

    /// This process, `0..world_size`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Processes in the group.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where this rank's tensors must be: the CPU (Gloo) or its CUDA device (NCCL).
    pub fn device(&self) -> Device {
        self.device
    }

    /// The timeout of every collective.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn op_error(&self, op: &'static str, message: String) -> DistError {
        DistError::Op {
            op,
            rank: self.rank,
            world_size: self.world_size,
            timeout: self.timeout,
            message: hint_peer(message),
        }
    }

    fn check(&self, op: &'static str, t: &Tensor) -> Result<()> {
        if !t.defined() {
            return Err(DistError::Tensor {
                op,
                expected: "a defined tensor".into(),
                got: "an undefined one".into(),
            });
        }
        if t.device() != self.device {
            return Err(DistError::Tensor {
                op,
                expected: format!("a tensor on {:?} for {}", self.device, self.backend.name()),
                got: format!("one on {:?}", t.device()),
            });
        }
        if !t.is_contiguous() {
            return Err(DistError::Tensor {
                op,
                expected: "a contiguous tensor".into(),
                got: format!("strides {:?} for shape {:?}", t.stride(), t.size()),
            });
        }
        Ok(())
    }

    /// Wraps a started work.
    fn started(
        &self,
        op: &'static str,
        err: *mut std::ffi::c_char,
        work: *mut ffi::DistWork,
    ) -> Result<Work> {
        // SAFETY: err comes from the shim.
        unsafe { ffi::take_error(err) }.map_err(|m| self.op_error(op, m))?;
        let work = NonNull::new(work)
            .ok_or_else(|| self.op_error(op, "the shim returned no work".to_owned()))?;
        Ok(Work {
            work,
            op,
            rank: self.rank,
            world_size: self.world_size,
            timeout: self.timeout,
            then_divide: None,
        })
    }

    /// Starts reducing `t` over the ranks, in place (contiguous CPU tensor); the result is
    /// there once [`Work::wait`] returns.
    pub fn all_reduce_start(&self, t: &Tensor, op: ReduceOp) -> Result<Work> {
        const OP: &str = "all_reduce";
        self.check(OP, t)?;
        if op == ReduceOp::Avg && !t.is_floating_point() {
            return Err(DistError::Tensor {
                op: OP,
                expected: "a floating-point tensor for ReduceOp::Avg".into(),
                got: format!("{:?}", t.kind()),
            });
        }
        let mut work = ptr::null_mut();
        // SAFETY: group and tensor are live; the shim keeps its own reference to the tensor.
        let err =
            unsafe { ffi::dist_all_reduce_sum(self.group.as_ptr(), ffi::tensor_ptr(t), &mut work) };
        let mut work = self.started(OP, err, work)?;
        if op == ReduceOp::Avg && self.world_size > 1 {
            work.then_divide = Some((t.shallow_clone(), self.world_size));
        }
        Ok(work)
    }

    /// Reduces `t` over the ranks in place and waits.
    pub fn all_reduce(&self, t: &Tensor, op: ReduceOp) -> Result<()> {
        self.all_reduce_start(t, op)?.wait()
    }

    /// Copies rank `root`'s `t` into every rank's `t`, in place, and waits.
    pub fn broadcast(&self, t: &Tensor, root: usize) -> Result<()> {
        const OP: &str = "broadcast";
        self.check(OP, t)?;
        if root >= self.world_size {
            return Err(DistError::Tensor {
                op: OP,
                expected: format!("a root rank below the world size {}", self.world_size),
                got: format!("root {root}"),
            });
        }
        let mut work = ptr::null_mut();
        // SAFETY: as in all_reduce_start.
        let err = unsafe {
            ffi::dist_broadcast(
                self.group.as_ptr(),
                ffi::tensor_ptr(t),
                to_c_int(root),
                &mut work,
            )
        };
        self.started(OP, err, work)?.wait()
    }

    /// Every rank's `t`, in rank order (each the shape and dtype of `t`).
    pub fn all_gather(&self, t: &Tensor) -> Result<Vec<Tensor>> {
        const OP: &str = "all_gather";
        self.check(OP, t)?;
        let outputs: Vec<Tensor> = (0..self.world_size).map(|_| t.empty_like()).collect();
        let ptrs: Vec<_> = outputs.iter().map(ffi::tensor_ptr).collect();
        let mut work = ptr::null_mut();
        // SAFETY: ptrs point at the live outputs; the shim copies the handles.
        let err = unsafe {
            ffi::dist_all_gather(
                self.group.as_ptr(),
                ptrs.as_ptr(),
                to_c_int(ptrs.len()),
                ffi::tensor_ptr(t),
                &mut work,
            )
        };
        self.started(OP, err, work)?.wait()?;
        Ok(outputs)
    }

    /// Every rank's `t` concatenated along a new first dimension: `[world_size, ...t.shape]`,
    /// gathered into one buffer.
    pub fn all_gather_flat(&self, t: &Tensor) -> Result<Tensor> {
        const OP: &str = "all_gather_flat";
        self.check(OP, t)?;
        let world = i64::try_from(self.world_size).unwrap_or(i64::MAX);
        // Gloo gathers along dim 0: flat views in, one flat buffer out, then the rank dimension.
        let input = t.view([-1]);
        let output = Tensor::empty([world * t.numel() as i64], (t.kind(), self.device));
        let mut work = ptr::null_mut();
        // SAFETY: as in all_reduce_start.
        let err = unsafe {
            ffi::dist_all_gather_flat(
                self.group.as_ptr(),
                ffi::tensor_ptr(&output),
                ffi::tensor_ptr(&input),
                &mut work,
            )
        };
        self.started(OP, err, work)?.wait()?;
        let mut shape = vec![world];
        shape.extend(t.size());
        Ok(output.view(shape.as_slice()))
    }

    /// Waits until every rank has called it.
    pub fn barrier(&self) -> Result<()> {
        let mut work = ptr::null_mut();
        // SAFETY: group is live.
        let err = unsafe {
            match self.device {
                #[cfg(dist_nccl)]
                Device::Cuda(i) => {
                    ffi::dist_nccl_barrier(self.group.as_ptr(), to_c_int(i), &mut work)
                }
                _ => ffi::dist_barrier(self.group.as_ptr(), &mut work),
            }
        };
        self.started("barrier", err, work)?.wait()
    }

    /// The sum of one `f64` per rank (a logged loss, a count), through a float64 all-reduce.
    pub fn sum_scalar(&self, x: f64) -> Result<f64> {
        let t = Tensor::from_slice(&[x])
            .to_kind(Kind::Double)
            .to_device(self.device);
        self.all_reduce(&t, ReduceOp::Sum)?;
        Ok(t.double_value(&[0]))
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: created by dist_gloo_new, freed once here (before the store, which the group
        // holds its own reference to anyway).
        unsafe { ffi::dist_group_free(self.group.as_ptr()) }
    }
}

fn hint_rendezvous(message: String, rv: &Rendezvous) -> String {
    let hint = if message.contains("waiting for clients") {
        format!(
            " (a rank never arrived: all WORLD_SIZE={} processes must be started with the same \
             MASTER_ADDR and MASTER_PORT)",
            rv.world_size
        )
    } else if message.contains("EADDRINUSE") || message.contains("address already in use") {
        format!(
            " (MASTER_PORT={} is in use by another process: pick a free port)",
            rv.master_port
        )
    } else if !rv.is_master() {
        " (rank 0, which serves the store, is not there: was it started, is MASTER_ADDR right?)"
            .to_owned()
    } else {
        String::new()
    };
    format!("{message}{hint}")
}

/// What Gloo's messages about a lost or missing peer mean, appended to them.
fn hint_peer(message: String) -> String {
    let hint = if message.contains("Connection closed by peer")
        || message.contains("Connection reset by peer")
    {
        " (the peer at that address exited or was killed: see its own output)"
    } else if message.contains("wait timeout") && message.contains("keys") {
        " (the ranks of those store keys never joined the group: were all started, with the \
         same WORLD_SIZE?)"
    } else if message.contains("Timed out waiting") || message.contains("timed out") {
        " (a peer never called the same collective within the timeout)"
    } else {
        ""
    };
    format!("{message}{hint}")
}

/// A started collective; its tensor must not be read or written until [`Work::wait`] returns.
/// Dropping it without waiting leaves the operation running in the backend.
#[must_use = "a started collective must be waited for before its tensor is read"]
pub struct Work {
    work: NonNull<ffi::DistWork>,
    op: &'static str,
    rank: usize,
    world_size: usize,
    timeout: Duration,
    then_divide: Option<(Tensor, usize)>,
}

// SAFETY: a c10d Work is waited on from any thread (its state is under its own mutex).
unsafe impl Send for Work {}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Work").field("op", &self.op).finish()
    }
}

/// Slack on top of the backend's own timeout before the wait gives up by itself: the backend
/// fails first, with its own message, when a peer is lost.
const WAIT_SLACK: Duration = Duration::from_secs(5);

impl Work {
    /// Blocks until the collective completes; fails with the backend's error, or after the
    /// group's timeout (plus a few seconds) when it neither completes nor fails.
    pub fn wait(mut self) -> Result<()> {
        // SAFETY: work is live until Drop.
        let err =
            unsafe { ffi::dist_work_wait(self.work.as_ptr(), millis(self.timeout + WAIT_SLACK)) };
        // SAFETY: err comes from the shim.
        unsafe { ffi::take_error(err) }.map_err(|message| DistError::Op {
            op: self.op,
            rank: self.rank,
            world_size: self.world_size,
            timeout: self.timeout,
            message: hint_peer(message),
        })?;
        if let Some((t, n)) = self.then_divide.take() {
            let mut t = t;
            let _ = t.g_div_scalar_(i64::try_from(n).unwrap_or(i64::MAX));
        }
        Ok(())
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        // SAFETY: created by the shim, freed once here; the backend keeps its own reference.
        unsafe { ffi::dist_work_free(self.work.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rv(rank: usize) -> Rendezvous {
        Rendezvous {
            master_addr: "127.0.0.1".into(),
            master_port: 29500,
            rank,
            world_size: 2,
            local_rank: rank,
            local_world_size: 2,
        }
    }

    #[test]
    fn rendezvous_failures_say_what_to_check() {
        let m = hint_rendezvous(
            "Timed out ... waiting for clients. 1/2 clients joined.".into(),
            &rv(0),
        );
        assert!(
            m.contains("never arrived") && m.contains("WORLD_SIZE=2"),
            "{m}"
        );
        let m = hint_rendezvous(
            "name: EADDRINUSE, message: address already in use".into(),
            &rv(0),
        );
        assert!(m.contains("MASTER_PORT=29500 is in use"), "{m}");
        let m = hint_rendezvous("The client socket has timed out".into(), &rv(1));
        assert!(m.contains("rank 0") && m.contains("MASTER_ADDR"), "{m}");
        assert_eq!(hint_rendezvous("other".into(), &rv(0)), "other");
    }

    #[test]
    fn peer_failures_say_what_happened() {
        let m = hint_peer("pair.cc:547] Connection closed by peer [127.0.0.1]:4000".into());
        assert!(m.contains("exited or was killed"), "{m}");
        let m = hint_peer("wait timeout after 3000ms, keys: /0/1".into());
        assert!(
            m.contains("never joined") && m.contains("WORLD_SIZE"),
            "{m}"
        );
        assert_eq!(hint_peer("other".into()), "other");
    }

    #[test]
    fn millis_never_rounds_to_no_timeout() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_secs(2)), 2000);
        assert_eq!(millis(Duration::MAX), i64::MAX);
    }
}
