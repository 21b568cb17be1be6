//! The one `--device` parser and device namer of the workspace's binaries and claims:
//! `auto|cpu|cuda|cuda:N`, `auto` being CUDA when libtorch sees a GPU.

use crate::error::{Result, TrainError};
use tch::Device;

/// Parses `auto|cpu|cuda|cuda:N`. A CUDA device libtorch does not see is an error naming how
/// many it sees.
pub fn parse_device(s: &str) -> Result<Device> {
    let cuda = |n: usize| {
        let count = tch::Cuda::device_count().max(0) as usize;
        if n >= count {
            Err(TrainError::InvalidConfig(format!(
                "device cuda:{n} requested but libtorch sees {count} CUDA device(s) \
                 (run `cargo xtask doctor`)"
            )))
        } else {
            Ok(Device::Cuda(n))
        }
    };
    match s {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => cuda(n),
            _ => Err(TrainError::InvalidConfig(format!(
                "unknown device `{s}`: expected auto, cpu, cuda or cuda:N"
            ))),
        },
    }
}

/// `cpu` or `cuda:N`, the spelling [`parse_device`] reads back.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".to_owned(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// A description for reports: `CPU (N threads)` or `cuda:N`.
pub fn device_description(d: Device) -> String {
    match d {
        Device::Cpu => format!("CPU ({} threads)", tch::get_num_threads()),
        other => device_name(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_name_and_bad_ones_are_named() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(device_name(parse_device("cpu").unwrap()), "cpu");
        assert_eq!(device_name(Device::Cuda(1)), "cuda:1");
        let e = parse_device("tpu").unwrap_err().to_string();
        assert!(e.contains("`tpu`") && e.contains("cuda:N"), "{e}");
        if !tch::Cuda::is_available() {
            let e = parse_device("cuda:0").unwrap_err().to_string();
            assert!(e.contains("sees 0 CUDA"), "{e}");
            assert_eq!(parse_device("auto").unwrap(), Device::Cpu);
        }
        assert!(device_description(Device::Cpu).starts_with("CPU ("));
    }
}
