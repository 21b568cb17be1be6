//! Local multi-process launch, as `torchrun --nproc-per-node N` does it: N processes of one
//! command, each with torchrun's variables (`MASTER_ADDR`, `MASTER_PORT`, `RANK`,
//! `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, and `OMP_NUM_THREADS` = cores / N when the
//! caller has none), their output forwarded line by line with a `[rank k] ` prefix; when one
//! exits with a failure the others are killed and its exit code is the launch's.
//!
//! [`World::command`] builds one rank's command alone, for callers that start the ranks
//! themselves (the dist crate's tests re-execute their own test binary that way).

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

/// The ranks of one node: how many, and where rank 0 serves the rendezvous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    /// Processes to start (`WORLD_SIZE` = `LOCAL_WORLD_SIZE`).
    pub nproc: usize,
    /// `MASTER_ADDR`.
    pub master_addr: String,
    /// `MASTER_PORT`.
    pub master_port: u16,
}

/// A TCP port that was free a moment ago on the loopback address (bound to port 0, then released).
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

impl World {
    /// `nproc` ranks on this machine over loopback (`MASTER_ADDR=127.0.0.1`), at `port` or a
    /// free one.
    pub fn local(nproc: usize, port: Option<u16>) -> io::Result<Self> {
        if nproc == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--nproc: expected at least 1 process, got 0",
            ));
        }
        let master_port = match port {
            Some(p) => p,
            None => free_port()?,
        };
        Ok(World {
            nproc,
            master_addr: Ipv4Addr::LOCALHOST.to_string(),
            master_port,
        })
    }

    /// torchrun's variables for `rank`; `OMP_NUM_THREADS` only when `omp_threads` is given.
    pub fn vars(&self, rank: usize, omp_threads: Option<usize>) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("MASTER_ADDR", self.master_addr.clone()),
            ("MASTER_PORT", self.master_port.to_string()),
            ("RANK", rank.to_string()),
            ("WORLD_SIZE", self.nproc.to_string()),
            ("LOCAL_RANK", rank.to_string()),
            ("LOCAL_WORLD_SIZE", self.nproc.to_string()),
        ];
        if let Some(n) = omp_threads {
            vars.push(("OMP_NUM_THREADS", n.to_string()));
        }
        vars
    }

    /// Threads per rank when the caller set no `OMP_NUM_THREADS`: cores / N, at least 1.
    pub fn omp_threads(&self) -> Option<usize> {
        if std::env::var_os("OMP_NUM_THREADS").is_some_and(|v| !v.is_empty()) {
            return None;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Some((cores / self.nproc).max(1))
    }

    /// One rank's command with its variables set (stdio inherited unless the caller changes it).
    pub fn command<S: AsRef<OsStr>>(&self, rank: usize, program: &OsStr, args: &[S]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd.envs(self.vars(rank, self.omp_threads()));
        cmd
    }
}

fn forward(rank: usize, from: impl Read + Send + 'static, to_stderr: bool) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            let text = format!("[rank {rank}] {}\n", text.trim_end_matches(['\n', '\r']));
            // A closed pipe on our side must not stop the rank: keep draining.
            let _ = if to_stderr {
                io::stderr().lock().write_all(text.as_bytes())
            } else {
                io::stdout().lock().write_all(text.as_bytes())
            };
        }
    })
}

/// The exit code of a finished process: its own, or 128 + the signal that ended it.
pub fn exit_code(status: ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    1
}

/// Starts `world.nproc` ranks of `program args`, forwards their output with a `[rank k] `
/// prefix and waits. Returns 0 when every rank exits with 0; else the first failing rank's
/// exit code, after killing the others (torchrun's behaviour).
pub fn launch<S: AsRef<OsStr>>(world: &World, program: &OsStr, args: &[S]) -> io::Result<i32> {
    let mut children: Vec<Option<Child>> = Vec::with_capacity(world.nproc);
    let mut forwarders = Vec::new();
    for rank in 0..world.nproc {
        let mut cmd = world.command(rank, program, args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                kill_all(&mut children);
                return Err(io::Error::new(
                    e.kind(),
                    format!("starting rank {rank}: {}: {e}", program.to_string_lossy()),
                ));
            }
        };
        if let Some(out) = child.stdout.take() {
            forwarders.push(forward(rank, out, false));
        }
        if let Some(err) = child.stderr.take() {
            forwarders.push(forward(rank, err, true));
        }
        children.push(Some(child));
    }
    let code = loop {
        let mut running = 0;
        let mut failed = None;
        for (rank, slot) in children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            match child.try_wait()? {
                Some(status) => {
                    *slot = None;
                    let code = exit_code(status);
                    if code != 0 {
                        eprintln!(
                            "[launch] rank {rank} exited with code {code}: stopping the others"
                        );
                        failed = Some(code);
                        break;
                    }
                }
                None => running += 1,
            }
        }
        if let Some(code) = failed {
            kill_all(&mut children);
            break code;
        }
        if running == 0 {
            break 0;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // A killed rank's own children may hold its pipes open: after a failure wait for the
    // output only a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    for f in forwarders {
        while code != 0 && !f.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if code == 0 || f.is_finished() {
            let _ = f.join();
        }
    }
    Ok(code)
}

fn kill_all(children: &mut [Option<Child>]) {
    for child in children.iter_mut().flatten() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> (std::ffi::OsString, Vec<String>) {
        ("sh".into(), vec!["-c".into(), script.into()])
    }

    #[test]
    fn every_rank_gets_torchruns_variables() {
        let world = World::local(3, Some(29_999)).unwrap();
        let vars = world.vars(2, Some(4));
        let get = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MASTER_ADDR"), Some("127.0.0.1"));
        assert_eq!(get("MASTER_PORT"), Some("29999"));
        assert_eq!(get("RANK"), Some("2"));
        assert_eq!(get("WORLD_SIZE"), Some("3"));
        assert_eq!(get("LOCAL_RANK"), Some("2"));
        assert_eq!(get("LOCAL_WORLD_SIZE"), Some("3"));
        assert_eq!(get("OMP_NUM_THREADS"), Some("4"));
        assert!(World::local(0, None).is_err());
        assert_ne!(World::local(1, None).unwrap().master_port, 0);
    }

    #[test]
    fn all_ranks_succeeding_gives_zero() {
        let world = World::local(2, None).unwrap();
        let (p, a) = sh("echo rank $RANK of $WORLD_SIZE");
        assert_eq!(launch(&world, &p, &a).unwrap(), 0);
    }

    #[test]
    fn a_failing_rank_stops_the_others_and_gives_its_code() {
        let world = World::local(2, None).unwrap();
        let (p, a) = sh("if [ $RANK = 1 ]; then exit 7; fi; sleep 30");
        let start = std::time::Instant::now();
        assert_eq!(launch(&world, &p, &a).unwrap(), 7);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_missing_program_is_an_error_naming_it() {
        let world = World::local(1, None).unwrap();
        let e = launch(&world, OsStr::new("/no/such/program"), &[] as &[&str]).unwrap_err();
        assert!(e.to_string().contains("/no/such/program"), "{e}");
    }
}
