//! Writing to the terminal or a pipe without panicking.
//!
//! `println!` and `eprintln!` panic when the stream is closed (`weir plugin
//! inspect x.wasm | head` closes stdout early) or refuses writes. Commands
//! print through these functions instead: a closed stdout is reported as
//! [`io::ErrorKind::BrokenPipe`], which [`super::main`] treats as the reader
//! having had enough (a quiet exit); anything written to stderr is best
//! effort, since there is nowhere left to report its failure.

use std::io::{self, Write};

/// Write `text` to stdout and flush it.
pub fn stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Write `text` and a newline to stderr, ignoring failures.
pub fn stderr_line(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err
        .write_all(text.as_bytes())
        .and_then(|()| err.write_all(b"\n"));
}

/// Whether `err` (or what caused it) is a write to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
