//! What the CLI commands print for the operator, on stdout and stderr. `println!` panics when
//! stdout is a pipe whose reader left (`accounts list | head -1` exited 101 with a backtrace);
//! every command prints through [`out!`](crate::out) / [`outln!`](crate::outln) instead, which
//! return an [`OutputError`]. A reader that went away ([`OutputError::Closed`]) is not a failure
//! of the command: [`crate::cli::main`] exits 0 quietly, as `grep` or `ripgrep` do; any other
//! write error (a full disk under `accounts export > backup.json`) is reported and exits 1, so a
//! backup never ends short in silence.
//!
//! Messages for the operator on stderr go through [`errln!`](crate::errln), which never fails
//! and never panics: a note nobody can read is dropped. Log lines do not come here; they take
//! the log writer's queue (`crate::logging`).

use std::fmt;
use std::io::{ErrorKind, Write};

/// Why a command's output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Stdout's reader went away (EPIPE): stop printing and exit quietly.
    #[error("stdout was closed by its reader")]
    Closed,
    /// Stdout refused the bytes for another reason (disk full, I/O error).
    #[error("cannot write to stdout: {0}")]
    Failed(std::io::Error),
}

/// Writes `args` to stdout and flushes it, so a failure surfaces at the line that caused it.
/// Call it through [`out!`](crate::out) or [`outln!`](crate::outln).
pub fn write_out(args: fmt::Arguments<'_>) -> Result<(), OutputError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_fmt(args)
        .and_then(|()| stdout.flush())
        .map_err(|e| match e.kind() {
            ErrorKind::BrokenPipe => OutputError::Closed,
            _ => OutputError::Failed(e),
        })
}

/// Writes `args` to stderr, ignoring every failure (a closed or full stderr loses the note,
/// never the command). Call it through [`errln!`](crate::errln).
pub fn write_err(args: fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_fmt(args).and_then(|()| stderr.flush());
}

/// True if `e` (or one of its causes) is a closed stdout: the command stopped because nobody
/// reads its output any more, which is not an error.
pub fn is_closed_stdout(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| matches!(c.downcast_ref(), Some(OutputError::Closed)))
}

/// `print!` that returns `Result<(), OutputError>` instead of panicking on a closed stdout.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_out(format_args!($($arg)*))
    };
}

/// `println!` that returns `Result<(), OutputError>` instead of panicking on a closed stdout.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that never panics: a note on a closed stderr is dropped.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}
