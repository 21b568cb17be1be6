//! Command-line tools print through [`out`]: a closed stdout (`tool | head`) ends the process
//! quietly with status 0 instead of panicking with "failed printing to stdout: Broken pipe".

use std::io::{self, Write};

/// Writes `text` to stdout; on a closed pipe exits the process with status 0. Other errors
/// are returned.
pub fn out(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other,
    }
}

/// [`out`] with a newline.
pub fn outln(text: &str) -> io::Result<()> {
    out(&format!("{text}\n"))
}
