//! The environment every cargo command and binary xtask runs gets ([`Env`]: what xtask sets
//! and what is the user's own), as `export` lines for a shell and applied to commands.
//!
//! Module direction: `util` knows no other module; `env` builds on `util`; `setup` decides the
//! [`Env`] (through `venv`, which builds on `probe`); the commands build on those.

use std::path::Path;
use std::process::Command;

use crate::util::{cargo_program, shell_quote};

/// The environment every cargo command and binary xtask runs gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// Set by xtask.
    pub vars: Vec<(&'static str, String)>,
    /// The user's own, left as they are (shown by `cargo xtask env`).
    pub kept: Vec<(&'static str, String)>,
}

impl Env {
    /// Sets xtask's variables on `cmd` (the user's own are inherited anyway).
    pub fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.envs(self.vars.iter().map(|(k, v)| (k, v)))
    }

    /// A cargo command in the workspace root `root` with this environment.
    pub fn cargo(&self, root: &Path) -> Command {
        let mut cmd = Command::new(cargo_program());
        cmd.current_dir(root);
        self.apply(&mut cmd);
        cmd
    }

    /// The value of `name`, set by xtask or the user's own.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .chain(&self.kept)
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `export` lines for a shell, the user's own variables as comments.
    pub fn exports(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.vars {
            out += &format!("export {k}={}\n", shell_quote(v));
        }
        for (k, v) in &self.kept {
            out += &format!("# {k}={} is yours and kept\n", shell_quote(v));
        }
        out
    }

    /// One line: what is set.
    pub fn summary(&self) -> String {
        let set = self.vars.iter().map(|(k, v)| format!("{k}={v}"));
        let kept = self.kept.iter().map(|(k, v)| format!("{k}={v} (yours)"));
        set.chain(kept).collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_quote_and_comment() {
        let env = Env {
            vars: vec![("LIBTORCH", "/a b/torch".into())],
            kept: vec![("CVLAB_PYTHON", "/usr/bin/python3".into())],
        };
        assert_eq!(
            env.exports(),
            "export LIBTORCH='/a b/torch'\n# CVLAB_PYTHON=/usr/bin/python3 is yours and kept\n"
        );
        assert_eq!(
            env.summary(),
            "LIBTORCH=/a b/torch CVLAB_PYTHON=/usr/bin/python3 (yours)"
        );
    }

    #[test]
    fn cargo_commands_run_in_the_root_with_the_vars() {
        let env = Env {
            vars: vec![("LIBTORCH", "/t".into())],
            kept: vec![],
        };
        let cmd = env.cargo(Path::new("/w"));
        assert_eq!(cmd.get_current_dir(), Some(Path::new("/w")));
        let vars: Vec<_> = cmd.get_envs().collect();
        assert_eq!(vars, [("LIBTORCH".as_ref(), Some("/t".as_ref()))]);
    }
}
