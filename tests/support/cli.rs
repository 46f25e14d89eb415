//! The built `emrfs-rolemap` binary, run as a user runs it, from the crate's directory (where the tests'
//! relative paths point).

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The binary with `args`, in the crate's directory.
pub fn command<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emrfs-rolemap"));
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

/// Runs the binary with `args` and no input.
pub fn run<S: AsRef<OsStr>>(args: &[S]) -> Output {
    command(args).output().expect("the binary runs")
}

/// Runs the binary with `args` and `input` on its standard input.
pub fn run_with_input(args: &[&str], input: &str) -> Output {
    let mut child = command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    pipe.write_all(input.as_bytes()).expect("stdin accepts input");
    drop(pipe);
    child.wait_with_output().expect("the binary finishes")
}
