//! [`Rendezvous`]: where the ranks meet and who this process is, from torchrun's environment
//! (`MASTER_ADDR`, `MASTER_PORT`, `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`), the
//! variables `torchrun --nproc-per-node N` and `cargo xtask launch --nproc N` both set.

use crate::error::{DistError, Result};

/// The torchrun variables of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous {
    /// `MASTER_ADDR`: the host of rank 0, where the TCPStore listens.
    pub master_addr: String,
    /// `MASTER_PORT`: the TCPStore's port.
    pub master_port: u16,
    /// `RANK`: this process, `0..world_size`.
    pub rank: usize,
    /// `WORLD_SIZE`: processes in all.
    pub world_size: usize,
    /// `LOCAL_RANK`: this process on its node (the GPU index); `RANK` when unset.
    pub local_rank: usize,
    /// `LOCAL_WORLD_SIZE`: processes on this node; `WORLD_SIZE` when unset.
    pub local_world_size: usize,
}

fn bad(var: &'static str, expected: impl Into<String>, found: Option<&str>) -> DistError {
    DistError::Env {
        var,
        expected: expected.into(),
        found: match found {
            Some(v) => format!("{var}={v:?}"),
            None => "it unset".to_owned(),
        },
    }
}

fn number(var: &'static str, value: Option<&str>, min: usize) -> Result<usize> {
    let Some(v) = value else {
        return Err(bad(var, format!("an integer >= {min}"), None));
    };
    match v.trim().parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(bad(var, format!("an integer >= {min}"), Some(v))),
    }
}

impl Rendezvous {
    /// Reads the process environment; `Ok(None)` when `WORLD_SIZE` is unset (not launched for
    /// data parallel: one process alone).
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// As [`Rendezvous::from_env`], with the variables from `get`.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let Some(world) = get("WORLD_SIZE") else {
            return Ok(None);
        };
        let world_size = number("WORLD_SIZE", Some(&world), 1)?;
        let rank_v = get("RANK");
        let rank = number("RANK", rank_v.as_deref(), 0)?;
        if rank >= world_size {
            return Err(bad(
                "RANK",
                format!("a rank below WORLD_SIZE={world_size}"),
                rank_v.as_deref(),
            ));
        }
        let addr = get("MASTER_ADDR").filter(|a| !a.trim().is_empty());
        let Some(master_addr) = addr else {
            return Err(bad(
                "MASTER_ADDR",
                "the host of rank 0 (e.g. 127.0.0.1 on one node)",
                get("MASTER_ADDR").as_deref(),
            ));
        };
        let port_v = get("MASTER_PORT");
        let master_port = match port_v.as_deref().map(|p| p.trim().parse::<u16>()) {
            Some(Ok(p)) if p > 0 => p,
            _ => {
                return Err(bad(
                    "MASTER_PORT",
                    "a TCP port 1..=65535",
                    port_v.as_deref(),
                ))
            }
        };
        let local_world_v = get("LOCAL_WORLD_SIZE");
        let local_world_size = match local_world_v.as_deref() {
            None => world_size,
            Some(v) => number("LOCAL_WORLD_SIZE", Some(v), 1)?,
        };
        if local_world_size > world_size {
            return Err(bad(
                "LOCAL_WORLD_SIZE",
                format!("at most WORLD_SIZE={world_size}"),
                local_world_v.as_deref(),
            ));
        }
        let local_v = get("LOCAL_RANK");
        let local_rank = match local_v.as_deref() {
            None if local_world_v.is_none() => rank,
            None => return Err(bad("LOCAL_RANK", "set with LOCAL_WORLD_SIZE", None)),
            Some(v) => number("LOCAL_RANK", Some(v), 0)?,
        };
        if local_rank >= local_world_size {
            return Err(bad(
                "LOCAL_RANK",
                format!("a rank below LOCAL_WORLD_SIZE={local_world_size}"),
                local_v.as_deref(),
            ));
        }
        Ok(Some(Rendezvous {
            master_addr: master_addr.trim().to_owned(),
            master_port,
            rank,
            world_size,
            local_rank,
            local_world_size,
        }))
    }

    /// Whether this process hosts the TCPStore (rank 0).
    pub fn is_master(&self) -> bool {
        self.rank == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> Result<Option<Rendezvous>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Rendezvous::from_vars(|k| map.get(k).cloned())
    }

    const OK: [(&str, &str); 6] = [
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", "29500"),
        ("RANK", "1"),
        ("WORLD_SIZE", "2"),
        ("LOCAL_RANK", "1"),
        ("LOCAL_WORLD_SIZE", "2"),
    ];

    fn with(var: &str, value: Option<&str>) -> Result<Option<Rendezvous>> {
        let mut pairs: Vec<(&str, &str)> = OK.iter().copied().filter(|(k, _)| *k != var).collect();
        if let Some(v) = value {
            pairs.push((var, v));
        }
        vars(&pairs)
    }

    #[test]
    fn torchrun_variables_are_read() {
        let r = vars(&OK).unwrap().unwrap();
        assert_eq!(
            r,
            Rendezvous {
                master_addr: "127.0.0.1".into(),
                master_port: 29500,
                rank: 1,
                world_size: 2,
                local_rank: 1,
                local_world_size: 2,
            }
        );
        assert!(!r.is_master());
    }

    #[test]
    fn no_world_size_means_one_process_alone() {
        assert_eq!(vars(&[("RANK", "0")]).unwrap(), None);
    }

    #[test]
    fn local_variables_default_to_one_node() {
        let r = with("LOCAL_RANK", None);
        assert!(r.unwrap_err().to_string().contains("LOCAL_RANK"));
        let pairs: Vec<_> = OK
            .iter()
            .copied()
            .filter(|(k, _)| !k.starts_with("LOCAL"))
            .collect();
        let r = vars(&pairs).unwrap().unwrap();
        assert_eq!((r.local_rank, r.local_world_size), (1, 2));
    }

    fn message(var: &str, value: Option<&str>) -> String {
        with(var, value).unwrap_err().to_string()
    }

    #[test]
    fn a_rank_beyond_the_world_size_names_both() {
        let m = message("RANK", Some("3"));
        assert!(m.starts_with("RANK:"), "{m}");
        assert!(
            m.contains("WORLD_SIZE=2") && m.contains("RANK=\"3\""),
            "{m}"
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_what_was_found() {
        for (var, value, found) in [
            ("WORLD_SIZE", Some("0"), "WORLD_SIZE=\"0\""),
            ("WORLD_SIZE", Some("two"), "WORLD_SIZE=\"two\""),
            ("RANK", None, "unset"),
            ("RANK", Some("-1"), "RANK=\"-1\""),
            ("MASTER_ADDR", None, "unset"),
            ("MASTER_PORT", Some("70000"), "MASTER_PORT=\"70000\""),
            ("MASTER_PORT", None, "unset"),
            ("LOCAL_RANK", Some("2"), "LOCAL_RANK=\"2\""),
            ("LOCAL_WORLD_SIZE", Some("3"), "LOCAL_WORLD_SIZE=\"3\""),
        ] {
            let m = message(var, value);
            assert!(m.starts_with(&format!("{var}:")), "{var}: {m}");
            assert!(m.contains(found), "{var}: {m}");
        }
    }
}
