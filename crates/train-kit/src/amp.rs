//! bf16 mixed precision: [`autocast_bf16`] runs a closure under CUDA autocast with
//! bfloat16 as the reduced dtype.
//!
//! `tch::autocast` only toggles autocast, whose CUDA dtype defaults to float16. tch exposes no
//! setter for the dtype, so the libtorch functions `at::autocast::get_autocast_dtype` /
//! `set_autocast_dtype` are looked up once with `dlsym` (their Itanium-mangled names; both
//! take `int8_t`-backed enums, so the C ABI matches) and the previous dtype is restored
//! afterwards, panics included. The dtype is thread-local in libtorch, as is autocast.
//!
//! On CPU (no CUDA device) the closure runs unchanged: autocast is a no-op there by design,
//! CPU training stays fp32 and bitwise reproducible. If the symbols cannot be found the
//! closure also runs in full precision (never silently in float16) and a warning is printed
//! once.

use std::sync::{Once, OnceLock};
use tch::Kind;

const CUDA: i8 = 1; // c10::DeviceType::CUDA
const BFLOAT16: i8 = 15; // c10::ScalarType::BFloat16

type GetDtype = unsafe extern "C" fn(i8) -> i8;
type SetDtype = unsafe extern "C" fn(i8, i8);

struct DtypeFns {
    get: GetDtype,
    set: SetDtype,
}

fn dtype_fns() -> Option<&'static DtypeFns> {
    static FNS: OnceLock<Option<DtypeFns>> = OnceLock::new();
    FNS.get_or_init(|| {
        // SAFETY: dlsym with NUL-terminated names; the pointers are only transmuted when
        // non-null, to the signatures of the libtorch 2.x declarations
        // `ScalarType get_autocast_dtype(DeviceType)` and
        // `void set_autocast_dtype(DeviceType, ScalarType)` (both enums are int8_t).
        unsafe {
            let get = libc::dlsym(
                libc::RTLD_DEFAULT,
                c"_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE".as_ptr(),
            );
            let set = libc::dlsym(
                libc::RTLD_DEFAULT,
                c"_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE".as_ptr(),
            );
            if get.is_null() || set.is_null() {
                None
            } else {
                Some(DtypeFns {
                    get: std::mem::transmute::<*mut libc::c_void, GetDtype>(get),
                    set: std::mem::transmute::<*mut libc::c_void, SetDtype>(set),
                })
            }
        }
    })
    .as_ref()
}

/// The CUDA autocast dtype of this thread (`Some(Kind::Half)` unless changed), or `None`
/// when the libtorch symbols were not found.
pub fn cuda_autocast_dtype() -> Option<Kind> {
    let fns = dtype_fns()?;
    // SAFETY: see `dtype_fns`.
    let code = unsafe { (fns.get)(CUDA) };
    Some(match code {
        5 => Kind::Half,
        6 => Kind::Float,
        15 => Kind::BFloat16,
        _ => Kind::Float,
    })
}

struct RestoreDtype {
    set: SetDtype,
    prev: i8,
}

impl Drop for RestoreDtype {
    fn drop(&mut self) {
        // SAFETY: see `dtype_fns`.
        unsafe { (self.set)(CUDA, self.prev) }
    }
}

/// Runs `f` under CUDA autocast in bfloat16 when `enabled` and a CUDA device is available;
/// `enabled = false` runs `f` with autocast switched off (for fp32 islands inside an
/// autocast region). On CPU-only machines `f` runs unchanged. See the module docs.
pub fn autocast_bf16<T>(enabled: bool, f: impl FnOnce() -> T) -> T {
    if !enabled || !tch::Cuda::is_available() {
        return tch::autocast(false, f);
    }
    let Some(fns) = dtype_fns() else {
        static WARN: Once = Once::new();
        WARN.call_once(|| {
            eprintln!(
                "train-kit: at::autocast::set_autocast_dtype not found in libtorch; \
                 autocast_bf16 runs in full precision"
            )
        });
        return f();
    };
    // SAFETY: see `dtype_fns`.
    let _restore = RestoreDtype {
        set: fns.set,
        prev: unsafe { (fns.get)(CUDA) },
    };
    // SAFETY: see `dtype_fns`.
    unsafe { (fns.set)(CUDA, BFLOAT16) };
    tch::autocast(true, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_symbols_resolve_and_round_trip() {
        let fns = dtype_fns().expect("libtorch autocast dtype symbols");
        assert_eq!(cuda_autocast_dtype(), Some(Kind::Half));
        {
            // SAFETY: see `dtype_fns`.
            let _restore = RestoreDtype {
                set: fns.set,
                prev: unsafe { (fns.get)(CUDA) },
            };
            unsafe { (fns.set)(CUDA, BFLOAT16) };
            assert_eq!(cuda_autocast_dtype(), Some(Kind::BFloat16));
        }
        assert_eq!(cuda_autocast_dtype(), Some(Kind::Half));
    }

    #[test]
    fn cpu_is_a_no_op() {
        let t = tch::Tensor::ones([2, 2], (Kind::Float, tch::Device::Cpu));
        let y = autocast_bf16(true, || t.matmul(&t));
        assert_eq!(y.kind(), Kind::Float);
        assert_eq!(autocast_bf16(false, || 7), 7);
    }
}
