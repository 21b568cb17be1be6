//! The C ABI of `shim.cpp`: opaque handles and the calls on them. Every call returns NULL on
//! success or a `malloc`'ed error message that [`take_error`] turns into a `String` and frees.

use std::ffi::{c_char, c_int, CStr};
use torch_sys::C_tensor;

/// A `c10d::TCPStore` (behind `c10::intrusive_ptr<c10d::Store>`).
#[repr(C)]
pub struct DistStore {
    _private: [u8; 0],
}

/// A `c10d::ProcessGroupGloo`.
#[repr(C)]
pub struct DistGroup {
    _private: [u8; 0],
}

/// A `c10d::Work`: a started collective.
#[repr(C)]
pub struct DistWork {
    _private: [u8; 0],
}

extern "C" {
    pub fn dist_free_string(s: *mut c_char);
    pub fn dist_store_new(
        host: *const c_char,
        port: u16,
        world_size: c_int,
        is_master: c_int,
        timeout_ms: i64,
        wait_workers: c_int,
        out: *mut *mut DistStore,
    ) -> *mut c_char;
    pub fn dist_store_free(s: *mut DistStore);
    pub fn dist_store_world_size(
        s: *mut DistStore,
        rank: c_int,
        world_size: c_int,
        master_world_size: *mut c_int,
    ) -> *mut c_char;
    pub fn dist_gloo_new(
        store: *mut DistStore,
        rank: c_int,
        world_size: c_int,
        timeout_ms: i64,
        out: *mut *mut DistGroup,
    ) -> *mut c_char;
    pub fn dist_group_free(g: *mut DistGroup);
    pub fn dist_all_reduce_sum(
        g: *mut DistGroup,
        t: *mut C_tensor,
        out: *mut *mut DistWork,
    ) -> *mut c_char;
    pub fn dist_broadcast(
        g: *mut DistGroup,
        t: *mut C_tensor,
        root: c_int,
        out: *mut *mut DistWork,
    ) -> *mut c_char;
    pub fn dist_all_gather(
        g: *mut DistGroup,
        outputs: *const *mut C_tensor,
        n: c_int,
        input: *mut C_tensor,
        out: *mut *mut DistWork,
    ) -> *mut c_char;
    pub fn dist_all_gather_flat(
        g: *mut DistGroup,
        output: *mut C_tensor,
        input: *mut C_tensor,
        out: *mut *mut DistWork,
    ) -> *mut c_char;
    pub fn dist_barrier(g: *mut DistGroup, out: *mut *mut DistWork) -> *mut c_char;
    pub fn dist_work_wait(w: *mut DistWork, timeout_ms: i64) -> *mut c_char;
    pub fn dist_work_free(w: *mut DistWork);
}

#[cfg(dist_nccl)]
extern "C" {
    pub fn dist_nccl_new(
        store: *mut DistStore,
        rank: c_int,
        world_size: c_int,
        timeout_ms: i64,
        out: *mut *mut DistGroup,
    ) -> *mut c_char;
    pub fn dist_nccl_barrier(
        g: *mut DistGroup,
        device: c_int,
        out: *mut *mut DistWork,
    ) -> *mut c_char;
}

/// `Ok(())` for NULL, else the message (and the string freed).
///
/// # Safety
/// `err` is NULL or a string returned by one of the calls above, not yet freed.
pub unsafe fn take_error(err: *mut c_char) -> Result<(), String> {
    if err.is_null() {
        return Ok(());
    }
    let message = CStr::from_ptr(err).to_string_lossy().trim().to_owned();
    dist_free_string(err);
    Err(message)
}

/// The handle tch's tensor wraps (an `at::Tensor*` on the C++ side), for calls that write into
/// the tensor's storage (the handle itself is not changed).
pub fn tensor_ptr(t: &tch::Tensor) -> *mut C_tensor {
    t.as_ptr() as *mut C_tensor
}
